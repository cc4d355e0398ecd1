package agent

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/testwait"
	"github.com/aigw/aigw/worker/internal/metrics"
)

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestMetricsAndHealthOfARealAgent runs a job, reads /metrics, then checks
// that /healthz says 503 while the agent drains a running job.
func TestMetricsAndHealthOfARealAgent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.algo("echo", []string{"aigw-echo"}, 0, nil)
	b.algo("sleeper", []string{"./sleeper"}, 0, nil)
	m := metrics.New()
	var mu sync.Mutex
	var dispatched []Dispatch
	finished := map[string]string{}
	cfg := b.config("w1", 2)
	cfg.ShutdownGrace = 2 * time.Second
	a, err := New(cfg, Deps{Redis: b.rdb, Queue: b.q, Jobs: b.jobs, Algorithms: b.algos, Events: b.ev,
		Registry: b.reg, Artifacts: b.arts, Metrics: m,
		OnDispatch: func(d Dispatch) { mu.Lock(); dispatched = append(dispatched, d); mu.Unlock() },
		OnFinish:   func(id, outcome string) { mu.Lock(); finished[id] = outcome; mu.Unlock() },
	}, nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m.Handler(a.Healthy))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	if code, body := httpGet(t, srv.URL+"/healthz"); code != http.StatusOK {
		t.Fatalf("healthz while working: %d %q", code, body)
	}
	id := b.submit("echo", `{"message":"hi"}`, nil)
	b.waitState(id, 15*time.Second, job.Succeeded)
	// The record turns succeeded before the run's goroutine counts the
	// outcome and gives its slot back, so wait for all of it to show.
	wants := []string{
		"aigw_worker_jobs_started_total 1",
		`aigw_worker_jobs_finished_total{outcome="succeeded"} 1`,
		"aigw_worker_run_seconds_count 1",
		"aigw_worker_queue_wait_seconds_count 1",
		"aigw_worker_slots_busy 0",
		"aigw_worker_gpus_busy 0",
		`aigw_usage_cpu_seconds_total{pool="` + b.pool + `",tenant="t1"} `,
		`aigw_usage_gpu_seconds_total{pool="` + b.pool + `",tenant="t1"} 0`,
	}
	var missing []string
	var body string
	if !testwait.Poll(5*time.Second, func() bool {
		_, body = httpGet(t, srv.URL+"/metrics")
		missing = missing[:0]
		for _, want := range wants {
			if !strings.Contains(body, want) {
				missing = append(missing, want)
			}
		}
		return len(missing) == 0
	}) {
		t.Fatalf("/metrics still lacks %q after 5 s:\n%s", missing, body)
	}
	mu.Lock()
	if len(dispatched) != 1 || dispatched[0].JobID != id || dispatched[0].Store <= 0 || !dispatched[0].Claimed ||
		dispatched[0].Store > dispatched[0].Started.Sub(dispatched[0].Taken) || finished[id] != "succeeded" {
		t.Errorf("hooks: dispatched %+v, finished %v", dispatched, finished)
	}
	mu.Unlock()

	// A running job keeps the agent draining after the stop.
	sid := b.submit("sleeper", `{}`, nil)
	b.waitState(sid, 15*time.Second, job.Running)
	b.pid(sid)
	cancel()
	var code int
	if !testwait.Poll(5*time.Second, func() bool {
		code, body = httpGet(t, srv.URL+"/healthz")
		if code != http.StatusServiceUnavailable {
			return false
		}
		if !strings.Contains(body, "draining") {
			t.Fatalf("healthz while draining: %q", body)
		}
		return true
	}) {
		t.Fatalf("healthz still %d after the stop", code)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	done <- nil // for the deferred stop
	_, body = httpGet(t, srv.URL+"/metrics")
	if !strings.Contains(body, `aigw_worker_jobs_finished_total{outcome="handed_back"} 1`) {
		t.Errorf("the handed-back run is not counted:\n%s", body)
	}
}
