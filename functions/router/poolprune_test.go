package router

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/auth"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/internal/registry"
)

// TestIdlePoolsAgeOut: a pool whose last worker's entry has expired, with
// nothing in its queue and no algorithm naming it, leaves GET /v1/pools (an
// operator's and a tenant's) and the registry's set of pools; a worker-less
// pool with a queued job, and an algorithm's pool, stay.
func TestIdlePoolsAgeOut(t *testing.T) {
	t.Parallel()
	e := setup(t, testConfig())
	e.register(t) // echo runs in e.pool
	gone, waiting := e.pool+"-gone", e.pool+"-wait"
	t.Cleanup(func() {
		ctx := context.Background()
		_ = e.queue.Purge(ctx, waiting)
		for _, p := range []string{gone, waiting} {
			_ = e.reg.RemovePool(ctx, p)
		}
	})
	for _, p := range []string{gone, waiting} {
		if err := e.reg.Heartbeat(e.ctx, registry.Worker{Node: "n1", Pool: p, Version: "1", Slots: 1}, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.queue.Enqueue(e.ctx, queue.Message{JobID: "j-" + waiting, Pool: waiting}); err != nil {
		t.Fatal(err)
	}
	op := e.is.Token(t, auth.OperatorTenant, auth.ScopeJobsRead, auth.ScopeAlgorithmsAdmin)
	acme := e.is.Token(t, "acme", auth.ScopeJobsRead)
	listed := func(token string) []string {
		t.Helper()
		var out struct {
			Pools []struct{ Name string } `json:"pools"`
		}
		e.want(t, e.do(t, "GET", "/v1/pools", token, ""), http.StatusOK).decode(t, &out)
		var names []string
		for _, p := range out.Pools {
			names = append(names, p.Name)
		}
		return names
	}
	if names := listed(op); !slices.Contains(names, gone) || !slices.Contains(names, waiting) || !slices.Contains(names, e.pool) {
		t.Fatalf("with live workers: %v", names)
	}

	// The workers' last heartbeats expire (an entry whose TTL has passed).
	for _, p := range []string{gone, waiting} {
		if err := e.reg.Heartbeat(e.ctx, registry.Worker{Node: "n1", Pool: p, Version: "1", Slots: 1}, time.Nanosecond); err != nil {
			t.Fatal(err)
		}
	}
	for _, who := range []struct{ name, token string }{{"a tenant", acme}, {"the operator", op}} {
		names := listed(who.token)
		if slices.Contains(names, gone) || !slices.Contains(names, waiting) || !slices.Contains(names, e.pool) {
			t.Errorf("%s's pools after the workers expired: %v; want %s gone, %s (a job waits) and %s (echo's) kept",
				who.name, names, gone, waiting, e.pool)
		}
	}
	known, err := e.reg.Pools(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(known, gone) || !slices.Contains(known, waiting) {
		t.Errorf("the registry's pools: %s still there, or %s forgotten", gone, waiting)
	}

	// A worker that joins again brings its pool back.
	if err := e.reg.Heartbeat(e.ctx, registry.Worker{Node: "n2", Pool: gone, Version: "1", Slots: 1}, time.Minute); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.reg.Remove(context.Background(), gone, "n2") })
	if names := listed(op); !slices.Contains(names, gone) {
		t.Errorf("a worker joined %s again; pools %v", gone, names)
	}
}

// TestForgetIfEmptyKeepsAPoolWithAWorker: the registry forgets only a pool
// with no worker entry.
func TestForgetIfEmptyKeepsAPoolWithAWorker(t *testing.T) {
	t.Parallel()
	e := setup(t, testConfig())
	p := e.pool + "-busy"
	t.Cleanup(func() { _ = e.reg.RemovePool(context.Background(), p) })
	if err := e.reg.Heartbeat(e.ctx, registry.Worker{Node: "n1", Pool: p, Version: "1", Slots: 1}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if forgot, err := e.reg.ForgetIfEmpty(e.ctx, p); err != nil || forgot {
		t.Fatalf("a pool with a worker forgotten: %v %v", forgot, err)
	}
	if err := e.reg.Remove(e.ctx, p, "n1"); err != nil {
		t.Fatal(err)
	}
	if forgot, err := e.reg.ForgetIfEmpty(e.ctx, p); err != nil || !forgot {
		t.Fatalf("an empty pool kept: %v %v", forgot, err)
	}
}
