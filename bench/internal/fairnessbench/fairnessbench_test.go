package fairnessbench

import (
	"context"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/testenv"
)

// A short run serves both tenants, the heavy one more, starts the late
// tenant's jobs and samples estimates.
func TestShortRun(t *testing.T) {
	r, err := Run(context.Background(), Config{Redis: testenv.Redis(t), Duration: 4 * time.Second, Slots: 4, Run: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", r)
	if r.Served[heavy] <= r.Served[light] || r.Served[light] == 0 || r.LateWait == 0 || r.ETASamples == 0 {
		t.Fatalf("result %+v", r)
	}
}
