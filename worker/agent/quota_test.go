package agent

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/quota"
	"github.com/aigw/aigw/internal/testlog"
	"github.com/aigw/aigw/worker/internal/metrics"
)

// quotaWorker runs an agent with a quota gate over the bundle's database
// (a cache of 1 ns: a quota set by the test applies to the next delivery).
func (b *bundle) quotaWorker(slots int) *quota.Store {
	b.t.Helper()
	qs, err := quota.NewStore(context.Background(), b.db)
	if err != nil {
		b.t.Fatal(err)
	}
	gate := &quota.Gate{Cache: quota.NewCache(qs, time.Nanosecond), Running: quota.NewRunning(b.rdb)}
	a, err := New(b.config("w1", slots), Deps{Redis: b.rdb, Queue: b.q, Jobs: b.jobs, Algorithms: b.algos, Events: b.ev,
		Registry: b.reg, Artifacts: b.arts, Metrics: metrics.New(), Log: testlog.AtLevel(b.t, slog.LevelInfo), Quotas: gate}, nil, "test")
	if err != nil {
		b.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = a.Run(ctx) }()
	b.t.Cleanup(func() { cancel(); wg.Wait() })
	return qs
}

// TestMaxRunningQuota: with max_running 1, a tenant's jobs run one at a
// time on a worker with free slots, each on its first attempt, while another
// tenant's job runs beside them; a quota lowered below current use stops
// nothing, and new work waits until use is under it.
func TestMaxRunningQuota(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.algo("echo", []string{"aigw-echo"}, 0, nil)
	qs := b.quotaWorker(4)
	ctx := context.Background()
	if _, err := qs.Put(ctx, quota.Tenant{Tenant: "t1", Pools: []quota.Quota{{Pool: b.pool, MaxRunning: 1}}}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range 3 {
		ids = append(ids, b.submit("echo", `{"message":"hi","sleep_ms":400}`, nil))
	}
	other := b.submit("echo", `{"message":"hi","sleep_ms":400}`, func(j *job.Job) { j.Tenant = "t2" })
	var runs []*job.Job
	for _, id := range ids {
		runs = append(runs, b.waitState(id, 20*time.Second, job.Succeeded))
	}
	o := b.waitState(other, 20*time.Second, job.Succeeded)
	for i, a := range runs {
		if a.Attempt != 1 {
			t.Errorf("job %d: attempt %d, want 1 (holding it back uses no attempt)", i, a.Attempt)
		}
		for _, c := range runs[i+1:] {
			if a.StartedAt.Before(*c.FinishedAt) && c.StartedAt.Before(*a.FinishedAt) {
				t.Fatalf("t1 ran two at once: %s–%s and %s–%s", a.StartedAt, a.FinishedAt, c.StartedAt, c.FinishedAt)
			}
		}
	}
	first := runs[0]
	for _, r := range runs {
		if r.StartedAt.Before(*first.StartedAt) {
			first = r
		}
	}
	if !o.StartedAt.Before(*first.FinishedAt) {
		t.Errorf("t2's job waited for t1's: started %s, t1's first ended %s", o.StartedAt, first.FinishedAt)
	}

	// Two running under a quota of 2; lowered to 1: both finish, the third
	// starts only after both ended.
	if _, err := qs.Put(ctx, quota.Tenant{Tenant: "t1", Pools: []quota.Quota{{Pool: b.pool, MaxRunning: 2}}}); err != nil {
		t.Fatal(err)
	}
	a1 := b.submit("echo", `{"message":"hi","sleep_ms":800}`, nil)
	a2 := b.submit("echo", `{"message":"hi","sleep_ms":800}`, nil)
	b.waitState(a1, 20*time.Second, job.Running)
	b.waitState(a2, 20*time.Second, job.Running)
	if _, err := qs.Put(ctx, quota.Tenant{Tenant: "t1", Pools: []quota.Quota{{Pool: b.pool, MaxRunning: 1}}}); err != nil {
		t.Fatal(err)
	}
	a3 := b.submit("echo", `{"message":"hi"}`, nil)
	j1, j2 := b.waitState(a1, 20*time.Second, job.Succeeded), b.waitState(a2, 20*time.Second, job.Succeeded)
	j3 := b.waitState(a3, 20*time.Second, job.Succeeded)
	if j3.StartedAt.Before(*j1.FinishedAt) || j3.StartedAt.Before(*j2.FinishedAt) || j3.Attempt != 1 {
		t.Fatalf("lowered quota: third started %s (attempt %d), the running ones ended %s and %s", j3.StartedAt, j3.Attempt, j1.FinishedAt, j2.FinishedAt)
	}
}
