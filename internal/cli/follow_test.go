package cli

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// TestRunWaitFollowsAResumedStream: run --wait shows progress and log lines
// from the job's event stream, resumes a dropped stream after the last event
// it saw (Last-Event-ID), then prints the output; a failed job exits 1.
func TestRunWaitFollowsAResumedStream(t *testing.T) {
	var connections atomic.Int32
	var resumedAfter atomic.Value
	var final atomic.Value
	final.Store("succeeded")
	mux := http.NewServeMux()
	mux.HandleFunc("POST /auth/oauth/token", func(w http.ResponseWriter, r *http.Request) {
		if id, secret, ok := r.BasicAuth(); !ok || id != "cl" || secret != "s" {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":"invalid_client","error_description":"client authentication failed"}`)
			return
		}
		fmt.Fprint(w, `{"access_token":"tok","token_type":"Bearer","expires_in":900,"scope":"jobs:read jobs:write"}`)
	})
	mux.HandleFunc("POST /router/v1/algorithms/echo/jobs", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprint(w, `{"id":"j1","state":"queued","attempt":1}`)
	})
	mux.HandleFunc("GET /router/v1/jobs/j1/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		if connections.Add(1) == 1 {
			fmt.Fprint(w, "id: 1-0\nevent: state\ndata: {\"state\":\"queued\",\"attempt\":1}\n\n")
			fmt.Fprint(w, ": ping\n\n")
			fmt.Fprint(w, "id: 2-0\nevent: progress\ndata: {\"progress\":0.5,\"message\":\"half way\"}\n\n")
			return // dropped before the end
		}
		resumedAfter.Store(r.Header.Get("Last-Event-ID"))
		fmt.Fprint(w, "id: 3-0\nevent: log\ndata: {\"lines\":[\"loading model\",\"step 2\"]}\n\n")
		fmt.Fprint(w, "id: 4-0\nevent: progress\ndata: {\"progress\":1}\n\n")
		fmt.Fprintf(w, "id: 5-0\nevent: state\ndata: {\"state\":%q,\"attempt\":1}\n\n", final.Load())
	})
	mux.HandleFunc("GET /router/v1/jobs/j1", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if final.Load() == "failed" {
			fmt.Fprint(w, `{"id":"j1","state":"failed","attempt":1,"error":{"code":"runtime_error","message":"exit status 3"}}`)
			return
		}
		fmt.Fprint(w, `{"id":"j1","state":"succeeded","attempt":1,"output":{"message":"hi"}}`)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	var mu sync.Mutex
	env := map[string]string{"AIGW_URL": srv.URL + "/router", "AIGW_AUTH_URL": srv.URL + "/auth",
		"AIGW_CLIENT_ID": "cl", "AIGW_CLIENT_SECRET": "s", "XDG_CONFIG_HOME": t.TempDir(), "HOME": t.TempDir()}
	t.Setenv("XDG_CONFIG_HOME", env["XDG_CONFIG_HOME"])
	run := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := Main(context.Background(), "test", args, func(k string) string { mu.Lock(); defer mu.Unlock(); return env[k] }, strings.NewReader(""), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}

	code, stdout, stderr := run("run", "echo", "--input", `{"message":"hi"}`, "--wait")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	for _, want := range []string{"j1 queued", "j1  50% half way", "loading model\nstep 2", "j1 100%"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.TrimSpace(stdout) != "{\n  \"message\": \"hi\"\n}" {
		t.Errorf("stdout %q, want the output", stdout)
	}
	if got := resumedAfter.Load(); got != "2-0" {
		t.Errorf("resumed after %v, want 2-0", got)
	}

	final.Store("failed")
	connections.Store(0)
	code, _, stderr = run("run", "echo", "--input", `{"message":"hi"}`, "--wait")
	if code != ExitJobFailed || !strings.Contains(stderr, "job j1 failed: runtime_error: exit status 3") {
		t.Fatalf("a failed job: exit %d\n%s", code, stderr)
	}

	mu.Lock()
	env["AIGW_CLIENT_SECRET"] = "wrong"
	mu.Unlock()
	code, _, stderr = run("jobs", "get", "j1")
	if code != ExitAPIRefused || !strings.Contains(stderr, "client authentication failed") {
		t.Fatalf("a wrong secret: exit %d\n%s", code, stderr)
	}
}

// TestProgressBarOnATerminal: on a terminal the progress is a bar that
// reaches 100 %, with the log lines printed above it.
func TestProgressBarOnATerminal(t *testing.T) {
	var buf bytes.Buffer
	p := newProgress(&buf, true, "j1")
	p.state("running", 1, "node-1")
	p.progress(0.5, "half way")
	p.log([]string{"loading model"})
	p.progress(1, "")
	p.state("succeeded", 1, "node-1")
	p.done()
	out := buf.String()
	for _, want := range []string{"j1 running on node-1", "half way", " 50%", "loading model\n", "100%", "j1 succeeded"} {
		if !strings.Contains(out, want) {
			t.Errorf("the bar's output lacks %q:\n%q", want, out)
		}
	}
}

// TestAPIFailureExits5: a 5xx answer prints the API's message and exits 5.
func TestAPIFailureExits5(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/oauth/token") {
			fmt.Fprint(w, `{"access_token":"tok","token_type":"Bearer","expires_in":900,"scope":"jobs:read"}`)
			return
		}
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"error":{"code":"unavailable","message":"a backing service is unavailable; retry later"}}`)
	}))
	defer srv.Close()
	env := map[string]string{"AIGW_URL": srv.URL + "/function/router", "AIGW_CLIENT_ID": "cl", "AIGW_CLIENT_SECRET": "s"}
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), "test", []string{"jobs", "list"}, func(k string) string { return env[k] }, strings.NewReader(""), &stdout, &stderr)
	if code != ExitAPIFailed || !strings.Contains(stderr.String(), "a backing service is unavailable; retry later (HTTP 503 unavailable)") {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
}
