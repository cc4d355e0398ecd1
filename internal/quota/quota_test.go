package quota_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/jobstore"
	"github.com/aigw/aigw/internal/quota"
	"github.com/aigw/aigw/internal/testenv"
	"github.com/aigw/aigw/internal/testwait"
)

func TestValidateNamesTheField(t *testing.T) {
	for _, c := range []struct {
		q     []quota.Quota
		field string
	}{
		{[]quota.Quota{{Pool: ""}}, "pools[0].pool"},
		{[]quota.Quota{{Pool: "a"}, {Pool: "a"}}, "pools[1].pool"},
		{[]quota.Quota{{Pool: "a", MaxRunning: -1}}, "pools[0].max_running"},
		{[]quota.Quota{{Pool: "a", GPUSeconds: -1}}, "pools[0].gpu_seconds"},
		{[]quota.Quota{{Pool: "a", GPUSeconds: 10}}, "pools[0].window"},
		{[]quota.Quota{{Pool: "a", Window: "1h"}}, "pools[0].window"},
		{[]quota.Quota{{Pool: "a", GPUSeconds: 10, Window: "1s"}}, "pools[0].window"},
		{[]quota.Quota{{Pool: "a", GPUSeconds: 10, Window: "day"}}, "pools[0].window"},
		{[]quota.Quota{{Pool: "a", Weight: ptr(0.0)}}, "pools[0].weight"},
		{[]quota.Quota{{Pool: "a", Weight: ptr(1001.0)}}, "pools[0].weight"},
	} {
		tq := quota.Tenant{Tenant: "t", Pools: c.q}
		var fe *quota.FieldError
		if err := tq.Validate(); !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("%+v: %v, want a FieldError on %s", c.q, err, c.field)
		}
	}
	for _, w := range []float64{0, -1, 1e6} {
		var fe *quota.FieldError
		if err := (&quota.Tenant{Tenant: "t", Weight: ptr(w)}).Validate(); !errors.As(err, &fe) || fe.Field != "weight" {
			t.Errorf("weight %g: %v, want a FieldError on weight", w, err)
		}
	}
	ok := quota.Tenant{Tenant: "t", Weight: ptr(3.0), Pools: []quota.Quota{{Pool: "a", MaxRunning: 2, GPUSeconds: 10, Window: "24h"}, {Pool: "b", Weight: ptr(0.5)}}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	if ok.WeightIn("a") != 3 || ok.WeightIn("b") != 0.5 || (&quota.Tenant{}).WeightIn("a") != 1 {
		t.Fatalf("weights: a %g b %g", ok.WeightIn("a"), ok.WeightIn("b"))
	}
}

func TestStoreAndCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := quota.NewStore(ctx, testenv.MongoDB(t))
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "acme")
	if err != nil || len(got.Pools) != 0 {
		t.Fatalf("unset: %+v %v", got, err)
	}
	if _, err := s.Put(ctx, quota.Tenant{Tenant: "acme", Pools: []quota.Quota{{Pool: "gpu", MaxRunning: -1}}}); err == nil {
		t.Fatal("a bad quota was stored")
	}
	want := []quota.Quota{{Pool: "gpu", MaxRunning: 2, GPUSeconds: 3600, Window: "1h"}, {Pool: "cpu", MaxRunning: 5}}
	if _, err := s.Put(ctx, quota.Tenant{Tenant: "acme", Pools: want}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, quota.Tenant{Tenant: "globex", Pools: []quota.Quota{{Pool: "gpu", GPUSeconds: 1, Window: "1h"}}}); err != nil {
		t.Fatal(err)
	}
	got, err = s.Get(ctx, "acme")
	if err != nil || fmt.Sprint(got.Pools) != fmt.Sprint(want) || got.UpdatedAt.IsZero() {
		t.Fatalf("stored %+v %v", got, err)
	}
	c := quota.NewCache(s, time.Hour)
	m, err := c.MaxRunning(ctx, "gpu")
	if err != nil || len(m) != 1 || m["acme"] != 2 {
		t.Fatalf("max running in gpu: %v %v", m, err)
	}
	// Cached: a change shows after the TTL, not before.
	if _, err := s.Put(ctx, quota.Tenant{Tenant: "acme"}); err != nil {
		t.Fatal(err)
	}
	if m, _ := c.MaxRunning(ctx, "gpu"); m["acme"] != 2 {
		t.Fatalf("cache: %v", m)
	}
	if m, _ := s.MaxRunning(ctx, "gpu"); len(m) != 0 {
		t.Fatalf("cleared: %v", m)
	}
}

// Of N racing acquires with limit L exactly L win; a release frees a place;
// a place whose deadline passed is free again.
func TestRunningPlaces(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := quota.NewRunning(testenv.Redis(t))
	tenant, pool := testenv.UniqueName(t, 30), "gpu"
	t.Cleanup(func() {
		for i := range 20 {
			_ = r.Release(context.Background(), tenant, pool, fmt.Sprint("j", i))
		}
	})
	var won atomic.Int32
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := r.Acquire(ctx, tenant, pool, fmt.Sprint("j", i), 3, time.Now().Add(time.Minute))
			if err != nil {
				t.Error(err)
			}
			if ok {
				won.Add(1)
			}
		}()
	}
	wg.Wait()
	if won.Load() != 3 {
		t.Fatalf("%d of 20 racers got a place, want 3", won.Load())
	}
	if n, err := r.Count(ctx, tenant, pool); err != nil || n != 3 {
		t.Fatalf("count %d %v", n, err)
	}
	if ok, _ := r.Acquire(ctx, tenant, pool, "late", 3, time.Now().Add(time.Minute)); ok {
		t.Fatal("a fourth place")
	}
	// Lowered below use: nobody loses a place, nobody new gets one.
	if ok, _ := r.Acquire(ctx, tenant, pool, "late", 1, time.Now().Add(time.Minute)); ok {
		t.Fatal("a place under a lowered limit")
	}
	for i := range 20 {
		_ = r.Release(ctx, tenant, pool, fmt.Sprint("j", i))
	}
	if ok, _ := r.Acquire(ctx, tenant, pool, "short", 3, time.Now().Add(50*time.Millisecond)); !ok {
		t.Fatal("no place after the releases")
	}
	if ok, _ := r.Acquire(ctx, tenant, pool, "late", 1, time.Now().Add(time.Minute)); ok {
		t.Fatal("short's place is taken before its deadline")
	}
	if !testwait.Poll(2*time.Second, func() bool {
		ok, _ := r.Acquire(ctx, tenant, pool, "late", 1, time.Now().Add(time.Minute))
		return ok
	}) {
		t.Fatal("short's place is not free after its deadline")
	}
	_ = r.Release(ctx, tenant, pool, "late")
}

// A tenant over its GPU-seconds quota within the window is refused with a
// Retry-After for when the oldest use leaves the window; other pools and
// tenants are not.
func TestAdmission(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.MongoDB(t)
	jobs, err := jobstore.New(ctx, db, jobstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	qs, err := quota.NewStore(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := qs.Put(ctx, quota.Tenant{Tenant: "acme", Pools: []quota.Quota{{Pool: "gpu", GPUSeconds: 10, Window: "1h"}}}); err != nil {
		t.Fatal(err)
	}
	a := quota.NewAdmission(quota.NewCache(qs, time.Minute), jobs, time.Nanosecond)
	finish := func(tenant, pool string, gpu float64) {
		t.Helper()
		j, _, err := jobs.Create(ctx, job.Job{Tenant: tenant, Algorithm: "a", Pool: pool, Input: json.RawMessage(`{}`)})
		if err != nil {
			t.Fatal(err)
		}
		if j, err = jobs.Transition(ctx, j.ID, jobstore.Change{From: job.Queued, To: job.Running}); err != nil {
			t.Fatal(err)
		}
		if _, err = jobs.Transition(ctx, j.ID, jobstore.Change{From: job.Running, To: job.Succeeded, Usage: job.Usage{GPUSeconds: gpu}}); err != nil {
			t.Fatal(err)
		}
	}
	finish("acme", "gpu", 6)
	if err := a.Admit(ctx, "acme", "gpu"); err != nil {
		t.Fatalf("under the quota: %v", err)
	}
	finish("acme", "gpu", 5)
	finish("acme", "cpu", 50)
	finish("globex", "gpu", 50)
	err = a.Admit(ctx, "acme", "gpu")
	var over *quota.OverError
	if !errors.As(err, &over) || over.Used != 11 || over.RetryAfter < 59*time.Minute || over.RetryAfter > time.Hour {
		t.Fatalf("over the quota: %+v", err)
	}
	if err := a.Admit(ctx, "acme", "cpu"); err != nil {
		t.Fatalf("no quota in cpu: %v", err)
	}
	if err := a.Admit(ctx, "globex", "gpu"); err != nil {
		t.Fatalf("globex has no quota: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }
