// Package deptest checks the dependency boundaries of the product: the benchmark's
// peers and the dev-only servers stay out of the root module's packages.
package deptest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestProductPackagesAvoidBenchAndDevOnlyDependencies(t *testing.T) {
	// The root module alone (GOWORK=off): in the workspace, ./... would also
	// name the nested modules, which may depend on these.
	cmd := exec.Command("go", "list", "-deps", "./...")
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "GOWORK=off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list returned only %d packages: %q", len(deps), out)
	}
	forbidden := []string{
		"github.com/hibiken/asynq",        // a peer for benchmarks only
		"github.com/FerretDB/FerretDB",    // the dev/CI MongoDB-wire server
		"github.com/aigw/aigw/bench",      // benchmarks
		"github.com/aigw/aigw/tools",      // dev tools
		"github.com/aigw/aigw/hcloudfake", // the Hetzner Cloud fake
	}
	for _, d := range deps {
		for _, f := range forbidden {
			if strings.HasPrefix(d, f) {
				t.Errorf("the root module depends on %s (via %s)", f, d)
			}
		}
	}
}
