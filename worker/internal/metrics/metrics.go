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
	// The serve runtime (label algorithm): jobs that found a ready warm
	// process, jobs that waited for one to start, set-up times and failures.
	WarmHits     *prometheus.CounterVec
	ColdStarts   *prometheus.CounterVec
	ColdStart    prometheus.Histogram
	SetupSeconds *prometheus.HistogramVec
	SetupFailed  *prometheus.CounterVec
	// Metered usage of the attempts this worker recorded (labels tenant,
	// pool): GPUs × wall time and slots × wall time, as in the job records.
	UsageGPUSeconds *prometheus.CounterVec
	UsageCPUSeconds *prometheus.CounterVec
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
		WarmHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aigw_worker_warm_hits_total", Help: "Serve jobs that found a ready warm process.",
		}, []string{"algorithm"}),
		ColdStarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aigw_worker_cold_starts_total", Help: "Serve jobs that waited for a warm process to start.",
		}, []string{"algorithm"}),
		ColdStart: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "aigw_worker_cold_start_seconds", Help: "How long a serve job waited for a warm process to start.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 12),
		}),
		SetupSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "aigw_worker_setup_seconds", Help: "Set-up time of a warm process, from its start to its ready message.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 12),
		}, []string{"algorithm"}),
		SetupFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aigw_worker_setup_failures_total", Help: "Warm processes that did not get ready (set-up timeout, exit, garbage).",
		}, []string{"algorithm"}),
		UsageGPUSeconds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aigw_usage_gpu_seconds_total", Help: "GPU-seconds (GPUs held × wall time) of the attempts recorded, by tenant and pool.",
		}, []string{"tenant", "pool"}),
		UsageCPUSeconds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aigw_usage_cpu_seconds_total", Help: "CPU-seconds (worker slots held × wall time) of the attempts recorded, by tenant and pool.",
		}, []string{"tenant", "pool"}),
	}
	m.Registry.MustRegister(m.UsageGPUSeconds, m.UsageCPUSeconds,
		m.JobsStarted, m.JobsFinished, m.RunSeconds, m.QueueWait, m.GPUsBusy, m.SlotsBusy,
		m.WarmHits, m.ColdStarts, m.ColdStart, m.SetupSeconds, m.SetupFailed,
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
