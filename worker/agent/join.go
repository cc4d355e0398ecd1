package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/aigw/aigw/internal/events"
	"github.com/aigw/aigw/internal/executorapi"
	"github.com/aigw/aigw/internal/registry"
	"github.com/aigw/aigw/worker/internal/config"
	"github.com/aigw/aigw/worker/internal/metrics"
	"github.com/aigw/aigw/worker/internal/runner"
)

// Transport is how a joined worker (aigw-worker --join URL --token T) takes
// jobs and reports them: the executor API, through the gateway. It holds a
// pool-scoped token and nothing else: the job queue, the job records and the
// event streams stay behind the executors function, which applies the
// agent's rules to them (one compare-and-set per transition, leases,
// retries). *executorapi.Client implements it.
type Transport interface {
	Register(ctx context.Context, r executorapi.Register) (executorapi.Registered, error)
	Claim(ctx context.Context, r executorapi.ClaimRequest) ([]executorapi.Job, error)
	Heartbeat(ctx context.Context, h executorapi.Heartbeat) (executorapi.HeartbeatAnswer, error)
	Event(ctx context.Context, id string, e executorapi.Event) error
	Artifact(ctx context.Context, id string, attempt int, name string, r io.Reader, size int64) error
	Finish(ctx context.Context, id string, f executorapi.Finish) (executorapi.Finished, error)
}

var _ Transport = (*executorapi.Client)(nil)

// errRevoked stops a joined worker whose credential was revoked.
var errRevoked = errors.New("executor credential refused (revoked or unknown)")

// Joined is a worker that serves a pool through the executor API: the same
// runtimes (exec, http, serve with its warm processes) as the agent, run by
// the same runner; its transport replaces Redis and MongoDB.
type Joined struct {
	cfg     config.Config
	t       Transport
	version string
	log     *slog.Logger
	metrics *metrics.Metrics
	runner  *runner.Runner
	gpus    []registry.GPU

	// OnFinish, if set, is called once a run's outcome was sent (or given
	// up), with the outcome label of JobsFinished.
	OnFinish func(jobID, outcome string)

	reg     executorapi.Registered
	mu      sync.Mutex
	gpuBusy []bool
	runs    map[string]*remote
	freed   chan struct{}
}

// remote is a job this worker runs.
type remote struct {
	job    executorapi.Job
	cancel context.CancelCauseFunc
}

// NewJoined returns a worker speaking t for a node with gpus.
func NewJoined(cfg config.Config, t Transport, gpus []registry.GPU, version string, log *slog.Logger, m *metrics.Metrics) *Joined {
	if cfg.Slots <= 0 {
		cfg.Slots = config.DefaultSlots(len(gpus))
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m = metrics.New()
	}
	log = log.With("node", cfg.Node)
	return &Joined{cfg: cfg, t: t, version: version, log: log, metrics: m, gpus: gpus, gpuBusy: make([]bool, len(gpus)),
		runner: &runner.Runner{AlgorithmsDir: cfg.AlgorithmsDir, BinDir: cfg.BinDir, WorkDir: cfg.WorkDir,
			Interpreters: cfg.Interpreters, RunAs: runAs(cfg.RunAs), Log: log,
			Limits: runner.Limits{Output: cfg.OutputLimit, LogTail: cfg.LogTail, KillGrace: cfg.KillGrace}},
		runs: map[string]*remote{}, freed: make(chan struct{}, 1)}
}

// Slots is the number of runs the worker takes at once.
func (w *Joined) Slots() int { return w.cfg.Slots }

// Healthy reports nil (the metrics server's health check).
func (w *Joined) Healthy() error { return nil }

// Run registers and works until ctx ends, then drains as the agent does:
// runs get cfg.ShutdownGrace to finish, then are stopped and handed back. A
// revoked credential stops it at once (its jobs are already back in the
// queue) with an error.
func (w *Joined) Run(ctx context.Context) error {
	if err := w.register(ctx); err != nil {
		return err
	}
	w.log = w.log.With("pool", w.reg.Pool)
	w.log.Info("joined", "executor_id", w.reg.ID, "lease_ms", w.reg.LeaseMS, "slots", w.cfg.Slots)
	bg, stopBG := context.WithCancelCause(context.WithoutCancel(ctx))
	defer stopBG(nil)
	var loops, runs sync.WaitGroup
	loops.Go(func() { w.heartbeats(bg, stopBG) })
	takeCtx, stopTake := context.WithCancel(ctx)
	go func() {
		<-bg.Done()
		stopTake()
	}()
	w.takeLoop(takeCtx, bg, &runs)
	stopTake()
	done := make(chan struct{})
	go func() { runs.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(w.cfg.ShutdownGrace):
		w.stopAll(errShutdown)
		<-done
	case <-bg.Done():
		w.stopAll(errLost)
		<-done
	}
	cause := context.Cause(bg)
	stopBG(nil)
	loops.Wait()
	w.runner.Close()
	if errors.Is(cause, errRevoked) {
		return cause
	}
	w.log.Info("stopped")
	return nil
}

func (w *Joined) register(ctx context.Context) error {
	r := executorapi.Register{Version: w.version, Slots: w.cfg.Slots, CPUs: runtimeCPUs(), GPUs: w.gpus,
		Labels: w.cfg.Labels, CPUFallback: w.cfg.CPUFallback}
	backoff := 200 * time.Millisecond
	for {
		reg, err := w.t.Register(ctx, r)
		if err == nil {
			w.reg = reg
			return nil
		}
		if s := executorapi.StatusOf(err); s == http.StatusUnauthorized || s == http.StatusForbidden {
			return errRevoked
		}
		w.log.Warn("register failed; retrying", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// takeLoop long-polls for as many jobs as there are free slots and runs
// each in its own goroutine, until ctx ends.
func (w *Joined) takeLoop(ctx, bg context.Context, runs *sync.WaitGroup) {
	backoff := 200 * time.Millisecond
	for ctx.Err() == nil {
		free := w.freeSlots()
		if free <= 0 {
			select {
			case <-ctx.Done():
			case <-w.freed:
			}
			continue
		}
		js, err := w.t.Claim(ctx, executorapi.ClaimRequest{Max: free, WaitMS: 20000})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			w.log.Warn("claim failed", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(backoff + time.Duration(rand.Int64N(int64(backoff)))):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 200 * time.Millisecond
		for _, j := range js {
			rctx, cancel := context.WithCancelCause(bg)
			w.mu.Lock()
			w.runs[j.ID] = &remote{job: j, cancel: cancel}
			w.mu.Unlock()
			runs.Go(func() {
				defer cancel(nil)
				w.run(rctx, j)
				w.mu.Lock()
				delete(w.runs, j.ID)
				w.mu.Unlock()
				select {
				case w.freed <- struct{}{}:
				default:
				}
			})
		}
	}
}

func (w *Joined) freeSlots() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cfg.Slots - len(w.runs)
}

func (w *Joined) stopAll(cause error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range w.runs {
		r.cancel(cause)
	}
}

// heartbeats keeps the leases of the running jobs and stops those canceled
// or lost. A heartbeat refused for the credential stops the worker; one
// that does not get through for a whole lease stops the runs (their jobs are
// handed back to others by then).
func (w *Joined) heartbeats(ctx context.Context, stop context.CancelCauseFunc) {
	every := time.Duration(w.reg.HeartbeatMS) * time.Millisecond
	lease := time.Duration(w.reg.LeaseMS) * time.Millisecond
	if every <= 0 {
		every = 500 * time.Millisecond
	}
	t := time.NewTicker(every)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.mu.Lock()
		ids := make([]string, 0, len(w.runs))
		for id := range w.runs {
			ids = append(ids, id)
		}
		w.mu.Unlock()
		sort.Strings(ids)
		hctx, cancel := context.WithTimeout(ctx, max(every, time.Second))
		ans, err := w.t.Heartbeat(hctx, executorapi.Heartbeat{Jobs: ids, SlotsBusy: len(ids)})
		cancel()
		if s := executorapi.StatusOf(err); s == http.StatusUnauthorized {
			w.log.Error("credential refused: stopping", "err", err)
			stop(errRevoked)
			return
		}
		if err != nil {
			if ctx.Err() == nil {
				w.log.Warn("heartbeat failed", "err", err)
			}
			if lease > 0 && time.Since(last) > lease {
				// The lease has run out: the jobs are someone else's now.
				w.stopIDs(ids, errLost)
			}
			continue
		}
		last = time.Now()
		w.stopIDs(ans.Cancel, errCanceled)
		w.stopIDs(ans.Lost, errLost)
	}
}

func (w *Joined) stopIDs(ids []string, cause error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, id := range ids {
		if r, ok := w.runs[id]; ok {
			r.cancel(cause)
		}
	}
}

// run runs one claimed job with the runner and sends its outcome.
func (w *Joined) run(ctx context.Context, j executorapi.Job) {
	log := w.log.With("job_id", j.ID, "attempt", j.Attempt)
	if j.Definition == nil {
		w.finish(ctx, j, executorapi.Finish{Attempt: j.Attempt, Outcome: executorapi.OutcomeFailed,
			Error: &executorapi.Failure{Code: runner.CodeRuntime, Message: "the claim carried no algorithm definition"}}, "failed")
		return
	}
	need := j.Definition.Resources.GPUs
	if len(w.gpus) == 0 && w.cfg.CPUFallback {
		need = 0
	}
	gpus, ok := w.allocGPUs(need)
	if !ok {
		w.finish(ctx, j, executorapi.Finish{Attempt: j.Attempt, Outcome: executorapi.OutcomeHandedBack}, "handed_back")
		return
	}
	defer w.freeGPUs(gpus)
	log.Info("job claimed", "algorithm", j.Algorithm, "gpus", len(gpus))
	w.metrics.JobsStarted.Inc()
	start := time.Now()
	send := func(e executorapi.Event) {
		e.Attempt = j.Attempt
		if err := w.t.Event(ctx, j.ID, e); err != nil && ctx.Err() == nil {
			log.Warn("send event failed", "type", e.Type, "err", err)
		}
	}
	hooks := runner.Hooks{
		Logs: func(lines []string) { send(executorapi.Event{Type: executorapi.EventLog, Lines: lines}) },
		Progress: func(p events.Progress) {
			send(executorapi.Event{Type: executorapi.EventProgress, Progress: &p})
		},
	}
	res := w.runner.Run(ctx, runner.Spec{JobID: j.ID, Attempt: j.Attempt, Input: j.Input, Def: j.Definition,
		Timeout: time.Duration(j.TimeoutMS) * time.Millisecond, GPUs: gpus}, hooks)
	defer res.RemoveDir()
	w.metrics.RunSeconds.Observe(time.Since(start).Seconds())
	var cause error
	if res.Err != nil && res.Err.Code == runner.CodeStopped {
		cause = context.Cause(ctx)
	}
	f := executorapi.Finish{Attempt: j.Attempt, Log: res.Log, ColdStartMS: coldStartMS(res.ColdStart)}
	label := "succeeded"
	switch {
	case errors.Is(cause, errLost):
		log.Warn("lease lost: result dropped")
		w.finished(j.ID, "lost")
		return
	case errors.Is(cause, errCanceled):
		f.Outcome, label = executorapi.OutcomeCanceled, "canceled"
	case errors.Is(cause, errShutdown):
		f.Outcome, label = executorapi.OutcomeHandedBack, "handed_back"
	case res.Err == nil:
		f.Outcome, f.Output = executorapi.OutcomeSucceeded, res.Output
		if err := w.upload(ctx, j, res.OutputDir); err != nil {
			f.Outcome, f.Output = executorapi.OutcomeFailed, nil
			f.Error = &executorapi.Failure{Code: runner.CodeArtifact, Message: err.Error(), Retryable: true}
			label = "retried"
		}
	default:
		f.Outcome, label = executorapi.OutcomeFailed, "failed"
		f.Error = &executorapi.Failure{Code: res.Err.Code, Message: res.Err.Message, Retryable: res.Err.Retryable}
	}
	w.finish(ctx, j, f, label)
}

// upload sends the files a run wrote (the top level of its output
// directory) as the job's artifacts.
func (w *Joined) upload(ctx context.Context, j executorapi.Job, dir string) error {
	if dir == "" {
		return nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			return err
		}
		st, err := f.Stat()
		if err == nil {
			err = w.t.Artifact(ctx, j.ID, j.Attempt, e.Name(), f, st.Size())
		}
		_ = f.Close()
		if executorapi.StatusOf(err) == http.StatusNotImplemented {
			w.log.Warn("the executor API keeps no artifacts (no object store): files dropped", "job_id", j.ID)
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// finish sends an attempt's outcome, retrying while the API does not
// answer and the lease may still hold; a refusal (409: the job is no longer
// ours; 413: the output is over the limit, then sent as a failure) ends it.
func (w *Joined) finish(ctx context.Context, j executorapi.Job, f executorapi.Finish, label string) {
	log := w.log.With("job_id", j.ID, "attempt", j.Attempt)
	ctx = context.WithoutCancel(ctx)
	lease := time.Duration(w.reg.LeaseMS) * time.Millisecond
	deadline := time.Now().Add(max(lease, 5*time.Second) + 30*time.Second)
	backoff := 200 * time.Millisecond
	for {
		_, err := w.t.Finish(ctx, j.ID, f)
		status := executorapi.StatusOf(err)
		switch {
		case err == nil:
			log.Info("job finished", "outcome", f.Outcome)
			w.finished(j.ID, label)
			return
		case status == http.StatusRequestEntityTooLarge && f.Outcome == executorapi.OutcomeSucceeded:
			f = executorapi.Finish{Attempt: f.Attempt, Outcome: executorapi.OutcomeFailed, Log: f.Log, ColdStartMS: f.ColdStartMS,
				Error: &executorapi.Failure{Code: runner.CodeBadOut, Message: "output over the executor API's limit"}}
			label = "failed"
			continue
		case status == http.StatusConflict || status == http.StatusForbidden || status == http.StatusUnauthorized:
			log.Warn("result refused: the job is no longer this executor's", "status", status, "err", err)
			w.finished(j.ID, "lost")
			return
		case status >= 400 && status < 500:
			log.Error("result refused", "err", err)
			w.finished(j.ID, "lost")
			return
		case time.Now().After(deadline):
			log.Warn("result not delivered; the job comes back when its lease runs out", "err", err)
			w.finished(j.ID, "lost")
			return
		}
		log.Warn("finish failed; retrying", "err", err)
		time.Sleep(backoff)
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (w *Joined) finished(jobID, label string) {
	w.metrics.JobsFinished.WithLabelValues(label).Inc()
	if w.OnFinish != nil {
		w.OnFinish(jobID, label)
	}
}

func (w *Joined) allocGPUs(n int) ([]int, bool) {
	if n == 0 {
		return nil, true
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var idx []int
	for i, b := range w.gpuBusy {
		if !b {
			idx = append(idx, i)
			if len(idx) == n {
				break
			}
		}
	}
	if len(idx) < n {
		return nil, false
	}
	out := make([]int, n)
	for k, i := range idx {
		w.gpuBusy[i] = true
		out[k] = w.gpus[i].Index
	}
	return out, true
}

func (w *Joined) freeGPUs(indices []int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, gi := range indices {
		for i, g := range w.gpus {
			if g.Index == gi {
				w.gpuBusy[i] = false
			}
		}
	}
}

func runtimeCPUs() int { return runtime.NumCPU() }
