package router

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/auth"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/jobstore"
	"github.com/aigw/aigw/internal/lifecycle"
)

// TestUsage: GET /v1/usage sums the usage of the jobs that finished in the
// range; a tenant sees its own rows, an operator every tenant's; bad
// parameters are 400 naming the parameter.
func TestUsage(t *testing.T) {
	t.Parallel()
	e := setup(t, testConfig())
	lc := lifecycle.New(e.jobs, e.events, slog.New(slog.DiscardHandler), lifecycle.Backoff{})
	run := func(tenant, algo string, u job.Usage) {
		t.Helper()
		j, _, err := e.jobs.Create(e.ctx, job.Job{Tenant: tenant, Algorithm: algo, Version: "1", Pool: e.pool, Input: json.RawMessage(`{}`)})
		if err != nil {
			t.Fatal(err)
		}
		out, err := lc.Start(e.ctx, j, "node-1")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := lc.Succeed(e.ctx, out.Job, lifecycle.Result{Output: json.RawMessage(`{}`), Usage: u}); err != nil {
			t.Fatal(err)
		}
	}
	run("acme", "echo", job.Usage{GPUSeconds: 1.5, CPUSeconds: 1})
	run("acme", "echo", job.Usage{GPUSeconds: 2.5, CPUSeconds: 1})
	run("acme", "sum", job.Usage{CPUSeconds: 0.25})
	run("globex", "echo", job.Usage{GPUSeconds: 10, CPUSeconds: 5})

	acme := e.is.Token(t, "acme", auth.ScopeJobsRead)
	var out struct{ Usage []jobstore.UsageRow }
	e.want(t, e.do(t, "GET", "/v1/usage?group_by=algorithm", acme, ""), http.StatusOK).decode(t, &out)
	want := []jobstore.UsageRow{{Tenant: "acme", Algorithm: "echo", Jobs: 2, GPUSeconds: 4, CPUSeconds: 2},
		{Tenant: "acme", Algorithm: "sum", Jobs: 1, CPUSeconds: 0.25}}
	if !slices.Equal(out.Usage, want) {
		t.Fatalf("acme's usage %+v, want %+v", out.Usage, want)
	}
	day := time.Now().UTC().Format(time.DateOnly)
	from := time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)
	op := e.is.Token(t, "operator", auth.ScopeJobsRead, auth.ScopeAlgorithmsAdmin)
	out.Usage = nil
	e.want(t, e.do(t, "GET", "/v1/usage?group_by=day&from="+from, op, ""), http.StatusOK).decode(t, &out)
	want = []jobstore.UsageRow{{Tenant: "acme", Day: day, Jobs: 3, GPUSeconds: 4, CPUSeconds: 2.25},
		{Tenant: "globex", Day: day, Jobs: 1, GPUSeconds: 10, CPUSeconds: 5}}
	if !slices.Equal(out.Usage, want) {
		t.Fatalf("operator's usage by day %+v, want %+v", out.Usage, want)
	}
	// A range that ended before the jobs did: nothing, as an empty list.
	r := e.want(t, e.do(t, "GET", "/v1/usage?from=2026-01-01&to=2026-01-02", acme, ""), http.StatusOK)
	if strings.TrimSpace(string(r.body)) != `{"usage":[]}` {
		t.Fatalf("empty range: %s", r.body)
	}
	for q, param := range map[string]string{
		"from=yesterday":                "from",
		"to=2026-13-01":                 "to",
		"group_by=pool":                 "group_by",
		"from=2026-02-01&to=2026-01-01": "from",
		"from=2020-01-01&to=2026-01-01": "from",
		"tenant=globex":                 "tenant",
	} {
		r := e.want(t, e.do(t, "GET", "/v1/usage?"+q, acme, ""), http.StatusBadRequest)
		if _, msg := r.errorCode(t); !strings.Contains(msg, param) {
			t.Errorf("%s: message %q does not name %s", q, msg, param)
		}
	}
}
