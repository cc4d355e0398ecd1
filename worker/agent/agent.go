// Package agent is the worker daemon: it registers the node, takes jobs of its
// pool from the queue as far as free slots and GPUs allow, runs them with the
// runtime, renews their leases, reacts to cancel requests, writes each outcome
// as one compare-and-set transition of the job record, and drains on shutdown.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/events"
	"github.com/aigw/aigw/internal/fairq"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/jobstore"
	"github.com/aigw/aigw/internal/lifecycle"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/internal/registry"
	"github.com/aigw/aigw/worker/internal/artifacts"
	"github.com/aigw/aigw/worker/internal/assetcache"
	"github.com/aigw/aigw/worker/internal/config"
	"github.com/aigw/aigw/worker/internal/gang"
	"github.com/aigw/aigw/worker/internal/inputs"
	"github.com/aigw/aigw/worker/internal/metrics"
	"github.com/aigw/aigw/worker/internal/runner"
)

// Causes of a run being stopped from outside (context.Cause of its context).
var (
	errCanceled  = errors.New("cancel requested")
	errLost      = errors.New("lease lost: another worker took the job over")
	errShutdown  = errors.New("worker shutting down: run handed back")
	errGangAbort = errors.New("gang aborted")
)

// Deps are the agent's clients.
type Deps struct {
	Redis      redis.UniversalClient
	Queue      *queue.Queue
	Jobs       *jobstore.Store
	Algorithms algorithm.Source // a Store, or an algorithm.Cache in front of one
	Events     *events.Stream
	Registry   *registry.Registry
	Artifacts  *artifacts.Store
	// Inputs, when set, fetches the files inputs refer to ({"$file": …}).
	Inputs *inputs.Fetcher
	// Assets, when set, is the cache of the algorithms' assets.
	Assets  *assetcache.Cache
	Metrics *metrics.Metrics
	// Quotas, when set, holds a tenant's jobs beyond its max_running quota
	// in the pool in the queue.
	Quotas QuotaGate
	Log    *slog.Logger
	// OnStart, if set, is called when a run's process has started, with the
	// time its delivery came out of the queue (benchmarks measure dispatch).
	OnStart func(jobID string, taken, started time.Time)
	// OnDispatch, if set, is called with the same moment as OnStart and the
	// split of the time between take and start (benchmarks; gang members do
	// not report).
	OnDispatch func(Dispatch)
	// OnFinish, if set, is called once a run's outcome is written (or given
	// up), with the outcome label of JobsFinished.
	OnFinish func(jobID, outcome string)
}

// Dispatch is the time from a delivery coming out of the queue to its
// process having started.
type Dispatch struct {
	JobID          string
	Taken, Started time.Time
	// Store is the part spent waiting on MongoDB: reading the job record and
	// the algorithm, and the queued → running compare-and-set (or the claim
	// that does both).
	Store time.Duration
	// Claimed is true when the job started with one claim of its record
	// (its queue entry carried the dispatch hint), not a read and a
	// compare-and-set.
	Claimed bool
}

// Agent is one worker. Run it once.
type Agent struct {
	core    // the run of a job, the runner, the GPUs; core.mu guards the fields below too
	d       Deps
	version string
	gang    *gang.Gang
	ctl     *queue.Consumer // acks, extends, requeues (the taking consumer is the loop's own)
	ctlMu   sync.Mutex
	lc      *lifecycle.Lifecycle
	started time.Time

	busy     int                              // slots held: runs, deliveries being dispatched, gang members
	pending  int                              // gang members reserved here, not started yet
	held     map[string]held                  // deliveries held, by job id
	runs     map[string]*run                  // running attempts and gang members, by run key
	warm     map[string]*algorithm.Definition // serve algorithms kept at min_warm, by id
	draining bool
	freed    chan struct{}
}

// dispatch follows one delivery from its take to its process start.
type dispatch struct {
	taken   time.Time
	store   time.Duration // waiting on MongoDB since taken
	claimed bool          // started by handleClaimed
	// running, when set, is the record whose running state event is still to
	// go out: attempt sends it as soon as the process has started (before any
	// of its output is read), or when the start failed.
	running *job.Job
	// lease is the warm process a serve job runs on.
	lease *runner.Lease
}

// held is a delivery this worker holds (its lease is renewed) and its stop.
type held struct {
	d      queue.Delivery
	cancel context.CancelCauseFunc
}

// run is a running attempt (key = job id) or gang member (key = job id#rank).
type run struct {
	jobID  string
	rank   int
	member bool
	cancel context.CancelCauseFunc
}

// New returns an agent for a node with gpus (nil: CPU only). cfg.Slots 0 takes
// config.DefaultSlots.
func New(cfg config.Config, d Deps, gpus []registry.GPU, version string) (*Agent, error) {
	if cfg.Slots <= 0 {
		cfg.Slots = config.DefaultSlots(len(gpus))
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Metrics == nil {
		d.Metrics = metrics.New()
	}
	ctl, err := d.Queue.Consumer(cfg.Pool, cfg.Node, queue.ConsumerOptions{Home: -1})
	if err != nil {
		return nil, err
	}
	log := d.Log.With("pool", cfg.Pool, "node", cfg.Node)
	a := &Agent{
		d: d, version: version, ctl: ctl, gang: gang.New(d.Redis, cfg.Pool),
		lc: lifecycle.New(d.Jobs, d.Events, log, lifecycle.Backoff{Base: cfg.RetryBase, Max: cfg.RetryMax}).
			OnEnd(fairq.New(d.Redis, d.Queue, fairq.Config{Log: log}).Ended),
		held: map[string]held{}, runs: map[string]*run{}, freed: make(chan struct{}, 1),
	}
	a.init(cfg, log, d.Metrics, d.Inputs, d.Assets, gpus, d.OnFinish)
	a.runner.Serve = a.serveEvents()
	return a, nil
}

// Slots is the number of runs the agent takes at once.
func (a *Agent) Slots() int { return a.cfg.Slots }

// Healthy reports nil while the agent takes work.
func (a *Agent) Healthy() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.draining {
		return errors.New("draining")
	}
	return nil
}

// Run registers the worker and works until ctx ends, then drains: it takes no
// new work, lets its runs finish within cfg.ShutdownGrace and hands back those
// still running (killed, recorded queued again, requeued), removes itself from
// the registry and returns nil.
func (a *Agent) Run(ctx context.Context) error {
	a.started = time.Now().UTC()
	taker, err := a.d.Queue.Consumer(a.cfg.Pool, a.cfg.Node, queue.ConsumerOptions{Home: -1})
	if err != nil {
		return err
	}
	if err := a.heartbeat(ctx); err != nil {
		return err
	}
	// Background loops outlive ctx until the drain is over.
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	var loops sync.WaitGroup
	every := func(d time.Duration, fn func(context.Context)) {
		loops.Go(func() {
			t := time.NewTicker(d)
			defer t.Stop()
			for {
				select {
				case <-bg.Done():
					return
				case <-t.C:
					fn(bg)
				}
			}
		})
	}
	every(a.cfg.Heartbeat, func(ctx context.Context) {
		if err := a.heartbeat(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("heartbeat failed", "err", err)
		}
	})
	every(max(a.cfg.Lease/3, 100*time.Millisecond), a.extendLeases)
	every(250*time.Millisecond, a.checkCancels)
	every(200*time.Millisecond, a.gangTick)
	loops.Go(func() { a.keepWarm(bg) })
	every(5*time.Second, a.keepWarm)

	var runs sync.WaitGroup
	a.takeLoop(ctx, bg, taker, &runs)

	a.mu.Lock()
	a.draining = true
	a.mu.Unlock()
	a.log.Info("draining", "grace", a.cfg.ShutdownGrace.String())
	_ = a.heartbeat(bg)
	done := make(chan struct{})
	go func() { runs.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(a.cfg.ShutdownGrace):
		a.mu.Lock()
		for _, h := range a.held {
			h.cancel(errShutdown)
		}
		for _, r := range a.runs {
			r.cancel(errShutdown)
		}
		a.mu.Unlock()
		<-done
	}
	stopBG()
	loops.Wait()
	// The warm processes stop with the worker (stdin closed, then SIGTERM,
	// then SIGKILL after the kill grace).
	a.runner.Close()
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = a.gang.Unpublish(rctx, a.cfg.Node)
	if err := a.d.Registry.Remove(rctx, a.cfg.Pool, a.cfg.Node); err != nil {
		a.log.Warn("leaving the registry", "err", err)
	}
	a.log.Info("stopped")
	return nil
}

// takeLoop takes as many jobs as there are free slots and dispatches each in
// its own goroutine, until ctx ends.
func (a *Agent) takeLoop(ctx, bg context.Context, c *queue.Consumer, runs *sync.WaitGroup) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		free := a.freeSlots()
		if free <= 0 {
			select {
			case <-ctx.Done():
			case <-a.freed:
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		ds, err := c.Take(ctx, free, 250*time.Millisecond)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			a.log.Warn("take failed", "err", err)
			time.Sleep(backoff)
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		taken := time.Now()
		for _, d := range ds {
			hctx, cancel := context.WithCancelCause(bg)
			a.mu.Lock()
			a.busy++
			a.held[d.JobID] = held{d: d, cancel: cancel}
			a.mu.Unlock()
			a.setGauges()
			runs.Go(func() {
				defer cancel(nil)
				a.handle(hctx, d, &dispatch{taken: taken})
				a.unhold(d.JobID)
			})
		}
	}
}

func (a *Agent) freeSlots() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cfg.Slots - a.busy - a.pending
}

// unhold forgets a delivery and frees its slot.
func (a *Agent) unhold(jobID string) {
	a.mu.Lock()
	delete(a.held, jobID)
	a.busy--
	a.mu.Unlock()
	a.setGauges()
	select {
	case a.freed <- struct{}{}:
	default:
	}
}

func (a *Agent) setGauges() {
	a.mu.Lock()
	busy, gpus := a.busy, 0
	for _, b := range a.gpuBusy {
		if b {
			gpus++
		}
	}
	a.mu.Unlock()
	a.d.Metrics.SlotsBusy.Set(float64(busy))
	a.d.Metrics.GPUsBusy.Set(float64(gpus))
}

// freeGPUs gives indices back and updates the gauges.
func (a *Agent) freeGPUs(indices []int) {
	a.releaseGPUs(indices)
	a.setGauges()
}

// heartbeat writes the worker's registry entry (TTL: two heartbeats).
func (a *Agent) heartbeat(ctx context.Context) error {
	a.mu.Lock()
	w := registry.Worker{
		Node: a.cfg.Node, Pool: a.cfg.Pool, Version: a.version, Addr: a.cfg.AdvertiseAddr, Labels: a.cfg.Labels,
		Slots: a.cfg.Slots, SlotsBusy: a.busy, Draining: a.draining, StartedAt: a.started, AssetCache: a.d.Assets.Report(),
	}
	w.GPUs = a.gpuState()
	seen := map[string]bool{}
	for id := range a.held {
		seen[id] = true
		w.Running = append(w.Running, id)
	}
	for _, r := range a.runs {
		if !seen[r.jobID] {
			seen[r.jobID] = true
			w.Running = append(w.Running, r.jobID)
		}
	}
	a.mu.Unlock()
	return a.d.Registry.Heartbeat(ctx, w, 2*a.cfg.Heartbeat)
}

// extendLeases renews the leases of every held delivery; a lost one stops its run.
func (a *Agent) extendLeases(ctx context.Context) {
	a.mu.Lock()
	ds := make([]queue.Delivery, 0, len(a.held))
	for _, h := range a.held {
		ds = append(ds, h.d)
	}
	a.mu.Unlock()
	if len(ds) == 0 {
		return
	}
	a.ctlMu.Lock()
	lost, err := a.ctl.Extend(ctx, ds...)
	a.ctlMu.Unlock()
	if err != nil {
		a.log.Warn("extend leases failed", "err", err)
	}
	for _, d := range lost {
		a.log.Warn("lease lost", "job_id", d.JobID)
		a.mu.Lock()
		if h, ok := a.held[d.JobID]; ok && h.d.EntryID == d.EntryID {
			h.cancel(errLost)
		}
		a.mu.Unlock()
	}
}

// checkCancels asks, in one pipelined call, whether any held job's cancel was
// requested, and stops those runs.
func (a *Agent) checkCancels(ctx context.Context) {
	a.mu.Lock()
	ids := make([]string, 0, len(a.held))
	for id := range a.held {
		ids = append(ids, id)
	}
	a.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	req, err := a.d.Events.CancelRequested(ctx, ids...)
	if err != nil {
		a.log.Warn("cancel check failed", "err", err)
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for id := range req {
		if h, ok := a.held[id]; ok {
			h.cancel(errCanceled)
		}
	}
}

// ack completes a delivery; requeue hands it back (delayed until nb); both
// are logged, not returned: a failed ack leaves the entry to be redelivered,
// and completion is idempotent.
func (a *Agent) ack(ctx context.Context, d queue.Delivery) {
	a.ctlMu.Lock()
	err := a.ctl.Ack(ctx, d)
	a.ctlMu.Unlock()
	if err != nil {
		a.log.Warn("ack failed", "job_id", d.JobID, "err", err)
	}
}

func (a *Agent) requeue(ctx context.Context, d queue.Delivery, nb time.Time) {
	a.ctlMu.Lock()
	err := a.ctl.Requeue(ctx, d, nb)
	a.ctlMu.Unlock()
	if err != nil {
		a.log.Warn("requeue failed (the reconciler re-adds the queued job)", "job_id", d.JobID, "err", err)
	}
}

func (a *Agent) deadLetter(ctx context.Context, d queue.Delivery, reason string) {
	a.ctlMu.Lock()
	err := a.ctl.DeadLetter(ctx, d, reason)
	a.ctlMu.Unlock()
	if err != nil {
		a.log.Warn("dead-letter failed", "job_id", d.JobID, "err", err)
	}
}

// settle does to delivery d what the lifecycle says its job's queue entry
// needs.
func (a *Agent) settle(ctx context.Context, d queue.Delivery, q lifecycle.QueueAction) {
	switch q.Verb {
	case lifecycle.Ack:
		a.ack(ctx, d)
	case lifecycle.Requeue:
		a.requeue(ctx, d, q.At)
	case lifecycle.DeadLetter:
		a.deadLetter(ctx, d, q.Reason)
	}
}

func jobErr(code, format string, args ...any) *job.Error {
	return &job.Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

func rand64(n int64) int64 { return rand.Int64N(n) }
