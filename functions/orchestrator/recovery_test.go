package orchestrator

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/jobstore"
)

// backlog is more jobs than one pass ever looked at before paging (500).
const backlog = 520

// backlogPool creates n jobs in a second pool, older than any the test makes
// after it, each moved on by then (nil: left queued).
func (b *bundle) backlogPool(t *testing.T, n int, then func(*job.Job)) string {
	t.Helper()
	pool := b.pool + "-big"
	t.Cleanup(func() { _ = b.queue.Purge(context.Background(), pool) })
	for range n {
		j, _, err := b.jobs.Create(b.ctx, job.Job{Tenant: "acme", Algorithm: "echo", Pool: pool,
			Input: json.RawMessage(`{}`), ExecutionTimeoutMS: (24 * time.Hour).Milliseconds()})
		if err != nil {
			t.Fatal(err)
		}
		if then != nil {
			then(j)
		}
	}
	return pool
}

// A pool with a backlog of queued jobs (no workers) does not hide another
// pool's job lost from its stream; passes walk the backlog to its end.
func TestReconcilerReachesEveryPoolPastABacklog(t *testing.T) {
	t.Parallel()
	b := setup(t)
	big := b.backlogPool(t, backlog, nil)
	lost := b.createJob(t, job.Job{}) // newer than the whole backlog
	r := b.svc.ticker.reconciler
	res, err := r.Reconcile(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if in, err := b.queue.Contains(b.ctx, b.pool, lost.ID); err != nil || !in {
		t.Fatalf("after one pass (%+v) the other pool's job is in its stream: %v, %v", res, in, err)
	}
	enqueued := res.Enqueued
	for pass := 2; pass <= backlog/pageSize+1; pass++ {
		res, err := r.Reconcile(b.ctx)
		if err != nil {
			t.Fatal(err)
		}
		enqueued += res.Enqueued
	}
	if enqueued != backlog+1 {
		t.Fatalf("%d passes enqueued %d jobs, want the %d of %s and 1", backlog/pageSize+1, enqueued, backlog, big)
	}
}

// A pool with a backlog of running jobs does not hide another pool's lost job.
func TestReaperReachesEveryPoolPastABacklog(t *testing.T) {
	t.Parallel()
	b := setup(t)
	run := func(j *job.Job) {
		if _, err := b.jobs.Transition(b.ctx, j.ID, jobstore.Change{From: job.Queued, To: job.Running, Worker: "node-1"}); err != nil {
			t.Fatal(err)
		}
	}
	b.backlogPool(t, backlog, run) // running within their 24 h timeout
	lost := b.createJob(t, job.Job{ExecutionTimeoutMS: 1000})
	run(lost)
	res, err := b.reaper(time.Now().Add(time.Minute)).Reap(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Lost != 1 {
		t.Fatalf("reap = %+v, want the other pool's lost job", res)
	}
	if got, err := b.jobs.GetByID(b.ctx, lost.ID); err != nil || got.State != job.Failed {
		t.Fatalf("lost job = %+v, %v", got, err)
	}
}
