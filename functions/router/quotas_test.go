package router

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/auth"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/lifecycle"
	"github.com/aigw/aigw/internal/quota"
)

// TestQuotas: an operator sets and reads a tenant's quotas (a bad one is 400
// naming its field, a tenant token is 403); once the tenant's jobs used its
// GPU-seconds in the pool within the window, its submits there are 429
// quota_exceeded with Retry-After, naming the quota; another tenant's are not.
func TestQuotas(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.QuotaCacheTTL = time.Millisecond
	e := setup(t, cfg)
	e.register(t)
	op := e.is.Token(t, "operator", auth.ScopeJobsRead, auth.ScopeAlgorithmsAdmin)
	path := "/v1/admin/tenants/acme/quotas"

	var got quota.Tenant
	e.want(t, e.do(t, "GET", path, op, ""), http.StatusOK).decode(t, &got)
	if got.Tenant != "acme" || got.Pools == nil || len(got.Pools) != 0 {
		t.Fatalf("no quotas yet: %+v", got)
	}
	for body, field := range map[string]string{
		`{"pools":[{"pool":"` + e.pool + `","max_running":-1}]}`:                 "pools[0].max_running",
		`{"pools":[{"pool":"` + e.pool + `","gpu_seconds":10}]}`:                 "pools[0].window",
		`{"pools":[{"pool":"` + e.pool + `","gpu_seconds":10,"window":"soon"}]}`: "pools[0].window",
		`{"pools":[{"pool":"a"},{"pool":"a"}]}`:                                  "pools[1].pool",
		`{"pools":[{"pool":"` + e.pool + `","gpu_seconds":-5,"window":"1h"}]}`:   "pools[0].gpu_seconds",
		`{"pools":[{"pool":"` + e.pool + `","max_running":"two"}]}`:              "max_running",
		`{"weight":0,"pools":[]}`:                                                "weight",
		`{"weight":-2,"pools":[]}`:                                               "weight",
		`{"pools":[{"pool":"` + e.pool + `","weight":5000}]}`:                    "pools[0].weight",
	} {
		r := e.want(t, e.do(t, "PUT", path, op, body), http.StatusBadRequest)
		if _, msg := r.errorCode(t); !strings.Contains(msg, field) {
			t.Errorf("%s: message %q does not name %s", body, msg, field)
		}
	}
	tenant := e.is.Token(t, "acme", auth.ScopeJobsRead, auth.ScopeJobsWrite)
	e.want(t, e.do(t, "PUT", path, tenant, `{"pools":[]}`), http.StatusForbidden)

	body := `{"pools":[{"pool":"` + e.pool + `","max_running":3,"gpu_seconds":5,"window":"1h"}]}`
	e.want(t, e.do(t, "PUT", path, op, body), http.StatusOK).decode(t, &got)
	if len(got.Pools) != 1 || got.Pools[0] != (quota.Quota{Pool: e.pool, MaxRunning: 3, GPUSeconds: 5, Window: "1h"}) {
		t.Fatalf("stored %+v", got)
	}
	e.want(t, e.do(t, "GET", path, op, ""), http.StatusOK).decode(t, &got)
	if len(got.Pools) != 1 || got.Pools[0].GPUSeconds != 5 {
		t.Fatalf("read back %+v", got)
	}
	// Weights: the tenant's, and a pool's own over it.
	body = `{"weight":3,"pools":[{"pool":"` + e.pool + `","max_running":3,"gpu_seconds":5,"window":"1h","weight":2.5}]}`
	e.want(t, e.do(t, "PUT", path, op, body), http.StatusOK).decode(t, &got)
	if got.Weight == nil || *got.Weight != 3 || got.WeightIn(e.pool) != 2.5 || got.WeightIn("other") != 3 {
		t.Fatalf("weights stored %+v", got)
	}

	// Under the quota: accepted. Then a job of acme ends having used 6
	// GPU-seconds in the pool: the next submit is refused.
	first := e.submit(t, `{"input":{"message":"hi"}}`)
	lc := lifecycle.New(e.jobs, e.events, slog.New(slog.DiscardHandler), lifecycle.Backoff{})
	j, err := e.jobs.GetByID(e.ctx, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	out, err := lc.Start(e.ctx, j, "node-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lc.Succeed(e.ctx, out.Job, lifecycle.Result{Output: json.RawMessage(`{}`), Usage: job.Usage{GPUSeconds: 6, CPUSeconds: 3}}); err != nil {
		t.Fatal(err)
	}
	r := e.want(t, e.do(t, "POST", "/v1/algorithms/"+algoName+"/jobs", tenant, `{"input":{"message":"hi"}}`), http.StatusTooManyRequests)
	code, msg := r.errorCode(t)
	ra, _ := strconv.Atoi(r.header.Get("Retry-After"))
	if code != "quota_exceeded" || !strings.Contains(msg, "5 GPU-seconds per 1h") || !strings.Contains(msg, e.pool) || ra < 3500 || ra > 3600 {
		t.Fatalf("over the quota: %s %q Retry-After %q", code, msg, r.header.Get("Retry-After"))
	}
	globex := e.is.Token(t, "globex", auth.ScopeJobsWrite)
	e.want(t, e.do(t, "POST", "/v1/algorithms/"+algoName+"/jobs", globex, `{"input":{"message":"hi"}}`), http.StatusAccepted)
	// Raised: accepted again (the router reads it within AIGW_QUOTA_CACHE_TTL).
	e.want(t, e.do(t, "PUT", path, op, `{"pools":[{"pool":"`+e.pool+`","gpu_seconds":100,"window":"1h"}]}`), http.StatusOK)
	e.want(t, e.do(t, "POST", "/v1/algorithms/"+algoName+"/jobs", tenant, `{"input":{"message":"hi"}}`), http.StatusAccepted)
}
