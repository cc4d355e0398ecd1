package apispec

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

func TestDocumentIsValidOpenAPI31(t *testing.T) {
	doc, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" || !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi %q, want 3.1.0", doc.OpenAPI)
	}
	routes, err := Routes()
	if err != nil {
		t.Fatal(err)
	}
	fns := map[string]int{}
	for _, r := range routes {
		fns[r.Function]++
	}
	if fns["router"] == 0 || fns["auth"] == 0 || fns["orchestrator"] == 0 || fns["executors"] == 0 || len(fns) != 4 {
		t.Fatalf("routes by function %v", fns)
	}
	ids := map[string]bool{}
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			if op.OperationID == "" || ids[op.OperationID] || op.Summary == "" {
				t.Fatalf("operation %q: each needs a unique operationId and a summary", op.OperationID)
			}
			ids[op.OperationID] = true
		}
	}
}

func TestFindPrefersLiteralSegments(t *testing.T) {
	if _, err := Load(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ fn, path, want string }{
		{"router", "/v1/admin/pools/gpu/dead-letters/redrive", "/v1/admin/pools/{pool}/dead-letters/redrive"},
		{"", "/v1/admin/pools/gpu/dead-letters/1-0/redrive", "/v1/admin/pools/{pool}/dead-letters/{id}/redrive"},
		{"router", "/v1/jobs/abc/events", "/v1/jobs/{id}/events"},
		{"", "/v1/pipelines/p/runs/r", "/v1/pipelines/{name}/runs/{id}"},
		{"auth", "/oauth/token", "/oauth/token"},
		{"orchestrator", "/v1/jobs/abc", ""}, // the router's path under another function
		{"router", "/v1/nope", ""},
	} {
		op, _ := find(loaded.ops, c.fn, c.path)
		got := ""
		if op != nil {
			got = op.path
		}
		if got != c.want {
			t.Errorf("find(%q, %q) = %q, want %q", c.fn, c.path, got, c.want)
		}
	}
}

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	mu     sync.Mutex
	errors []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.errors
	r.errors = nil
	return out
}

// TestTransportFailsWhatBreaksTheDocument: the transport passes exchanges the
// document describes and reports the others, through the gateway's paths and
// a function's own.
func TestTransportFailsWhatBreaksTheDocument(t *testing.T) {
	job := `{"id":"j1","tenant":"acme","algorithm":"echo","pool":"cpu","priority":"normal","state":"queued","attempt":1,"max_retries":0,` +
		`"created_at":"2026-01-02T15:04:05Z","updated_at":"2026-01-02T15:04:05Z"}`
	apiErr := func(code int, c string) (int, string) { return code, `{"error":{"code":"` + c + `","message":"m"}}` }
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status, body := http.StatusOK, ""
		switch {
		case strings.HasSuffix(r.URL.Path, "/v1/jobs/j1"):
			body = job
		case strings.HasSuffix(r.URL.Path, "/v1/jobs/extra"):
			body = strings.Replace(job, `"id"`, `"colour":"red","id"`, 1)
		case strings.HasSuffix(r.URL.Path, "/v1/jobs/wrongstate"):
			body = strings.Replace(job, `"queued"`, `"sleeping"`, 1)
		case strings.HasSuffix(r.URL.Path, "/v1/jobs/gone"):
			status, body = apiErr(http.StatusNotFound, "not_found")
		case strings.HasSuffix(r.URL.Path, "/jobs"):
			status, body = http.StatusAccepted, job
			if r.Header.Get("X-Want") == "400" {
				status, body = apiErr(http.StatusBadRequest, "bad_request")
			}
		case strings.HasSuffix(r.URL.Path, "/v1/jobs/j1/events"):
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = w.Write([]byte("event: state\ndata: {}\n\n"))
			return
		case strings.HasSuffix(r.URL.Path, "/nowhere"):
			status, body = apiErr(http.StatusNotFound, "not_found")
		case strings.HasSuffix(r.URL.Path, "/plain"):
			status, body = http.StatusNotFound, "404 page not found"
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	defer srv.Close()
	rec := &recorder{TB: t}
	c := &http.Client{Transport: Transport(rec, nil)}
	call := func(method, path, body string, header ...string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if body == "" {
			req.Body = http.NoBody
		} else {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Authorization", "Bearer x")
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if resp.Header.Get("Content-Type") == "application/json" {
			if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
				t.Fatalf("%s %s: the body did not reach the caller: %v", method, path, err)
			}
		}
		resp.Body.Close()
	}
	for _, c := range []struct {
		name         string
		method, path string
		body         string
		header       []string
		fails        string // a part of the failure; "" none
	}{
		{"a job through the gateway", "GET", "/function/router/v1/jobs/j1", "", nil, ""},
		{"a job from the router itself", "GET", "/v1/jobs/j1", "", nil, ""},
		{"an event stream", "GET", "/function/router/v1/jobs/j1/events", "", nil, ""},
		{"an API 404", "GET", "/function/router/v1/jobs/gone", "", nil, ""},
		{"a submit", "POST", "/function/router/v1/algorithms/echo/jobs", `{"input":{}}`, nil, ""},
		{"an invalid submit refused", "POST", "/function/router/v1/algorithms/echo/jobs", `{"nope":1}`, []string{"X-Want", "400"}, ""},
		{"an unknown route's API 404", "GET", "/function/router/v1/nowhere", "", nil, ""},
		{"an invalid submit accepted", "POST", "/function/router/v1/algorithms/echo/jobs", `{"nope":1}`, nil, "breaks the OpenAPI document but was answered 202"},
		{"a field the document lacks", "GET", "/function/router/v1/jobs/extra", "", nil, "colour"},
		{"a state the document lacks", "GET", "/function/router/v1/jobs/wrongstate", "", nil, "sleeping"},
		{"a path of another function", "GET", "/function/auth/v1/jobs/j1", "", nil, "not in the OpenAPI document"},
		{"a 404 that is not the API's", "GET", "/function/router/v1/plain", "", nil, "without a JSON error"},
		{"a method the document lacks", "DELETE", "/function/router/v1/jobs/j1", "", nil, "not in the OpenAPI document"},
	} {
		call(c.method, c.path, c.body, c.header...)
		errs := rec.take()
		switch {
		case c.fails == "" && len(errs) > 0:
			t.Errorf("%s: unexpected failure %v", c.name, errs)
		case c.fails != "" && (len(errs) == 0 || !strings.Contains(strings.Join(errs, "\n"), c.fails)):
			t.Errorf("%s: failures %v, want one with %q", c.name, errs, c.fails)
		}
	}
}
