package agent

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/worker/internal/config"
)

// TestJobRunsAsTheUnprivilegedUser: a root worker (as in CI and make up) runs
// a job's program as its run user, not as root; the run writes its
// artifacts and the job succeeds.
func TestJobRunsAsTheUnprivilegedUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs a root worker (as in CI): only root can run a job as another user")
	}
	t.Parallel()
	b := setup(t)
	cfg := b.config("w1", 1)
	cfg.RunAs = &config.RunAs{User: "65534:65534", UID: 65534, GID: 65534}
	cfg.WorkDir = runDir(t)
	b.algo("whoami", []string{"sh", "-c", `echo x > "$AIGW_OUTPUT_DIR/who.txt"; printf '{"uid":%s}' "$(id -u)"`}, 0, nil)
	b.worker(cfg, nil)
	id := b.submit("whoami", `{}`, nil)
	j := b.waitState(id, 20*time.Second, job.Succeeded)
	var out struct{ UID *int }
	if err := json.Unmarshal(j.Output, &out); err != nil || out.UID == nil {
		t.Fatalf("output %s: %v", j.Output, err)
	}
	if *out.UID != 65534 {
		t.Fatalf("the job ran as uid %d, want 65534 (never root)", *out.UID)
	}
	if len(j.Artifacts) != 1 {
		t.Fatalf("artifacts %+v, want who.txt", j.Artifacts)
	}
}
