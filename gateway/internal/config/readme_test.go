package config

import (
	"testing"

	"github.com/aigw/aigw/internal/envconf"
	"github.com/aigw/aigw/internal/envconf/envdoc"
)

// TestREADMEConfigTable: the README's configuration table lists for the
// gateway exactly the variables it reads.
func TestREADMEConfigTable(t *testing.T) {
	t.Parallel()
	table, err := envdoc.ReadRepoTable()
	if err != nil {
		t.Fatal(err)
	}
	r := envconf.Map(nil)
	Read(r)
	if err := envdoc.Check(table, "gateway", r.Vars()); err != nil {
		t.Error(err)
	}
}
