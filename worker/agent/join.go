package agent

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/aigw/aigw/internal/events"
	"github.com/aigw/aigw/internal/executorapi"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/registry"
	"github.com/aigw/aigw/worker/internal/artifacts"
	"github.com/aigw/aigw/worker/internal/assetcache"
	"github.com/aigw/aigw/worker/internal/config"
	"github.com/aigw/aigw/worker/internal/inputs"
	"github.com/aigw/aigw/worker/internal/metrics"
	"github.com/aigw/aigw/worker/internal/runner"
)

// ExecutorAPI is how a joined worker (aigw-worker --join URL --token T)
// takes jobs and reports them: the executor API, through the gateway. It
// holds a pool-scoped token and nothing else: the job queue, the job
// records, the event streams and the object store stay behind the executors
// function, which applies the agent's rules to them (one compare-and-set
// per transition, leases, retries) and hands out only the input files of a
// job the executor holds. *executorapi.Client implements it.
type ExecutorAPI interface {
	Register(ctx context.Context, r executorapi.Register) (executorapi.Registered, error)
	Claim(ctx context.Context, r executorapi.ClaimRequest) ([]executorapi.Job, error)
	Heartbeat(ctx context.Context, h executorapi.Heartbeat) (executorapi.HeartbeatAnswer, error)
	Event(ctx context.Context, id string, e executorapi.Event) error
	File(ctx context.Context, id string, attempt int, upload string) (io.ReadCloser, int64, error)
	Artifact(ctx context.Context, id string, attempt int, name string, r io.Reader, size int64) error
	Finish(ctx context.Context, id string, f executorapi.Finish) (executorapi.Finished, error)
}

var _ ExecutorAPI = (*executorapi.Client)(nil)

// errRevoked stops a joined worker whose credential was revoked.
var errRevoked = errors.New("executor credential refused (revoked or unknown)")

// Joined is a worker that serves a pool through the executor API: its jobs
// run as the agent's do (core.execute and core.complete: input files, the
// asset cache, the same runtimes, exec, http and serve with its warm
// processes); the executor API replaces Redis, MongoDB and the object store.
type Joined struct {
	core    // core.mu guards runs too
	t       ExecutorAPI
	version string
	onStart func(jobID string, taken, started time.Time)

	reg   executorapi.Registered
	runs  map[string]*remote
	freed chan struct{}
}

// JoinDeps are a joined worker's optional parts.
type JoinDeps struct {
	Log     *slog.Logger
	Metrics *metrics.Metrics
	// HTTP fetches the input files that are URLs (egress.Guard.Client());
	// nil: only uploads are fetched (through the executor API).
	HTTP *http.Client
	// Assets, when set, is the cache of the algorithms' assets (downloaded
	// from their URLs, as the agent does).
	Assets *assetcache.Cache
	// OnStart, if set, is called when a run's process has started, with the
	// time its claim answered (benchmarks measure dispatch).
	OnStart func(jobID string, taken, started time.Time)
	// OnFinish, if set, is called once a run's outcome was sent (or given
	// up), with the outcome label of JobsFinished.
	OnFinish func(jobID, outcome string)
}

// remote is a job this worker runs.
type remote struct {
	job    executorapi.Job
	cancel context.CancelCauseFunc
}

// NewJoined returns a worker speaking t for a node with gpus.
func NewJoined(cfg config.Config, t ExecutorAPI, gpus []registry.GPU, version string, d JoinDeps) *Joined {
	if cfg.Slots <= 0 {
		cfg.Slots = config.DefaultSlots(len(gpus))
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Metrics == nil {
		d.Metrics = metrics.New()
	}
	w := &Joined{t: t, version: version, onStart: d.OnStart, runs: map[string]*remote{}, freed: make(chan struct{}, 1)}
	// Uploads come through the executor API, for the jobs this worker
	// holds; URLs straight from their server, through d.HTTP.
	in := &inputs.Fetcher{HTTP: d.HTTP, OpenUpload: func(ctx context.Context, j *job.Job, upload string) (io.ReadCloser, error) {
		body, _, err := t.File(ctx, j.ID, j.Attempt, upload)
		return body, err
	}}
	if in.HTTP == nil {
		in.HTTP = &http.Client{Transport: refuseURLs{}}
	}
	w.init(cfg, d.Log.With("node", cfg.Node), d.Metrics, in, d.Assets, gpus, d.OnFinish)
	return w
}

// refuseURLs is the transport of a joined worker given no HTTP client for
// input URLs.
type refuseURLs struct{}

func (refuseURLs) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("this worker fetches no input URLs")
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
		taken := time.Now()
		for _, j := range js {
			rctx, cancel := context.WithCancelCause(bg)
			w.mu.Lock()
			w.runs[j.ID] = &remote{job: j, cancel: cancel}
			w.mu.Unlock()
			runs.Go(func() {
				defer cancel(nil)
				w.run(rctx, j, taken)
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

// run runs one claimed job, as the agent runs its jobs (core.execute,
// core.complete), and sends its outcome.
func (w *Joined) run(ctx context.Context, j executorapi.Job, taken time.Time) {
	t := &joinedRun{w: w, j: j, taken: taken}
	if j.Definition == nil {
		w.finish(ctx, j, executorapi.Finish{Attempt: j.Attempt, Outcome: executorapi.OutcomeFailed,
			Error: &executorapi.Failure{Code: runner.CodeRuntime, Message: "the claim carried no algorithm definition"}}, "failed")
		return
	}
	gpus, ok := w.allocGPUs(w.gpuNeed(j.Definition, j.ID))
	if !ok {
		w.finish(ctx, j, executorapi.Finish{Attempt: j.Attempt, Outcome: executorapi.OutcomeHandedBack}, "handed_back")
		return
	}
	defer w.releaseGPUs(gpus)
	w.log.Info("job claimed", "job_id", j.ID, "attempt", j.Attempt, "algorithm", j.Algorithm, "gpus", len(gpus))
	rec := &job.Job{ID: j.ID, Attempt: j.Attempt, Algorithm: j.Algorithm, Version: j.Version, Input: j.Input}
	res, cause := w.execute(ctx, t, runSpec{job: rec, def: j.Definition, gpus: gpus,
		timeout: time.Duration(j.TimeoutMS) * time.Millisecond, progress: true})
	w.complete(ctx, t, j.ID, res, cause)
}

// joinedRun is the Transport of an attempt a joined worker runs: the
// executor API.
type joinedRun struct {
	w     *Joined
	j     executorapi.Job
	taken time.Time
}

func (t *joinedRun) send(ctx context.Context, e executorapi.Event) {
	e.Attempt = t.j.Attempt
	if err := t.w.t.Event(ctx, t.j.ID, e); err != nil && ctx.Err() == nil {
		t.w.log.Warn("send event failed", "job_id", t.j.ID, "type", e.Type, "err", err)
	}
}

func (t *joinedRun) Progress(ctx context.Context, p events.Progress) {
	t.send(ctx, executorapi.Event{Type: executorapi.EventProgress, Progress: &p})
}

func (t *joinedRun) Logs(ctx context.Context, lines []string) {
	t.send(ctx, executorapi.Event{Type: executorapi.EventLog, Lines: lines})
}

// Started reports the dispatch (benchmarks); the executors function wrote
// the running state at the claim.
func (t *joinedRun) Started(_ context.Context, started bool) {
	if started && t.w.onStart != nil {
		t.w.onStart(t.j.ID, t.taken, time.Now())
	}
}

// SaveArtifacts uploads the files a run wrote (its output directory, sub-
// folders included, named by their relative path) as the job's artifacts;
// the executors function records them at the finish.
func (t *joinedRun) SaveArtifacts(ctx context.Context, dir string) ([]job.Artifact, error) {
	files, _, err := artifacts.List(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		err := t.upload(ctx, f.Path, f.Name)
		if errors.Is(err, errNoArtifactStore) {
			t.w.log.Warn("the executor API keeps no artifacts (no object store): files dropped", "job_id", t.j.ID)
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
	}
	return nil, nil
}

var errNoArtifactStore = errors.New("no artifact store")

// upload sends file p as artifact name.
func (t *joinedRun) upload(ctx context.Context, p, name string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	err = t.w.t.Artifact(ctx, t.j.ID, t.j.Attempt, name, f, st.Size())
	if executorapi.StatusOf(err) == http.StatusNotImplemented {
		return errNoArtifactStore
	}
	return err
}

// Finish sends the outcome (finish); a lost lease sends nothing.
func (t *joinedRun) Finish(ctx context.Context, res runner.Result, cause error) string {
	j := t.j
	f := executorapi.Finish{Attempt: j.Attempt, Log: res.Log, ColdStartMS: coldStartMS(res.ColdStart)}
	label := "succeeded"
	switch {
	case errors.Is(cause, errLost):
		t.w.log.Warn("lease lost: result dropped", "job_id", j.ID, "attempt", j.Attempt)
		return "lost"
	case errors.Is(cause, errCanceled):
		f.Outcome, label = executorapi.OutcomeCanceled, "canceled"
	case errors.Is(cause, errShutdown):
		f.Outcome, label = executorapi.OutcomeHandedBack, "handed_back"
	case res.Err == nil:
		f.Outcome, f.Output = executorapi.OutcomeSucceeded, res.Output
	default:
		f.Outcome, label = executorapi.OutcomeFailed, "failed"
		if res.Err.Retryable {
			label = "retried"
		}
		f.Error = &executorapi.Failure{Code: res.Err.Code, Message: res.Err.Message, Retryable: res.Err.Retryable}
	}
	return t.w.send(ctx, j, f, label)
}

// finish sends an attempt's outcome, retrying while the API does not
// answer and the lease may still hold; a refusal (409: the job is no longer
// ours; 413: the output is over the limit, then sent as a failure) ends it.
func (w *Joined) finish(ctx context.Context, j executorapi.Job, f executorapi.Finish, label string) {
	if label = w.send(ctx, j, f, label); label != "" {
		w.finished(j.ID, label)
	}
}

// send is finish's delivery; it returns the JobsFinished label.
func (w *Joined) send(ctx context.Context, j executorapi.Job, f executorapi.Finish, label string) string {
	log := w.log.With("job_id", j.ID, "attempt", j.Attempt)
	ctx = context.WithoutCancel(ctx)
	lease := time.Duration(w.reg.LeaseMS) * time.Millisecond
	deadline := time.Now().Add(max(lease, 5*time.Second) + 30*time.Second)
	backoff := 200 * time.Millisecond
	for {
		ans, err := w.t.Finish(ctx, j.ID, f)
		status := executorapi.StatusOf(err)
		switch {
		case err == nil:
			log.Info("job finished", "outcome", f.Outcome, "state", ans.State)
			if f.Outcome == executorapi.OutcomeFailed && ans.State == "queued" {
				label = "retried"
			}
			return label
		case status == http.StatusRequestEntityTooLarge && f.Outcome == executorapi.OutcomeSucceeded:
			f = executorapi.Finish{Attempt: f.Attempt, Outcome: executorapi.OutcomeFailed, Log: f.Log, ColdStartMS: f.ColdStartMS,
				Error: &executorapi.Failure{Code: runner.CodeBadOut, Message: "output over the executor API's limit"}}
			label = "failed"
			continue
		case status == http.StatusConflict || status == http.StatusForbidden || status == http.StatusUnauthorized:
			log.Warn("result refused: the job is no longer this executor's", "status", status, "err", err)
			return "lost"
		case status >= 400 && status < 500:
			log.Error("result refused", "err", err)
			return "lost"
		case time.Now().After(deadline):
			log.Warn("result not delivered; the job comes back when its lease runs out", "err", err)
			return "lost"
		}
		log.Warn("finish failed; retrying", "err", err)
		time.Sleep(backoff)
		backoff = min(2*backoff, 5*time.Second)
	}
}

func runtimeCPUs() int { return runtime.NumCPU() }
