package metrics

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/testwait"
)

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// serve runs Serve on a free port until the test ends and returns its base URL.
func serve(t *testing.T, m *Metrics, healthy func() error) string {
	t.Helper()
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, addr, m.Handler(healthy)) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after its context ended")
		}
	})
	var err error
	if !testwait.Poll(5*time.Second, func() bool {
		var c net.Conn
		if c, err = net.Dial("tcp", addr); err != nil {
			return false
		}
		_ = c.Close()
		return true
	}) {
		t.Fatalf("metrics server not listening on %s: %v", addr, err)
	}
	return "http://" + addr
}

func TestMetricsEndpoint(t *testing.T) {
	m := New()
	base := serve(t, m, func() error { return nil })
	// What the agent records for one job.
	m.JobsStarted.Inc()
	m.QueueWait.Observe(0.002)
	m.RunSeconds.Observe(0.05)
	m.JobsFinished.WithLabelValues("succeeded").Inc()
	m.SlotsBusy.Set(3)
	m.GPUsBusy.Set(1)
	m.WarmHits.WithLabelValues("echo").Inc()
	m.ColdStarts.WithLabelValues("echo").Inc()
	m.ColdStart.Observe(0.3)
	m.SetupSeconds.WithLabelValues("echo").Observe(0.25)
	m.SetupFailed.WithLabelValues("echo").Inc()
	code, body := get(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d", code)
	}
	for _, want := range []string{
		"# TYPE aigw_worker_jobs_started_total counter",
		"aigw_worker_jobs_started_total 1",
		`aigw_worker_jobs_finished_total{outcome="succeeded"} 1`,
		"# TYPE aigw_worker_run_seconds histogram",
		"aigw_worker_run_seconds_count 1",
		"aigw_worker_queue_wait_seconds_count 1",
		"aigw_worker_slots_busy 3",
		"aigw_worker_gpus_busy 1",
		`aigw_worker_warm_hits_total{algorithm="echo"} 1`,
		`aigw_worker_cold_starts_total{algorithm="echo"} 1`,
		"aigw_worker_cold_start_seconds_count 1",
		`aigw_worker_setup_seconds_count{algorithm="echo"} 1`,
		`aigw_worker_setup_failures_total{algorithm="echo"} 1`,
		"go_goroutines",
		"process_start_time_seconds",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if code, _ := get(t, base+"/nothing"); code != http.StatusNotFound {
		t.Errorf("GET /nothing: %d", code)
	}
	resp, err := http.Post(base+"/metrics", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics: %d", resp.StatusCode)
	}
}

func TestHealthz(t *testing.T) {
	var draining atomic.Bool
	base := serve(t, New(), func() error {
		if draining.Load() {
			return errors.New("draining")
		}
		return nil
	})
	if code, body := get(t, base+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("healthy: %d %q", code, body)
	}
	draining.Store(true)
	if code, body := get(t, base+"/healthz"); code != http.StatusServiceUnavailable || body != "draining\n" {
		t.Fatalf("draining: %d %q", code, body)
	}
}

func TestServeReportsAListenError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := Serve(context.Background(), ln.Addr().String(), http.NotFoundHandler()); err == nil {
		t.Fatal("Serve on a taken port returned nil")
	}
}
