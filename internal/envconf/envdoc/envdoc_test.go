package envdoc

import (
	"strings"
	"testing"
)

const readme = "# x\n## Configuration\n\n| variable | used by | default | what |\n|---|---|---|---|\n" +
	"| `AIGW_A` / `AIGW_B` | functions, worker | 1 / 2 | a and b |\n" +
	"| `AIGW_C` | gateway, scripts | none | c |\n\n## Next\n| `AIGW_D` | worker | x | outside the table's section |\n"

func TestTableAndCheck(t *testing.T) {
	t.Parallel()
	table, err := Table([]byte(readme))
	if err != nil {
		t.Fatal(err)
	}
	if len(table) != 3 || strings.Join(table["AIGW_B"], ",") != "auth,router,orchestrator,worker" {
		t.Fatalf("table %v", table)
	}
	if err := Check(table, "router", []string{"AIGW_A", "AIGW_B"}); err != nil {
		t.Errorf("matching: %v", err)
	}
	err = Check(table, "gateway", []string{"AIGW_A"})
	if err == nil || !strings.Contains(err.Error(), "gateway reads AIGW_A") || !strings.Contains(err.Error(), "lists AIGW_C for gateway") {
		t.Errorf("both directions: %v", err)
	}
	if _, err := Table([]byte("## Configuration\n| `AIGW_A` / `_B` | worker | 1 | x |\n")); err == nil {
		t.Error("an abbreviated name was accepted")
	}
}
