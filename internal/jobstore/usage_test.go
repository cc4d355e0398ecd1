package jobstore

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/job"
)

// Usage sums the jobs that finished in the range, per tenant and algorithm
// or day; a job in the range without usage counts as a job; a job outside
// the range or still running does not count; bad queries are ErrInvalid.
func TestUsage(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Date(2026, 3, 1, 23, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	set := func(t time.Time) { mu.Lock(); now = t; mu.Unlock() }
	b := setup(t, Options{Now: clock})
	end := func(tenant, algo string, at time.Time, u job.Usage, to job.State) {
		t.Helper()
		j := b.create(t, newJob(tenant, algo))
		set(at.Add(-time.Minute))
		if _, err := b.store.Transition(b.ctx, j.ID, Change{From: job.Queued, To: job.Running, Attempt: 1}); err != nil {
			t.Fatal(err)
		}
		set(at)
		if to == job.Running {
			return
		}
		if _, err := b.store.Transition(b.ctx, j.ID, Change{From: job.Running, To: to, Attempt: 1, Usage: u,
			Error: &job.Error{Code: "x", Message: "x"}}); err != nil {
			t.Fatal(err)
		}
	}
	d1 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	d2 := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	end("t-a", "echo", d1, job.Usage{GPUSeconds: 2, CPUSeconds: 1}, job.Succeeded)
	end("t-a", "echo", d2, job.Usage{GPUSeconds: 4, CPUSeconds: 2}, job.Failed)
	end("t-a", "sum", d2, job.Usage{CPUSeconds: 0.5}, job.Succeeded)
	end("t-a", "sum", d2, job.Usage{}, job.Canceled)
	end("t-a", "sum", d2, job.Usage{}, job.Running)                                    // not finished
	end("t-a", "echo", d2.AddDate(0, 0, 5), job.Usage{GPUSeconds: 100}, job.Succeeded) // after the range
	end("t-b", "echo", d1, job.Usage{GPUSeconds: 8, CPUSeconds: 8}, job.Succeeded)

	from, to := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)
	got, err := b.store.Usage(b.ctx, UsageQuery{Tenant: "t-a", From: from, To: to, GroupBy: ByAlgorithm})
	want := []UsageRow{{Tenant: "t-a", Algorithm: "echo", Jobs: 2, GPUSeconds: 6, CPUSeconds: 3},
		{Tenant: "t-a", Algorithm: "sum", Jobs: 2, CPUSeconds: 0.5}}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("by algorithm: %+v %v, want %+v", got, err, want)
	}
	got, err = b.store.Usage(b.ctx, UsageQuery{From: from, To: to, GroupBy: ByDay})
	want = []UsageRow{{Tenant: "t-a", Day: "2026-03-01", Jobs: 1, GPUSeconds: 2, CPUSeconds: 1},
		{Tenant: "t-a", Day: "2026-03-02", Jobs: 3, GPUSeconds: 4, CPUSeconds: 2.5},
		{Tenant: "t-b", Day: "2026-03-01", Jobs: 1, GPUSeconds: 8, CPUSeconds: 8}}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("every tenant by day: %+v %v, want %+v", got, err, want)
	}
	for _, q := range []UsageQuery{
		{From: from, To: to, GroupBy: "pool"},
		{From: to, To: from, GroupBy: ByDay},
		{From: from, To: from.Add(MaxUsageRange + time.Hour), GroupBy: ByDay},
	} {
		if _, err := b.store.Usage(b.ctx, q); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", q, err)
		}
	}
}
