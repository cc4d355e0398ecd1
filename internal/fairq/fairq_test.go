package fairq

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/internal/registry"
	"github.com/aigw/aigw/internal/testenv"
	"github.com/aigw/aigw/internal/testleak"
)

func TestMain(m *testing.M) { testleak.Main(m) }

type bench struct {
	ctx  context.Context
	f    *Fair
	q    *queue.Queue
	c    *queue.Consumer
	pool string
	// policy by tenant: weight, max_running
	weights map[string]float64
	limits  map[string]int
	seq     int
}

// setup is a pool with slots live worker slots (one registered worker) and a
// Fair with the given buffer; its policy reads b.weights and b.limits.
func setup(t *testing.T, slots, buffer int) *bench {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	rdb := testenv.Redis(t)
	q := queue.New(rdb, queue.Config{Shards: 2})
	b := &bench{ctx: ctx, q: q, pool: strings.ToLower(testenv.UniqueName(t, 40)), weights: map[string]float64{}, limits: map[string]int{}}
	b.f = New(rdb, q, Config{Buffer: buffer, SlotsTTL: time.Hour, Stale: 100 * time.Millisecond, SweepAge: time.Hour,
		Policy: func(_ context.Context, tenant, _ string) (float64, int, error) {
			w := b.weights[tenant]
			if w == 0 {
				w = 1
			}
			return w, b.limits[tenant], nil
		}})
	reg := registry.New(rdb)
	if slots > 0 {
		if err := reg.Heartbeat(ctx, registry.Worker{Node: "n1", Pool: b.pool, Slots: slots}, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	c, err := q.Consumer(b.pool, "w", queue.ConsumerOptions{Home: -1})
	if err != nil {
		t.Fatal(err)
	}
	b.c = c
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = q.Purge(ctx, b.pool)
		_ = b.f.Purge(ctx, b.pool)
		_ = reg.Remove(ctx, b.pool, "n1")
		_ = rdb.SRem(ctx, registry.PoolsKey, b.pool).Err()
	})
	return b
}

func (b *bench) submit(t *testing.T, tenant string, prio job.Priority) (*job.Job, Admission) {
	t.Helper()
	b.seq++
	j := &job.Job{ID: fmt.Sprintf("%s-%04d", tenant, b.seq), Tenant: tenant, Pool: b.pool, Priority: prio}
	a, err := b.f.Submit(b.ctx, j)
	if err != nil {
		t.Fatal(err)
	}
	return j, a
}

// take takes up to n ready jobs from the queue.
func (b *bench) take(t *testing.T, n int) []queue.Delivery {
	t.Helper()
	var out []queue.Delivery
	for len(out) < n {
		ds, err := b.c.Take(b.ctx, n-len(out), -1)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 0 {
			break
		}
		out = append(out, ds...)
	}
	return out
}

// finish ends a taken job as a run of secs slot-seconds: the end hook, then
// the ack (the order of lifecycle's callers).
func (b *bench) finish(t *testing.T, d queue.Delivery, secs float64) {
	t.Helper()
	if err := b.f.Done(b.ctx, b.pool, d.JobID, secs); err != nil {
		t.Fatal(err)
	}
	if err := b.c.Ack(b.ctx, d); err != nil {
		t.Fatal(err)
	}
}

func tenantOf(id string) string { return id[:strings.LastIndexByte(id, '-')] }

// While the pool has room and nothing waits, jobs go straight into the queue;
// beyond slots+buffer they wait, and each end moves the next one in.
func TestDirectThenHeld(t *testing.T) {
	t.Parallel()
	b := setup(t, 2, 1)
	for i := range 5 {
		_, a := b.submit(t, "solo", job.Normal)
		want := Direct
		if i >= 3 {
			want = Held
		}
		if a != want {
			t.Fatalf("job %d: %s, want %s", i, a, want)
		}
	}
	st, _ := b.f.State(b.ctx, b.pool)
	if st.Waiting != 2 || st.Out != 3 {
		t.Fatalf("state %+v, want 2 waiting, 3 out", st)
	}
	ds := b.take(t, 10)
	if len(ds) != 3 {
		t.Fatalf("took %d, want 3", len(ds))
	}
	b.finish(t, ds[0], 2)
	if ds = b.take(t, 10); len(ds) != 1 || ds[0].JobID != "solo-0004" {
		t.Fatalf("after an end: %+v, want solo-0004", ds)
	}
	if st, _ = b.f.State(b.ctx, b.pool); st.Waiting != 1 || st.MeanRun != 2 || st.Runs != 1 {
		t.Fatalf("state %+v", st)
	}
	// Admission is idempotent: a job admitted again is not added twice.
	if _, err := b.f.Submit(b.ctx, &job.Job{ID: "solo-0005", Tenant: "solo", Pool: b.pool}); err != nil {
		t.Fatal(err)
	}
	if st, _ = b.f.State(b.ctx, b.pool); st.Waiting != 1 {
		t.Fatalf("a second admission: %+v", st)
	}
	// A job out in the queue admitted again (a retry) is enqueued again.
	if a, err := b.f.Submit(b.ctx, &job.Job{ID: ds[0].JobID, Tenant: "solo", Pool: b.pool}); err != nil || a != Out {
		t.Fatalf("a retry of a job out: %s %v", a, err)
	}
}

// A pool without live workers takes every job straight into its queue.
func TestNoLiveWorkers(t *testing.T) {
	t.Parallel()
	b := setup(t, 0, 1)
	for range 10 {
		if _, a := b.submit(t, "solo", job.Normal); a != Direct {
			t.Fatalf("no workers: %s", a)
		}
	}
	if ds := b.take(t, 20); len(ds) != 10 {
		t.Fatalf("took %d, want 10", len(ds))
	}
}

// Two tenants with weights 3 and 1 saturating the pool are served 3:1 in
// slot-seconds, also when their runs differ in length; priorities order a
// tenant's own jobs; a third tenant's first job is among the next picks.
func TestWeightedShare(t *testing.T) {
	t.Parallel()
	b := setup(t, 4, 1)
	b.weights["heavy"] = 3
	for range 200 {
		b.submit(t, "heavy", job.Normal)
		b.submit(t, "light", job.Normal)
	}
	urgent, _ := b.submit(t, "light", job.High)
	served := map[string]float64{}
	run := map[string]float64{"heavy": 1, "light": 2} // light's runs are twice as long
	urgentAt := -1
	var late *job.Job
	lateAt := -1
	for n := 0; n < 160; n++ {
		ds := b.take(t, 1)
		if len(ds) != 1 {
			t.Fatalf("round %d: nothing ready", n)
		}
		d := ds[0]
		ten := tenantOf(d.JobID)
		if n >= 10 { // after the first picks (the jobs that went straight in)
			served[ten] += run[ten]
		}
		if d.JobID == urgent.ID {
			urgentAt = n
		}
		if late != nil && d.JobID == late.ID {
			lateAt = n
		}
		b.finish(t, d, run[ten])
		if n == 100 {
			late, _ = b.submit(t, "late", job.Normal)
		}
	}
	ratio := served["heavy"] / served["light"]
	t.Logf("served ratio %.2f, light's high job at take %d, late tenant's first at take %d", ratio, urgentAt, lateAt)
	if ratio < 2.7 || ratio > 3.3 {
		t.Errorf("served slot-seconds heavy %.0f, light %.0f: ratio %.2f, want 3 ± 10 %%", served["heavy"], served["light"], ratio)
	}
	if urgentAt < 0 || urgentAt > 20 {
		t.Errorf("light's high job ran at take %d, want among its first picks", urgentAt)
	}
	// Room is 5 (4 slots + 1): the late job waits for the 5 jobs out, and is
	// the next pick.
	if lateAt < 0 || lateAt > 101+5+1 {
		t.Errorf("the late tenant's first job ran at take %d (submitted after take 100)", lateAt)
	}
}

// A tenant at its max_running is skipped by the picks (others go on); a limit
// lowered below what the tenant has out stops nothing, and the tenant's next
// job waits until its jobs out fall under the new limit.
func TestLimitLoweredBelowUse(t *testing.T) {
	t.Parallel()
	b := setup(t, 4, -1)
	b.limits["capped"] = 3
	for range 3 {
		if _, a := b.submit(t, "capped", job.Normal); a != Direct {
			t.Fatalf("under the limit: %s", a)
		}
	}
	ds := b.take(t, 10)
	if len(ds) != 3 {
		t.Fatalf("took %d", len(ds))
	}
	b.limits["capped"] = 1 // lowered below use: 3 out
	if _, a := b.submit(t, "capped", job.Normal); a != Held {
		t.Fatalf("over the lowered limit: %s, want held", a)
	}
	other, a := b.submit(t, "other", job.Normal)
	if a != Held {
		t.Fatalf("other: %s", a) // something waits: others queue behind fairly
	}
	// The pick skipped capped and moved other's job into the free slot.
	got := b.take(t, 10)
	if len(got) != 1 || got[0].JobID != other.ID {
		t.Fatalf("took %+v, want only %s", got, other.ID)
	}
	// Nothing of capped's was stopped: its three are still out (taken).
	for _, d := range ds {
		if in, err := b.q.Contains(b.ctx, b.pool, d.JobID); err != nil || !in {
			t.Fatalf("job %s left the queue: %v", d.JobID, err)
		}
	}
	b.finish(t, ds[0], 1)
	b.finish(t, ds[1], 1)
	if got := b.take(t, 10); len(got) != 0 {
		t.Fatalf("capped has 1 out, limit 1: took %+v", got)
	}
	b.finish(t, ds[2], 1)
	if got := b.take(t, 10); len(got) != 1 || tenantOf(got[0].JobID) != "capped" {
		t.Fatalf("under the limit again: took %+v", got)
	}
}

// A mover that dies between the pick and the enqueue leaves the move, which
// the next pump sends; sending it again never makes a second queue entry; a
// canceled waiting job leaves its sub-queue.
func TestCrashBetweenPickAndEnqueue(t *testing.T) {
	t.Parallel()
	b := setup(t, 1, -1)
	first, _ := b.submit(t, "a", job.Normal)
	second, a := b.submit(t, "a", job.Normal)
	third, _ := b.submit(t, "a", job.Normal)
	if a != Held {
		t.Fatal(a)
	}
	if err := b.f.Done(b.ctx, b.pool, third.ID, 0); err != nil { // canceled while waiting
		t.Fatal(err)
	}
	if held, _ := b.f.Holds(b.ctx, b.pool, third.ID); held {
		t.Fatal("a canceled job still waits")
	}
	// The first ends; the pick of the second happens, its enqueue "crashes".
	if in, _ := b.q.Contains(b.ctx, b.pool, first.ID); !in {
		t.Fatal("first not in the queue")
	}
	ds := b.take(t, 1)
	ks, qp := keys(b.pool)
	res, err := doneScript.Run(b.ctx, b.f.rdb, ks, qp, first.ID, "1", 1, "0.2", "0").Slice()
	if err != nil || len(res) != 2 || res[0] != second.ID {
		t.Fatalf("pick: %v %v", res, err)
	}
	_ = b.c.Ack(b.ctx, ds...)
	if held, _ := b.f.Holds(b.ctx, b.pool, second.ID); !held {
		t.Fatal("a move in flight is not held (the reconciler would add it a second way)")
	}
	if in, _ := b.q.Contains(b.ctx, b.pool, second.ID); in {
		t.Fatal("not enqueued yet")
	}
	time.Sleep(150 * time.Millisecond) // past Stale
	for range 2 {                      // the pump sends it; a second pump (or a slow first mover) adds nothing
		if _, err := b.f.Pump(b.ctx, b.pool); err != nil {
			t.Fatal(err)
		}
		time.Sleep(150 * time.Millisecond)
		_ = b.f.rdb.HSet(b.ctx, ks[8], second.ID, "0|"+mustMsg(t, b, "a")).Err() // the move again, as if unconfirmed
	}
	got := b.take(t, 10)
	if len(got) != 1 || got[0].JobID != second.ID {
		t.Fatalf("took %+v, want %s once", got, second.ID)
	}
}

func mustMsg(t *testing.T, b *bench, tenant string) string {
	t.Helper()
	return `{"t":"` + tenant + `","p":"normal","n":0,"d":""}`
}

// The position of a waiting job counts the jobs fair share moves before it:
// its own tenant's ahead of it and the others' by weight.
func TestPosition(t *testing.T) {
	t.Parallel()
	b := setup(t, 1, -1)
	b.weights["x"] = 2
	b.submit(t, "x", job.Normal) // direct
	var xs, ys []*job.Job
	for range 6 {
		j, _ := b.submit(t, "x", job.Normal)
		xs = append(xs, j)
		j, _ = b.submit(t, "y", job.Normal)
		ys = append(ys, j)
	}
	// Simulate the picks to learn the true order, comparing with Position.
	want := map[string]int64{}
	for _, j := range append(xs, ys...) {
		n, _, held, err := b.f.Position(b.ctx, b.pool, j.ID)
		if err != nil || !held {
			t.Fatalf("%s: %v %v", j.ID, held, err)
		}
		want[j.ID] = n
	}
	for n := int64(-1); n < 12; n++ {
		ds := b.take(t, 1)
		if len(ds) != 1 {
			t.Fatalf("pick %d: nothing", n)
		}
		if p, ok := want[ds[0].JobID]; n >= 0 && (!ok || p != n) {
			t.Errorf("job %s: position %d, picked %d-th", ds[0].JobID, p, n)
		}
		b.finish(t, ds[0], 1)
	}
}
