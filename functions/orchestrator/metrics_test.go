package orchestrator

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/fnserve"
	"github.com/aigw/aigw/internal/httpmetrics"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/registry"
)

// The orchestrator's metrics, as Prometheus scrapes them at /_/metrics after
// ticks: jobs by state, the queue and workers of each pool, webhook outcomes.
func TestMetricsReportJobsQueuesWorkersAndWebhooks(t *testing.T) {
	t.Parallel()
	b := setup(t)
	srv := httptest.NewServer(fnserve.WithMetrics(b.svc.Metrics().Registry, b.svc.Handler()))
	t.Cleanup(srv.Close)
	scrape := func() httpmetrics.Families {
		t.Helper()
		f, err := httpmetrics.Scrape(b.ctx, http.DefaultClient, srv.URL+fnserve.MetricsPath)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	want := func(f httpmetrics.Families, name string, want float64, labels ...string) {
		t.Helper()
		if got, ok := f.Value(name, labels...); !ok || got != want {
			t.Errorf("%s%v = %v (exported: %v), want %v", name, labels, got, ok, want)
		}
	}

	// Before any tick every webhook outcome is exported, at 0; requests are
	// counted by the standard mux's pattern.
	resp, err := http.Get(srv.URL + "/_/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	f := scrape()
	want(f, "aigw_http_requests_total", 1, "method", "GET", "route", "/_/health", "code", "200")
	for _, o := range []string{WebhookDelivered, WebhookRetrying, WebhookFailed, WebhookLost} {
		want(f, "aigw_webhook_deliveries_total", 0, "outcome", o)
	}

	workers := registry.New(b.rdb)
	t.Cleanup(func() { _ = workers.RemovePool(context.Background(), b.pool) })
	if err := workers.Heartbeat(b.ctx, registry.Worker{Pool: b.pool, Node: "node-1", Slots: 4, SlotsBusy: 1,
		GPUs: []registry.GPU{{Index: 0, Busy: true}, {Index: 1}}}, time.Minute); err != nil {
		t.Fatal(err)
	}
	b.createJob(t, job.Job{})
	b.createJob(t, job.Job{Priority: job.High})
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(rcv.Close)
	past := time.Now().Add(-time.Second)
	b.createJob(t, job.Job{ExpiresAt: &past, Webhook: &job.Webhook{URL: rcv.URL}})

	// The tick expires the third job and delivers its webhook, the reconciler
	// queues the other two; the gauges are read after it.
	if s := b.tick(t); s.Deliver.Delivered != 1 || s.Reconciler.Enqueued != 2 {
		t.Fatalf("tick = %+v", s)
	}
	f = scrape()
	want(f, "aigw_jobs", 2, "pool", b.pool, "state", "queued")
	want(f, "aigw_jobs", 0, "pool", b.pool, "state", "running")
	want(f, "aigw_queue_depth", 1, "pool", b.pool, "priority", "high")
	want(f, "aigw_queue_depth", 1, "pool", b.pool, "priority", "normal")
	want(f, "aigw_queue_depth", 0, "pool", b.pool, "priority", "low")
	want(f, "aigw_queue_running", 0, "pool", b.pool)
	want(f, "aigw_queue_delayed", 0, "pool", b.pool)
	want(f, "aigw_queue_dead_letters", 0, "pool", b.pool)
	if v, ok := f.Value("aigw_queue_oldest_wait_seconds", "pool", b.pool); !ok || v < 0 || v > 60 {
		t.Errorf("oldest wait = %v (exported: %v)", v, ok)
	}
	want(f, "aigw_pool_workers", 1, "pool", b.pool)
	want(f, "aigw_pool_slots", 4, "pool", b.pool)
	want(f, "aigw_pool_slots_busy", 1, "pool", b.pool)
	want(f, "aigw_pool_gpus", 2, "pool", b.pool)
	want(f, "aigw_pool_gpus_busy", 1, "pool", b.pool)
	want(f, "aigw_webhook_deliveries_total", 1, "outcome", WebhookDelivered)
	want(f, "aigw_orchestrator_tick_duration_seconds", 1)
	if at, _ := f.Value("aigw_orchestrator_stats_timestamp_seconds"); time.Since(time.Unix(int64(at), 0)) > time.Minute {
		t.Errorf("stats refreshed at %v", at)
	}

	// The worker leaves: the pool is still known, with no workers.
	if err := workers.Remove(b.ctx, b.pool, "node-1"); err != nil {
		t.Fatal(err)
	}
	b.tick(t)
	f = scrape()
	want(f, "aigw_pool_workers", 0, "pool", b.pool)
	want(f, "aigw_pool_slots", 0, "pool", b.pool)

	// The pool goes away: its series go with it.
	if err := b.queue.Purge(b.ctx, b.pool); err != nil {
		t.Fatal(err)
	}
	if _, err := b.db.Collection("jobs").DeleteMany(b.ctx, map[string]any{"pool": b.pool}); err != nil {
		t.Fatal(err)
	}
	if err := workers.RemovePool(b.ctx, b.pool); err != nil {
		t.Fatal(err)
	}
	b.tick(t)
	f = scrape()
	for _, name := range []string{"aigw_jobs", "aigw_queue_depth", "aigw_pool_workers", "aigw_queue_oldest_wait_seconds"} {
		if v, ok := f.Value(name, "pool", b.pool); ok {
			t.Errorf("%s of a removed pool still exported: %v", name, v)
		}
	}
}
