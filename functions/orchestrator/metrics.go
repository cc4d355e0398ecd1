package orchestrator

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aigw/aigw/internal/httpmetrics"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/jobstore"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/internal/registry"
)

// Metrics is the orchestrator's view of the whole system for Prometheus,
// served with the HTTP metrics at GET /_/metrics. The gauges are refreshed
// after every tick, on every replica (also those whose tick another replica's
// lease skipped), so each replica reports the same cluster-wide values:
// aggregate them with max, not sum.
//
//	aigw_jobs{pool, state}                          queued and running jobs (MongoDB)
//	aigw_queue_depth{pool, priority}                ready jobs in the queue (Redis)
//	aigw_queue_delayed{pool}                        jobs waiting for a retry's backoff
//	aigw_queue_running{pool}                        jobs taken by a worker, not yet acknowledged
//	aigw_queue_dead_letters{pool}                   entries in the dead-letter streams
//	aigw_queue_oldest_wait_seconds{pool}            wait of the oldest ready job
//	aigw_pool_workers{pool}                         live workers (draining ones included)
//	aigw_pool_slots{pool}, aigw_pool_slots_busy{pool}
//	aigw_pool_gpus{pool}, aigw_pool_gpus_busy{pool}
//	aigw_webhook_deliveries_total{outcome}          delivery attempts: delivered, retrying, failed, lost
//	aigw_orchestrator_tick_duration_seconds         ticks that held the lease
//	aigw_orchestrator_tick_errors_total{part}       parts of a tick that failed
//	aigw_orchestrator_stats_timestamp_seconds       when the gauges were last refreshed
//	aigw_orchestrator_stats_errors_total            refreshes that failed
type Metrics struct {
	Registry *prometheus.Registry

	jobs, queueDepth, queueDelayed, queueRunning, queueDead, oldestWait *gaugeSet
	workers, slots, slotsBusy, gpus, gpusBusy                           *gaugeSet
	webhooks                                                            *prometheus.CounterVec
	tickSeconds                                                         prometheus.Histogram
	tickErrors                                                          *prometheus.CounterVec
	statsAt                                                             prometheus.Gauge
	statsErrors                                                         prometheus.Counter

	// sources of the gauges
	jobstore *jobstore.Store
	queue    *queue.Queue
	pools    *registry.Registry

	mu sync.Mutex // one refresh at a time
}

// Webhook delivery outcomes (webhook.DeliverResult).
const (
	WebhookDelivered = "delivered"
	WebhookRetrying  = "retrying"
	WebhookFailed    = "failed"
	WebhookLost      = "lost"
)

// tickParts name the parts of a tick in Summary.Errors.
var tickParts = []string{"reaper", "reconciler", "pipelines", "webhook_drain", "webhook_deliver", "lease"}

func newMetrics(jobs *jobstore.Store, q *queue.Queue, pools *registry.Registry) *Metrics {
	reg := httpmetrics.NewRegistry()
	m := &Metrics{Registry: reg, jobstore: jobs, queue: q, pools: pools}
	gauge := func(name, help string, labels ...string) *gaugeSet {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
		reg.MustRegister(g)
		return &gaugeSet{vec: g, seen: map[string][]string{}}
	}
	m.jobs = gauge("aigw_jobs", "Queued and running jobs, by pool and state (MongoDB).", "pool", "state")
	m.queueDepth = gauge("aigw_queue_depth", "Jobs ready in a pool's queue, by priority.", "pool", "priority")
	m.queueDelayed = gauge("aigw_queue_delayed", "Jobs waiting for the backoff of a retry.", "pool")
	m.queueRunning = gauge("aigw_queue_running", "Jobs taken by a worker and not yet acknowledged.", "pool")
	m.queueDead = gauge("aigw_queue_dead_letters", "Entries in a pool's dead-letter streams.", "pool")
	m.oldestWait = gauge("aigw_queue_oldest_wait_seconds", "How long the oldest ready job of a pool has waited (0 when none waits).", "pool")
	m.workers = gauge("aigw_pool_workers", "Live workers of a pool (heartbeat not expired).", "pool")
	m.slots = gauge("aigw_pool_slots", "Slots of a pool's live workers.", "pool")
	m.slotsBusy = gauge("aigw_pool_slots_busy", "Slots of a pool's live workers that hold a run.", "pool")
	m.gpus = gauge("aigw_pool_gpus", "GPUs of a pool's live workers.", "pool")
	m.gpusBusy = gauge("aigw_pool_gpus_busy", "GPUs of a pool's live workers that a run holds.", "pool")
	m.webhooks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aigw_webhook_deliveries_total", Help: "Webhook delivery attempts by outcome: delivered (2xx), retrying (scheduled again), failed (given up), lost (another replica claimed it).",
	}, []string{"outcome"})
	for _, o := range []string{WebhookDelivered, WebhookRetrying, WebhookFailed, WebhookLost} {
		m.webhooks.WithLabelValues(o) // every outcome exported from the start, at 0
	}
	m.tickSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "aigw_orchestrator_tick_duration_seconds", Help: "Time of a tick that held the lease.",
		Buckets: prometheus.ExponentialBuckets(0.001, 3, 12),
	})
	m.tickErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aigw_orchestrator_tick_errors_total", Help: "Parts of a tick that failed, by part.",
	}, []string{"part"})
	m.statsAt = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "aigw_orchestrator_stats_timestamp_seconds", Help: "Unix time of the last refresh of the jobs, queue and pool gauges.",
	})
	m.statsErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "aigw_orchestrator_stats_errors_total", Help: "Refreshes of the jobs, queue and pool gauges that failed.",
	})
	for _, part := range tickParts {
		m.tickErrors.WithLabelValues(part) // every part exported from the start, at 0
	}
	reg.MustRegister(m.webhooks, m.tickSeconds, m.tickErrors, m.statsAt, m.statsErrors)
	return m
}

// observeTick records a tick that held the lease.
func (m *Metrics) observeTick(s Summary, took time.Duration) {
	m.tickSeconds.Observe(took.Seconds())
	for part := range s.Errors {
		m.tickErrors.WithLabelValues(part).Inc()
	}
	d := s.Deliver
	m.webhooks.WithLabelValues(WebhookDelivered).Add(float64(d.Delivered))
	m.webhooks.WithLabelValues(WebhookRetrying).Add(float64(d.Retrying))
	m.webhooks.WithLabelValues(WebhookFailed).Add(float64(d.Failed))
	m.webhooks.WithLabelValues(WebhookLost).Add(float64(d.Lost))
}

// Refresh reads the pools, their queues and workers, and the active jobs, and
// sets the gauges: a few round trips to Redis per pool and one indexed
// aggregation of the queued and running jobs in MongoDB. Series of pools that
// are gone are dropped.
func (m *Metrics) Refresh(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	err := m.refresh(ctx)
	if err != nil {
		m.statsErrors.Inc()
		return err
	}
	m.statsAt.Set(float64(time.Now().UnixMilli()) / 1000)
	return nil
}

func (m *Metrics) refresh(ctx context.Context) error {
	names, err := m.pools.Pools(ctx)
	if err != nil {
		return fmt.Errorf("pools: %w", err)
	}
	active, err := m.jobstore.ActiveByPool(ctx)
	if err != nil {
		return err
	}
	all := map[string]bool{}
	for _, p := range names {
		all[p] = true
	}
	for p := range active {
		all[p] = true
	}
	sets := []*gaugeSet{m.jobs, m.queueDepth, m.queueDelayed, m.queueRunning, m.queueDead, m.oldestWait,
		m.workers, m.slots, m.slotsBusy, m.gpus, m.gpusBusy}
	for _, g := range sets {
		g.begin()
	}
	for p := range all {
		n := active[p]
		m.jobs.set(float64(n.Queued), p, string(job.Queued))
		m.jobs.set(float64(n.Running), p, string(job.Running))
		if queue.ValidatePool(p) != nil {
			continue // a job's pool no worker can serve: counted above only
		}
		st, err := m.queue.Stats(ctx, p)
		if err != nil {
			return err
		}
		for _, pr := range job.Priorities() {
			m.queueDepth.set(float64(st.Ready[pr]), p, string(pr))
		}
		m.queueDelayed.set(float64(st.Delayed), p)
		m.queueRunning.set(float64(st.Running), p)
		m.queueDead.set(float64(st.Dead), p)
		m.oldestWait.set(st.OldestWait.Seconds(), p)
		ws, err := m.pools.Workers(ctx, p)
		if err != nil {
			return fmt.Errorf("workers of pool %s: %w", p, err)
		}
		var slots, slotsBusy, gpus, gpusBusy int
		for _, w := range ws {
			slots += w.Slots
			slotsBusy += w.SlotsBusy
			gpus += len(w.GPUs)
			gpusBusy += len(w.GPUs) - w.GPUsFree()
		}
		m.workers.set(float64(len(ws)), p)
		m.slots.set(float64(slots), p)
		m.slotsBusy.set(float64(slotsBusy), p)
		m.gpus.set(float64(gpus), p)
		m.gpusBusy.set(float64(gpusBusy), p)
	}
	for _, g := range sets {
		g.end()
	}
	return nil
}

// gaugeSet is a GaugeVec whose series not set in a refresh are deleted at its
// end (a pool that went away stops being reported).
type gaugeSet struct {
	vec  *prometheus.GaugeVec
	seen map[string][]string // label values joined → label values, set in the last refresh
	now  map[string][]string
}

func (g *gaugeSet) begin() { g.now = map[string][]string{} }

func (g *gaugeSet) set(v float64, labels ...string) {
	g.vec.WithLabelValues(labels...).Set(v)
	g.now[fmt.Sprint(labels)] = labels
}

func (g *gaugeSet) end() {
	for k, labels := range g.seen {
		if _, ok := g.now[k]; !ok {
			g.vec.DeleteLabelValues(labels...)
		}
	}
	g.seen, g.now = g.now, nil
}
