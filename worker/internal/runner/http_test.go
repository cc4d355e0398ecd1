package runner

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/algorithm"
)

func httpSpec(url, protocol string) Spec {
	return Spec{JobID: "job-7", Input: json.RawMessage(`{"prompt":"hi"}`), Timeout: 5 * time.Second,
		Def: &algorithm.Definition{Name: "m", Version: "1.0.0",
			Runtime: algorithm.Runtime{Type: algorithm.HTTP, URL: url, Protocol: protocol}}}
}

// server answers every POST with status and body, recording the last request.
type server struct {
	*httptest.Server
	body, jobID, contentType string
}

func newServer(t *testing.T, status int, answer string) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.body, s.jobID, s.contentType = string(b), r.Header.Get("X-Aigw-Job-Id"), r.Header.Get("Content-Type")
		if r.Method != http.MethodPost {
			status = http.StatusMethodNotAllowed
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(s.Close)
	return s
}

func httpRunner() *Runner { return &Runner{Limits: Limits{Output: 1 << 10}} }

func TestHTTPJSON(t *testing.T) {
	t.Parallel()
	s := newServer(t, 200, " {\"text\":\"hello\"}\n")
	started := 0
	res := httpRunner().Run(context.Background(), httpSpec(s.URL, ""), Hooks{Started: func(pid int) { started++ }})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if string(res.Output) != `{"text":"hello"}` || res.PID != 0 || res.OutputDir != "" {
		t.Fatalf("result %+v", res)
	}
	if s.body != `{"prompt":"hi"}` || s.jobID != "job-7" || s.contentType != "application/json" || started != 1 {
		t.Fatalf("request body %q job %q type %q, started %d", s.body, s.jobID, s.contentType, started)
	}
}

func TestHTTPV2Request(t *testing.T) {
	t.Parallel()
	s := newServer(t, 200, `{"model_name":"m","outputs":[{"name":"out","shape":[1],"datatype":"BYTES","data":["x"]}]}`)
	res := httpRunner().Run(context.Background(), httpSpec(s.URL, "v2"), Hooks{})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	var req struct {
		Inputs []struct {
			Name     string `json:"name"`
			Shape    []int  `json:"shape"`
			Datatype string `json:"datatype"`
			Data     []any  `json:"data"`
		} `json:"inputs"`
	}
	if err := json.Unmarshal([]byte(s.body), &req); err != nil {
		t.Fatalf("v2 request %q: %v", s.body, err)
	}
	if len(req.Inputs) != 1 || req.Inputs[0].Name != "input" || req.Inputs[0].Datatype != "BYTES" ||
		len(req.Inputs[0].Shape) != 1 || req.Inputs[0].Shape[0] != 1 || len(req.Inputs[0].Data) != 1 || req.Inputs[0].Data[0] != `{"prompt":"hi"}` {
		t.Fatalf("v2 request %s", s.body)
	}
	if !strings.Contains(string(res.Output), `"outputs"`) {
		t.Fatalf("output %s", res.Output)
	}
}

func TestHTTPErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name      string
		status    int
		body      string
		code      string
		retryable bool
		message   string
	}{
		{"4xx object error", 422, `{"error":{"code":"bad","message":"prompt too long"}}`, CodeHTTP, false, "prompt too long"},
		{"4xx v2 error", 400, `{"error":"unknown tensor"}`, CodeHTTP, false, "unknown tensor"},
		{"5xx message", 503, `{"message":"model loading"}`, CodeHTTP, true, "model loading"},
		{"5xx text", 500, "boom\n", CodeHTTP, true, "boom"},
		{"not JSON", 200, "plain", CodeBadOut, false, "not a JSON document"},
		{"over the limit", 200, `{"x":"` + strings.Repeat("a", 2000) + `"}`, CodeBadOut, false, "limit"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newServer(t, c.status, c.body)
			res := httpRunner().Run(context.Background(), httpSpec(s.URL, ""), Hooks{})
			if res.Err == nil || res.Err.Code != c.code || res.Err.Retryable != c.retryable || !strings.Contains(res.Err.Message, c.message) {
				t.Fatalf("err %+v, want %s retryable=%v containing %q", res.Err, c.code, c.retryable, c.message)
			}
		})
	}
}

func TestHTTPUnreachableTimeoutAndStop(t *testing.T) {
	t.Parallel()
	dead := httptest.NewServer(http.NotFoundHandler())
	url := dead.URL
	dead.Close()
	res := httpRunner().Run(context.Background(), httpSpec(url, ""), Hooks{})
	if res.Err == nil || res.Err.Code != CodeRuntime || !res.Err.Retryable {
		t.Fatalf("unreachable: err %+v", res.Err)
	}

	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	s := httpSpec(slow.URL, "")
	s.Timeout = 100 * time.Millisecond
	res = httpRunner().Run(context.Background(), s, Hooks{})
	if res.Err == nil || res.Err.Code != CodeTimeout || !res.Err.Retryable {
		t.Fatalf("timeout: err %+v", res.Err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	res = httpRunner().Run(ctx, httpSpec(slow.URL, ""), Hooks{})
	if res.Err == nil || res.Err.Code != CodeStopped {
		t.Fatalf("stopped: err %+v", res.Err)
	}
}
