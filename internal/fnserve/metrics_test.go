package fnserve_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aigw/aigw/internal/fnserve"
	"github.com/aigw/aigw/internal/httpmetrics"
	"github.com/aigw/aigw/internal/testlog"
)

// A function served by fnserve answers GET /_/metrics with its own metrics
// and the HTTP metrics of the requests it served.
func TestEveryFunctionServesItsMetrics(t *testing.T) {
	reg := httpmetrics.NewRegistry()
	own := prometheus.NewCounter(prometheus.CounterOpts{Name: "aigw_test_things_total", Help: "Things."})
	reg.MustRegister(own)
	own.Add(3)
	mux := http.NewServeMux()
	mux.Handle("GET /_/health", fnserve.Health(nil))
	mux.HandleFunc("GET /v1/things/{id}", func(w http.ResponseWriter, r *http.Request) {})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- fnserve.ServeListener(ctx, testlog.New(t), fnserve.Config{ShutdownGrace: time.Second, Metrics: reg}, ln, mux)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	base := "http://" + ln.Addr().String()
	for _, p := range []string{"/_/health", "/v1/things/1", "/v1/things/2"} {
		resp, err := http.Get(base + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	resp, err := http.Post(base+fnserve.MetricsPath, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST %s: %d, want 405", fnserve.MetricsPath, resp.StatusCode)
	}

	f, err := httpmetrics.Scrape(ctx, http.DefaultClient, base+fnserve.MetricsPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"route", "/v1/things/{id}", "code", "200"}, 2},
		{[]string{"route", "/_/health", "code", "200"}, 1},
		{[]string{"route", fnserve.MetricsPath}, 0},
	} {
		if got, _ := f.Value(httpmetrics.RequestsTotal, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", httpmetrics.RequestsTotal, c.labels, got, c.want)
		}
	}
	if v, ok := f.Value("aigw_test_things_total"); !ok || v != 3 {
		t.Errorf("the function's own counter: %v, %v", v, ok)
	}
}
