package httpmetrics_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/aigw/aigw/internal/httpmetrics"
	"github.com/aigw/aigw/internal/testwait"
)

// serve runs h behind the middleware on a real server, with the registry at
// /metrics, and returns the base URL and a scrape function.
func serve(t *testing.T, h http.Handler) (string, func() httpmetrics.Families) {
	t.Helper()
	reg := httpmetrics.NewRegistry()
	app := httptest.NewServer(httpmetrics.New(reg).Middleware(h))
	t.Cleanup(app.Close)
	metrics := httptest.NewServer(httpmetrics.Handler(reg))
	t.Cleanup(metrics.Close)
	return app.URL, func() httpmetrics.Families {
		t.Helper()
		f, err := httpmetrics.Scrape(context.Background(), http.DefaultClient, metrics.URL)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
}

func call(t *testing.T, method, url string) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func wantCount(t *testing.T, f httpmetrics.Families, want float64, labels ...string) {
	t.Helper()
	got, ok := f.Value(httpmetrics.RequestsTotal, labels...)
	if !ok || got != want {
		t.Errorf("%s%v = %v (found %v), want %v", httpmetrics.RequestsTotal, labels, got, ok, want)
	}
}

func TestChiRoutesAreLabelledByPatternNotPath(t *testing.T) {
	r := chi.NewRouter()
	r.Route("/v1", func(r chi.Router) {
		r.Get("/jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
			if chi.URLParam(r, "id") == "missing" {
				http.Error(w, "no such job", http.StatusNotFound)
				return
			}
			_, _ = w.Write([]byte("{}"))
		})
		r.Post("/algorithms/{name}/jobs", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusAccepted) })
	})
	base, scrape := serve(t, r)
	for _, id := range []string{"01A", "01B", "01C"} {
		if c := call(t, "GET", base+"/v1/jobs/"+id); c != 200 {
			t.Fatalf("GET job: %d", c)
		}
	}
	call(t, "GET", base+"/v1/jobs/missing")
	call(t, "POST", base+"/v1/algorithms/echo/jobs")
	call(t, "GET", base+"/nowhere/at/all")
	f := scrape()
	wantCount(t, f, 3, "method", "GET", "route", "/v1/jobs/{id}", "code", "200")
	wantCount(t, f, 1, "method", "GET", "route", "/v1/jobs/{id}", "code", "404")
	wantCount(t, f, 1, "method", "POST", "route", "/v1/algorithms/{name}/jobs", "code", "202")
	wantCount(t, f, 1, "route", httpmetrics.NoRoute, "code", "404")
	if n, _ := f.Value(httpmetrics.RequestDuration, "route", "/v1/jobs/{id}"); n != 4 {
		t.Errorf("latency histogram of /v1/jobs/{id} counts %v requests, want 4", n)
	}
	for _, m := range f[httpmetrics.RequestsTotal].GetMetric() {
		for _, l := range m.GetLabel() {
			if strings.Contains(l.GetValue(), "01A") || strings.Contains(l.GetValue(), "echo") {
				t.Errorf("a raw path became a label: %s=%s", l.GetName(), l.GetValue())
			}
		}
	}
	if v, ok := f.Value(httpmetrics.InFlight); !ok || v != 0 {
		t.Errorf("in flight after the requests: %v, %v", v, ok)
	}
}

func TestServeMuxRoutesAreLabelledByPatternWithoutMethod(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/pipelines/{name}", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("POST /tick", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusUnauthorized) })
	base, scrape := serve(t, mux)
	call(t, "GET", base+"/v1/pipelines/a")
	call(t, "GET", base+"/v1/pipelines/b")
	call(t, "POST", base+"/tick")
	call(t, "GET", base+"/unknown")
	f := scrape()
	wantCount(t, f, 2, "method", "GET", "route", "/v1/pipelines/{name}", "code", "200")
	wantCount(t, f, 1, "method", "POST", "route", "/tick", "code", "401")
	wantCount(t, f, 1, "method", "GET", "route", httpmetrics.NoRoute, "code", "404")
}

func TestOddMethodsShareOneLabel(t *testing.T) {
	base, scrape := serve(t, http.NotFoundHandler())
	call(t, "PROPFIND", base+"/")
	call(t, "BREW", base+"/")
	wantCount(t, scrape(), 2, "method", "OTHER")
}

// An event stream flushes through the middleware (ResponseController reaches
// the connection) and is counted once it ends.
func TestEventStreamsFlushThroughTheMiddleware(t *testing.T) {
	release := make(chan struct{})
	r := chi.NewRouter()
	r.Get("/v1/jobs/{id}/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: one\n\n")
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("flush: %v", err)
		}
		<-release
		_, _ = io.WriteString(w, "data: two\n\n")
	})
	base, scrape := serve(t, r)
	resp, err := http.Get(base + "/v1/jobs/01X/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "data: one\n" {
		t.Fatalf("first event before the handler returned: %q, %v", line, err)
	}
	if v, _ := scrape().Value(httpmetrics.InFlight); v != 1 {
		t.Errorf("in flight while streaming: %v, want 1", v)
	}
	close(release)
	_, _ = io.Copy(io.Discard, resp.Body)
	testwait.Eventually(t, 5*time.Second, func() bool {
		n, _ := scrape().Value(httpmetrics.RequestsTotal, "route", "/v1/jobs/{id}/events", "code", "200")
		return n == 1
	}, "the stream counted once it ended")
}

func TestNewSharesInstrumentsOnARegistryThatHasThem(t *testing.T) {
	reg := httpmetrics.NewRegistry()
	a := httptest.NewServer(httpmetrics.New(reg).Middleware(http.NotFoundHandler()))
	defer a.Close()
	b := httptest.NewServer(httpmetrics.New(reg).Middleware(http.NotFoundHandler()))
	defer b.Close()
	call(t, "GET", a.URL)
	call(t, "GET", b.URL)
	m := httptest.NewServer(httpmetrics.Handler(reg))
	defer m.Close()
	f, err := httpmetrics.Scrape(context.Background(), http.DefaultClient, m.URL)
	if err != nil {
		t.Fatal(err)
	}
	wantCount(t, f, 2, "code", "404")
	for _, name := range []string{"go_goroutines", "process_start_time_seconds"} {
		if _, ok := f[name]; !ok {
			t.Errorf("the registry lacks %s", name)
		}
	}
}

// A handler that panics is counted (as a 500 when it wrote nothing) and the
// panic goes on to the server, which closes the connection.
func TestPanicsAreCountedAndPassedOn(t *testing.T) {
	r := chi.NewRouter()
	r.Get("/boom/{id}", func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) })
	base, scrape := serve(t, r)
	if _, err := http.Get(base + "/boom/1"); err == nil {
		t.Fatal("the server answered a panicking handler")
	}
	wantCount(t, scrape(), 1, "route", "/boom/{id}", "code", "500")
}
