// Package metrics holds the worker's Prometheus metrics, on a registry of its
// own, and serves them with a health check.
package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the worker's instruments. Safe for concurrent use.
type Metrics struct {
	Registry     *prometheus.Registry
	JobsStarted  prometheus.Counter
	JobsFinished *prometheus.CounterVec // outcome: succeeded, failed, canceled, retried, lost, handed_back
	RunSeconds   prometheus.Histogram
	QueueWait    prometheus.Histogram
	GPUsBusy     prometheus.Gauge
	SlotsBusy    prometheus.Gauge
}

// New returns the worker's metrics, registered on a new registry (with the Go
// and process collectors).
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		JobsStarted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aigw_worker_jobs_started_total", Help: "Runs started (gang members included).",
		}),
		JobsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aigw_worker_jobs_finished_total", Help: "Runs finished, by outcome.",
		}, []string{"outcome"}),
		RunSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "aigw_worker_run_seconds", Help: "Run time of an attempt.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 14),
		}),
		QueueWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "aigw_worker_queue_wait_seconds", Help: "Time from enqueue to start.",
			Buckets: prometheus.ExponentialBuckets(0.001, 3, 14),
		}),
		GPUsBusy:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "aigw_worker_gpus_busy", Help: "GPUs held by runs."}),
		SlotsBusy: prometheus.NewGauge(prometheus.GaugeOpts{Name: "aigw_worker_slots_busy", Help: "Slots held by runs."}),
	}
	m.Registry.MustRegister(m.JobsStarted, m.JobsFinished, m.RunSeconds, m.QueueWait, m.GPUsBusy, m.SlotsBusy,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

// Handler serves /metrics and /healthz (200 while healthy() is nil, else 503).
func (m *Metrics) Handler(healthy func() error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := healthy(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(err.Error() + "\n"))
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

// Serve listens on addr and serves h until ctx ends.
func Serve(ctx context.Context, addr string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
