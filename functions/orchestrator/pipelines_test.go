package orchestrator

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/auth"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/jobstore"
	"github.com/aigw/aigw/internal/pipeline"
	"github.com/aigw/aigw/internal/quota"
	"github.com/aigw/aigw/internal/testwait"
)

func TestPipelinesAPI(t *testing.T) {
	t.Parallel()
	b := setup(t)
	write := b.issuer.Token(t, "acme", auth.ScopeJobsWrite, auth.ScopeJobsRead)
	read := b.issuer.Token(t, "acme", auth.ScopeJobsRead)
	other := b.issuer.Token(t, "globex", auth.ScopeJobsWrite, auth.ScopeJobsRead)
	type apiErr struct {
		Error struct{ Code, Message string } `json:"error"`
	}

	var e apiErr
	cases := []struct{ body, code, msg string }{
		{`{"steps":[{"name":"a","algorithm":"echo","needs":["b"]},{"name":"b","algorithm":"echo","needs":["a"]}]}`, "invalid_pipeline", `step "a": needs form a cycle`},
		{`{"steps":[{"name":"a","algorithm":"echo","needs":["zz"]}]}`, "invalid_pipeline", `unknown step "zz"`},
		{`{"steps":[{"name":"a","algorithm":"echo","input":{"x":"$.steps.q.output"}}]}`, "invalid_pipeline", `step "a"`},
		{`{"steps":[{"name":"a","algorithm":"nope"}]}`, "invalid_pipeline", `step "a": algorithm not found`},
	}
	for _, c := range cases {
		code := b.call(t, http.MethodPut, "/v1/pipelines/p", write, c.body, &e)
		if code != http.StatusUnprocessableEntity || e.Error.Code != c.code || !strings.Contains(e.Error.Message, c.msg) {
			t.Errorf("PUT %s = %d %+v, want 422 %s", c.body, code, e.Error, c.msg)
		}
	}
	if code := b.call(t, http.MethodPut, "/v1/pipelines/p", write, `{"steps":`, &e); code != http.StatusBadRequest {
		t.Errorf("malformed PUT = %d", code)
	}
	def := `{"steps":[{"name":"a","algorithm":"echo","input":{"m":"$.input.m"}},
		{"name":"b","algorithm":"kmeans","needs":["a"],"for_each":"$.steps.a.output.items","input":{"p":"$.item"}}]}`
	if code := b.call(t, http.MethodPut, "/v1/pipelines/p", read, def, &e); code != http.StatusForbidden {
		t.Errorf("PUT with jobs:read only = %d", code)
	}
	if code := b.call(t, http.MethodPut, "/v1/pipelines/p", "", def, &e); code != http.StatusUnauthorized {
		t.Errorf("PUT without a token = %d", code)
	}
	var p pipeline.Pipeline
	if code := b.call(t, http.MethodPut, "/v1/pipelines/p", write, def, &p); code != http.StatusCreated || p.Version != 1 || len(p.Steps) != 2 {
		t.Fatalf("PUT = %d %+v", code, p)
	}
	if code := b.call(t, http.MethodPut, "/v1/pipelines/p", write, def, &p); code != http.StatusOK || p.Version != 2 {
		t.Fatalf("second PUT = %d version %d", code, p.Version)
	}
	var list struct{ Pipelines []pipeline.Pipeline }
	if code := b.call(t, http.MethodGet, "/v1/pipelines", read, "", &list); code != 200 || len(list.Pipelines) != 1 {
		t.Fatalf("list = %d %+v", code, list)
	}
	if code := b.call(t, http.MethodGet, "/v1/pipelines", other, "", &list); code != 200 || len(list.Pipelines) != 0 {
		t.Fatalf("globex lists %d pipelines", len(list.Pipelines))
	}
	if code := b.call(t, http.MethodGet, "/v1/pipelines/p", other, "", &e); code != http.StatusNotFound {
		t.Fatalf("globex GET acme's pipeline = %d", code)
	}
	if code := b.call(t, http.MethodPost, "/v1/pipelines/p/runs", other, `{"input":{}}`, &e); code != http.StatusNotFound {
		t.Fatalf("globex runs acme's pipeline = %d", code)
	}

	var run pipeline.Run
	if code := b.call(t, http.MethodPost, "/v1/pipelines/p/runs", write, `{"input":{"m":"hi"}}`, &run); code != http.StatusCreated || run.State != pipeline.RunRunning {
		t.Fatalf("start run = %d %+v", code, run)
	}
	path := "/v1/pipelines/p/runs/" + run.ID
	if code := b.call(t, http.MethodGet, path, other, "", &e); code != http.StatusNotFound {
		t.Fatalf("globex GET acme's run = %d", code)
	}
	a := run.Steps["a"].JobIDs[0]
	b.finishJob(t, a, `{"items":[1,2]}`)
	b.tick(t)
	if code := b.call(t, http.MethodGet, path, read, "", &run); code != 200 || run.Steps["b"].State != pipeline.StepRunning || len(run.Steps["b"].JobIDs) != 2 {
		t.Fatalf("after a tick: %d %+v", code, run.Steps["b"])
	}
	if code := b.call(t, http.MethodPost, path+"/cancel", read, "", &e); code != http.StatusForbidden {
		t.Fatalf("cancel with jobs:read = %d", code)
	}
	if code := b.call(t, http.MethodPost, path+"/cancel", write, "", &run); code != 200 || run.State != pipeline.RunCanceled || run.Steps["b"].State != pipeline.StepCanceled {
		t.Fatalf("cancel = %d %+v", code, run)
	}
	for _, id := range run.Steps["b"].JobIDs {
		j, err := b.jobs.GetByID(b.ctx, id)
		if err != nil || j.State != job.Canceled {
			t.Fatalf("step job %s = %v, %v; want canceled", id, j.State, err)
		}
	}

	// A finished run cannot be canceled.
	if code := b.call(t, http.MethodPut, "/v1/pipelines/one", write, `{"steps":[{"name":"a","algorithm":"echo"}]}`, &p); code != http.StatusCreated {
		t.Fatalf("PUT one = %d", code)
	}
	if code := b.call(t, http.MethodPost, "/v1/pipelines/one/runs", write, "", &run); code != http.StatusCreated {
		t.Fatalf("start a run without a body = %d", code)
	}
	b.finishJob(t, run.Steps["a"].JobIDs[0], `{"ok":true}`)
	if s := b.tick(t); s.Pipelines.Succeeded != 1 {
		t.Fatalf("tick = %+v", s.Pipelines)
	}
	if code := b.call(t, http.MethodPost, "/v1/pipelines/one/runs/"+run.ID+"/cancel", write, "", &e); code != http.StatusConflict {
		t.Fatalf("cancel of a succeeded run = %d %+v", code, e)
	}
}

func (b *bundle) finishJob(t *testing.T, id, output string) {
	t.Helper()
	if _, err := b.jobs.Transition(b.ctx, id, jobstore.Change{From: job.Queued, To: job.Running}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.jobs.Transition(b.ctx, id, jobstore.Change{From: job.Running, To: job.Succeeded, Output: json.RawMessage(output)}); err != nil {
		t.Fatal(err)
	}
}

// A tenant's deletion, announced by a router, reaches the pipelines API at
// once: the tenant's tokens issued until then are refused (a pipeline run
// would create jobs), another tenant's and later ones are not.
func TestPipelinesRefuseADeletedTenantsTokens(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if err := b.svc.quotas.Follow(b.ctx, b.rdb); err != nil {
		t.Fatal(err)
	}
	old := b.issuer.Token(t, "acme", auth.ScopeJobsWrite, auth.ScopeJobsRead)
	other := b.issuer.Token(t, "globex", auth.ScopeJobsRead)
	if code := b.call(t, http.MethodGet, "/v1/pipelines", old, "", nil); code != http.StatusOK {
		t.Fatalf("before the deletion: %d", code) // the service now holds acme: not deleted
	}
	// What DELETE /v1/admin/tenants/acme does to the quota store, on a router.
	store, err := quota.NewStore(b.ctx, b.db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Delete(b.ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	announced := time.Now()
	if err := quota.NewCache(store, 0).Changed(b.ctx, b.rdb, "acme"); err != nil {
		t.Fatal(err)
	}
	testwait.Eventually(t, 2*time.Second, func() bool {
		return b.call(t, http.MethodGet, "/v1/pipelines", old, "", nil) == http.StatusUnauthorized
	}, "the deleted tenant's token to be refused (the cache's TTL is 5 s)")
	if time.Since(announced) > 2*time.Second {
		t.Fatal("refused only after the cache's entry could have expired")
	}
	var e struct {
		Error struct{ Message string } `json:"error"`
	}
	if code := b.call(t, http.MethodPost, "/v1/pipelines/p/runs", old, `{"input":{}}`, &e); code != http.StatusUnauthorized ||
		!strings.Contains(e.Error.Message, "tenant acme was deleted") {
		t.Fatalf("a run with the old token: %d %+v", code, e)
	}
	if code := b.call(t, http.MethodGet, "/v1/pipelines", other, "", nil); code != http.StatusOK {
		t.Fatalf("another tenant: %d", code)
	}
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 10*time.Millisecond)))
	if code := b.call(t, http.MethodGet, "/v1/pipelines", b.issuer.Token(t, "acme", auth.ScopeJobsRead), "", nil); code != http.StatusOK {
		t.Fatalf("a token issued after the deletion: %d", code)
	}
}
