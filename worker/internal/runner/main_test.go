package runner_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/aigw/aigw/internal/testleak"
	"github.com/aigw/aigw/worker/internal/runner"
)

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

// testMain builds the serve runtime's test program (testdata/servetest) once.
func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "aigw-runner-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "servetest")
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/servetest").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build servetest: %v\n%s", err, out)
		return 1
	}
	runner.ServeTestBin = bin
	return testleak.Run(m)
}
