package server

import (
	"testing"
	"time"

	"github.com/aigw/aigw/internal/testwait"
	"github.com/openfaas/faas-provider/types"
)

// TestCronFires: a function annotated as a cron-function is POSTed on schedule
// at its aigw.path.
func TestCronFires(t *testing.T) {
	t.Parallel()
	b := setup(t)
	name := fnName("cron")
	ann := map[string]string{"topic": "cron-function", "schedule": "@every 1s", "aigw.path": "/print?text=tick"}
	b.deploy(name, func(d *types.FunctionDeployment) { d.Annotations = &ann })
	f, _ := b.g.Registry().Lookup(name)
	ticks := func() int {
		n := 0
		for _, m := range f.Logs().Snapshot(time.Time{}, 0) {
			if m.Text == "tick" {
				n++
			}
		}
		return n
	}
	testwait.Eventually(t, 5*time.Second, func() bool { return ticks() >= 2 }, "two ticks")
	if err := b.client.DeleteFunction(t.Context(), name, ""); err != nil {
		t.Fatal(err)
	}
	if jobs := b.g.cron.Jobs(); len(jobs) != 0 {
		t.Errorf("jobs after delete: %v", jobs)
	}
}

// TestCronSendsTheAuthSecret: aigw.auth-secret names a secret sent as a bearer
// token (the orchestrator's /tick wants the admin token).
func TestCronSendsTheAuthSecret(t *testing.T) {
	t.Parallel()
	b := setup(t)
	secret := fnName("tok")
	if _, err := b.client.CreateSecret(t.Context(), types.Secret{Name: secret, Value: "t0ken\n"}); err != nil {
		t.Fatal(err)
	}
	name := fnName("cronauth")
	ann := map[string]string{"topic": "cron-function", "schedule": "@every 1s", "aigw.path": "/print?text=tick:", "aigw.auth-secret": secret}
	b.deploy(name, func(d *types.FunctionDeployment) { d.Annotations = &ann })
	f, _ := b.g.Registry().Lookup(name)
	testwait.Eventually(t, 5*time.Second, func() bool {
		for _, m := range f.Logs().Snapshot(time.Time{}, 0) {
			if m.Text == "tick:Bearer t0ken" {
				return true
			}
		}
		return false
	}, "a tick with the token")

}
