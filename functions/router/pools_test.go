package router

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/auth"
	"github.com/aigw/aigw/internal/registry"
)

// TestPoolsTenantSeesOwnCounts: a tenant's GET /v1/pools shows each pool's
// capacity and its own queued jobs, never worker names or another tenant's
// jobs; an operator token (algorithms:admin) still sees workers (with their
// asset caches' hits, misses and bytes) and the whole queue.
func TestPoolsTenantSeesOwnCounts(t *testing.T) {
	t.Parallel()
	e := setup(t, testConfig())
	e.register(t)
	globex := e.is.Token(t, "globex", auth.ScopeJobsRead, auth.ScopeJobsWrite)
	for range 3 {
		e.want(t, e.do(t, "POST", "/v1/algorithms/"+algoName+"/jobs", globex, `{"input":{"message":"hi"}}`), http.StatusAccepted)
	}
	e.submit(t, `{"input":{"message":"hi"}}`) // acme: 1
	cache := registry.AssetCache{Hits: 5, Misses: 2, DownloadedBytes: 3 << 20, Evictions: 1, Bytes: 2 << 20, BudgetBytes: 8 << 20, Files: 1}
	err := e.reg.Heartbeat(e.ctx, registry.Worker{Node: "node-secret-7", Pool: e.pool, Version: "1.2.3", Slots: 2, SlotsBusy: 1,
		GPUs:       []registry.GPU{{Index: 0, Name: "H100", MemoryTotalMB: 81559, Busy: true}, {Index: 1, Name: "H100", MemoryTotalMB: 81559}},
		AssetCache: &cache}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.reg.Remove(e.ctx, e.pool, "node-secret-7") })

	acme := e.is.Token(t, "acme", auth.ScopeJobsRead)
	r := e.want(t, e.do(t, "GET", "/v1/pools", acme, ""), http.StatusOK)
	if strings.Contains(string(r.body), "node-secret-7") || strings.Contains(string(r.body), `"depth"`) || strings.Contains(string(r.body), "asset_cache") {
		t.Fatalf("a tenant sees worker names or the whole queue: %s", r.body)
	}
	var out struct{ Pools []tenantPoolView }
	r.decode(t, &out)
	var p *tenantPoolView
	for i := range out.Pools {
		if out.Pools[i].Name == e.pool {
			p = &out.Pools[i]
		}
	}
	if p == nil {
		t.Fatalf("pool %s missing: %s", e.pool, r.body)
	}
	if p.Jobs != (tenantJobCounts{Queued: 1}) || p.Workers != 1 || p.GPUs != (counts{Total: 2, Free: 1, Busy: 1}) || p.Slots != (counts{Total: 2, Free: 1, Busy: 1}) {
		t.Fatalf("acme's pool %+v", p)
	}
	r = e.want(t, e.do(t, "GET", "/v1/pools", globex, ""), http.StatusOK)
	r.decode(t, &out)
	for _, q := range out.Pools {
		if q.Name == e.pool && q.Jobs.Queued != 3 {
			t.Fatalf("globex's pool %+v, want 3 queued", q)
		}
	}

	op := e.is.Token(t, "operator", auth.ScopeJobsRead, auth.ScopeAlgorithmsAdmin)
	r = e.want(t, e.do(t, "GET", "/v1/pools", op, ""), http.StatusOK)
	var full struct{ Pools []poolView }
	r.decode(t, &full)
	for _, q := range full.Pools {
		if q.Name == e.pool && (q.Queue.Depth != 4 || len(q.Workers) != 1 || q.Workers[0].Node != "node-secret-7" ||
			q.Workers[0].AssetCache == nil || *q.Workers[0].AssetCache != cache) {
			t.Fatalf("operator's pool %+v", q)
		}
	}
}
