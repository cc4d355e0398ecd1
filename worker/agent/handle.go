package agent

import (
	"context"
	"errors"
	"time"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/events"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/jobstore"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/worker/internal/artifacts"
	"github.com/aigw/aigw/worker/internal/runtime"
)

// Failure codes the agent itself gives.
const (
	codeLost        = "lost"              // the previous attempt's worker died (its lease ran out)
	codeShutdown    = "shutdown"          // handed back by a worker shutting down
	codeUnknownAlgo = "unknown_algorithm" // the job names no registered definition
	codeNoCapacity  = "unschedulable"     // no worker of the pool has enough GPUs
	codeCanceled    = "canceled"
)

// handle takes a delivery from its record's state to running (or to the end),
// runs it and records the outcome. ctx is stopped (with a cause) on a cancel
// request, a lost lease or the end of the shutdown grace.
func (a *Agent) handle(ctx context.Context, d queue.Delivery, dp *dispatch) {
	if a.handleClaimed(ctx, d, dp) {
		return
	}
	log := a.log.With("job_id", d.JobID)
	t0 := time.Now()
	j, err := a.d.Jobs.GetByID(ctx, d.JobID)
	dp.store += time.Since(t0)
	if errors.Is(err, jobstore.ErrNotFound) {
		log.Warn("no job record: dead-lettered")
		a.deadLetter(ctx, d, "no job record")
		return
	}
	if err != nil {
		log.Warn("read job record failed; the job comes back when its lease runs out", "err", err)
		return
	}
	switch {
	case j.State.Terminal():
		log.Info("job already finished: skipped", "state", string(j.State))
		a.ack(ctx, d)
		return
	case j.State == job.Running:
		// The queue holds one entry per job, and we hold it: whoever ran the
		// attempt lost its lease. Count that attempt as lost and start the next.
		j, err = a.transition(ctx, j, jobstore.Change{From: job.Running, To: job.Queued, Attempt: j.Attempt,
			Error: jobErr(codeLost, "worker %s stopped renewing its lease", j.Worker)})
		if err != nil {
			log.Warn("take-over failed", "err", err)
			if j != nil && j.State.Terminal() {
				a.ack(ctx, d)
			}
			return
		}
		log.Info("took over a lost attempt", "attempt", j.Attempt)
	case j.State != job.Queued:
		log.Warn("job in an unexpected state: skipped", "state", string(j.State))
		a.ack(ctx, d)
		return
	}

	t0 = time.Now()
	def, err := a.d.Algorithms.Get(ctx, j.Algorithm, j.Version)
	dp.store += time.Since(t0)
	if errors.Is(err, algorithm.ErrNotFound) {
		a.failAtStart(ctx, d, j, jobErr(codeUnknownAlgo, "algorithm %q version %q is not registered", j.Algorithm, j.Version))
		return
	}
	if err != nil {
		log.Warn("read algorithm failed; the job comes back when its lease runs out", "err", err)
		return
	}
	need := a.gpuNeed(def, d.JobID)
	if need > len(a.gpus) && !a.poolHasGPUs(ctx, need) {
		a.failAtStart(ctx, d, j, jobErr(codeNoCapacity, "needs %d GPUs on one node; no worker of pool %s has that many", need, a.cfg.Pool))
		return
	}
	gpus, ok := a.allocGPUs(need)
	if !ok {
		a.waitForGPUs(ctx, d)
		return
	}
	defer a.freeGPUs(gpus)
	a.setGauges()
	if j.GangSize > 1 {
		a.lead(ctx, d, j, def, gpus, dp)
		return
	}
	j, err = a.transitionTimed(ctx, j, jobstore.Change{From: job.Queued, To: job.Running, Attempt: j.Attempt, Worker: a.cfg.Node}, dp)
	if err != nil {
		a.conflict(ctx, d, j, err)
		return
	}
	res, cause := a.attempt(ctx, d, j, def, gpus, nil, dp, true)
	a.finish(ctx, d, j, res, cause)
}

// handleClaimed starts a job whose queue entry names its algorithm (see
// job.DispatchHint) with one update of its record, jobstore's Claim, where
// handle reads the record and then compares-and-sets it: one MongoDB round
// trip before the process starts instead of two. It reports false, having
// changed nothing, when the job needs handle's path: no hint (gangs and jobs
// whose webhook wants the running event get none), an algorithm it cannot
// resolve, more GPUs than this node has, or a record that is not queued
// (canceled, finished, or a lost attempt to take over).
func (a *Agent) handleClaimed(ctx context.Context, d queue.Delivery, dp *dispatch) bool {
	name, version, ok := job.ParseDispatchHint(d.Payload)
	if !ok {
		return false
	}
	t0 := time.Now()
	def, err := a.d.Algorithms.Get(ctx, name, version)
	dp.store += time.Since(t0)
	if err != nil {
		return false
	}
	need := a.gpuNeed(def, d.JobID)
	if need > len(a.gpus) {
		return false
	}
	gpus, ok := a.allocGPUs(need)
	if !ok {
		a.waitForGPUs(ctx, d)
		return true
	}
	t0 = time.Now()
	j, err := a.d.Jobs.Claim(ctx, d.JobID, a.cfg.Node)
	dp.store += time.Since(t0)
	if err != nil {
		a.freeGPUs(gpus)
		if errors.Is(err, jobstore.ErrConflict) {
			return false
		}
		a.log.Warn("claim failed; the job comes back when its lease runs out", "job_id", d.JobID, "err", err)
		return true
	}
	defer a.freeGPUs(gpus)
	a.setGauges()
	dp.claimed, dp.running = true, j
	res, cause := a.attempt(ctx, d, j, def, gpus, nil, dp, true)
	a.finish(ctx, d, j, res, cause)
	return true
}

// publishRunning sends the running state event dp holds back, once. The
// runtime calls Started before it reads any of the process's output, so the
// stream's order stays queued, running, progress and logs, output, the end.
func (a *Agent) publishRunning(ctx context.Context, dp *dispatch) {
	if dp.running != nil {
		a.publishState(ctx, dp.running)
		dp.running = nil
	}
}

// gpuNeed is how many GPUs a run of def takes on this node: none on a node
// without GPUs that falls back to the CPU.
func (a *Agent) gpuNeed(def *algorithm.Definition, jobID string) int {
	need := def.Resources.GPUs
	if need > 0 && len(a.gpus) == 0 && a.cfg.CPUFallback {
		a.log.Info("no GPU on this node: running on the CPU (AIGW_CPU_FALLBACK)", "job_id", jobID, "gpus_wanted", need)
		need = 0
	}
	return need
}

// waitForGPUs hands back a job this node cannot run now for want of free
// GPUs, due again shortly (for this worker or one with free GPUs). The record
// stays queued; nothing is lost.
func (a *Agent) waitForGPUs(ctx context.Context, d queue.Delivery) {
	a.requeue(ctx, d, time.Now().Add(time.Duration(300+rand64(400))*time.Millisecond))
}

// failAtStart records a job that cannot run at all: queued → running → failed
// (the lifecycle has no queued → failed), no retry.
func (a *Agent) failAtStart(ctx context.Context, d queue.Delivery, j *job.Job, e *job.Error) {
	a.log.Warn("job cannot run", "job_id", j.ID, "code", e.Code, "err", e.Message)
	j, err := a.transition(ctx, j, jobstore.Change{From: job.Queued, To: job.Running, Attempt: j.Attempt, Worker: a.cfg.Node})
	if err != nil {
		a.conflict(ctx, d, j, err)
		return
	}
	if _, err := a.transition(ctx, j, jobstore.Change{From: job.Running, To: job.Failed, Attempt: j.Attempt, Error: e}); err != nil {
		a.conflict(ctx, d, j, err)
		return
	}
	a.finished(j.ID, "failed")
	a.ack(ctx, d)
}

// finished counts a run's outcome.
func (a *Agent) finished(jobID, outcome string) {
	a.d.Metrics.JobsFinished.WithLabelValues(outcome).Inc()
	if a.d.OnFinish != nil {
		a.d.OnFinish(jobID, outcome)
	}
}

// conflict handles a lost compare-and-set: a job someone else finished (e.g.
// canceled) is acknowledged; one taken over by another worker is left alone.
func (a *Agent) conflict(ctx context.Context, d queue.Delivery, cur *job.Job, err error) {
	if cur != nil && cur.State.Terminal() {
		a.log.Info("job finished elsewhere", "job_id", d.JobID, "state", string(cur.State))
		a.ack(ctx, d)
		return
	}
	a.log.Warn("job record changed under us; leaving it", "job_id", d.JobID, "err", err)
}

func (a *Agent) poolHasGPUs(ctx context.Context, n int) bool {
	ws, err := a.d.Registry.Workers(ctx, a.cfg.Pool)
	if err != nil {
		return true // cannot tell: assume so and retry later
	}
	for _, w := range ws {
		if len(w.GPUs) >= n {
			return true
		}
	}
	return false
}

// attempt runs one attempt (or gang member) and returns its result and, when it
// was stopped from outside, the cause. dp is nil for gang members (no delivery).
func (a *Agent) attempt(ctx context.Context, d queue.Delivery, j *job.Job, def *algorithm.Definition,
	gpus []int, env map[string]string, dp *dispatch, progress bool) (runtime.Result, error) {
	timeout := def.Timeout()
	if j.ExecutionTimeoutMS > 0 {
		timeout = time.Duration(j.ExecutionTimeoutMS) * time.Millisecond
	}
	start := time.Now()
	a.d.Metrics.JobsStarted.Inc()
	if !d.EnqueuedAt.IsZero() {
		a.d.Metrics.QueueWait.Observe(start.Sub(d.EnqueuedAt).Seconds())
	}
	hooks := runtime.Hooks{
		Logs: func(lines []string) {
			if _, err := a.d.Events.Publish(ctx, j.ID, events.TypeLog, events.Log{Lines: lines, At: time.Now().UTC()}); err != nil {
				a.log.Warn("publish log failed", "job_id", j.ID, "err", err)
			}
		},
		Started: func(int) {
			if dp == nil {
				return
			}
			now := time.Now()
			if a.d.OnStart != nil {
				a.d.OnStart(j.ID, dp.taken, now)
			}
			if a.d.OnDispatch != nil {
				a.d.OnDispatch(Dispatch{JobID: j.ID, Taken: dp.taken, Started: now, Store: dp.store, Claimed: dp.claimed})
			}
			a.publishRunning(ctx, dp)
		},
	}
	if progress {
		hooks.Progress = func(p events.Progress) {
			if _, err := a.d.Events.Publish(ctx, j.ID, events.TypeProgress, p); err != nil {
				a.log.Warn("publish progress failed", "job_id", j.ID, "err", err)
			}
		}
	}
	res := a.runner.Run(ctx, runtime.Spec{JobID: j.ID, Attempt: j.Attempt, Input: j.Input, Def: def,
		Timeout: timeout, GPUs: gpus, Env: env}, hooks)
	if dp != nil {
		a.publishRunning(ctx, dp) // the start failed: the stream still says running before the end
	}
	a.d.Metrics.RunSeconds.Observe(time.Since(start).Seconds())
	if res.Err != nil && res.Err.Code == runtime.CodeStopped {
		return res, context.Cause(ctx)
	}
	return res, nil
}

// finish records an attempt's outcome as one transition out of running, then
// acknowledges, requeues or dead-letters the delivery. A run whose lease was
// lost writes nothing: the job belongs to another worker now.
func (a *Agent) finish(ctx context.Context, d queue.Delivery, j *job.Job, res runtime.Result, cause error) {
	defer res.RemoveDir()
	log := a.log.With("job_id", j.ID, "attempt", j.Attempt)
	// The outcome is written even when ctx was stopped (it carries the cause).
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	outcome := func(o string) { a.finished(j.ID, o) }
	switch {
	case errors.Is(cause, errLost):
		log.Warn("lease lost: result dropped")
		outcome("lost")
		return
	case errors.Is(cause, errCanceled):
		nj, err := a.transition(wctx, j, jobstore.Change{From: job.Running, To: job.Canceled, Attempt: j.Attempt,
			Error: jobErr(codeCanceled, "canceled while running"), Log: res.Log})
		if err != nil {
			a.conflict(wctx, d, nj, err)
			return
		}
		outcome("canceled")
		a.ack(wctx, d)
		return
	case errors.Is(cause, errShutdown):
		// Handing back counts as an attempt, as a lost one does (→ queued always
		// counts the attempt up); it never fails the job by itself.
		nj, err := a.transition(wctx, j, jobstore.Change{From: job.Running, To: job.Queued, Attempt: j.Attempt,
			Error: jobErr(codeShutdown, "worker %s shut down during the run", a.cfg.Node)})
		if err != nil {
			a.conflict(wctx, d, nj, err)
			return
		}
		outcome("handed_back")
		a.requeue(wctx, d, time.Time{})
		return
	}
	if res.Err == nil && res.OutputDir != "" {
		arts, err := a.d.Artifacts.Save(wctx, res.OutputDir, j.ID, j.Attempt)
		var tooLarge *artifacts.TooLargeError
		switch {
		case errors.As(err, &tooLarge):
			res.Err = &runtime.Failure{Code: runtime.CodeBadOut, Message: err.Error()}
		case err != nil:
			res.Err = &runtime.Failure{Code: runtime.CodeArtifact, Message: err.Error(), Retryable: true}
		default:
			res.Artifacts = arts
		}
	}
	if res.Err == nil {
		// The output event goes out before the succeeded state event that ends
		// the stream, and only once the record says succeeded.
		nj, err := a.d.Jobs.Transition(wctx, j.ID, jobstore.Change{From: job.Running, To: job.Succeeded, Attempt: j.Attempt,
			Output: res.Output, Artifacts: res.Artifacts, Log: res.Log, Notify: j.Notifies(job.Succeeded)})
		if err != nil {
			a.conflict(wctx, d, nj, err)
			return
		}
		if _, err := a.d.Events.Publish(wctx, j.ID, events.TypeOutput,
			events.Output{Output: res.Output, Artifacts: res.Artifacts, At: time.Now().UTC()}); err != nil {
			log.Warn("publish output failed", "err", err)
		}
		if _, err := a.d.Events.PublishState(wctx, nj); err != nil {
			log.Warn("publish state failed", "err", err)
		}
		log.Info("job state", "state", string(nj.State))
		outcome("succeeded")
		a.ack(wctx, d)
		return
	}
	e := &job.Error{Code: res.Err.Code, Message: res.Err.Message}
	log.Info("attempt failed", "code", e.Code, "err", e.Message)
	if res.Err.Retryable && j.Attempt <= j.MaxRetries {
		nb := time.Now().Add(a.backoff(j.Attempt))
		nj, err := a.transition(wctx, j, jobstore.Change{From: job.Running, To: job.Queued, Attempt: j.Attempt,
			Error: e, NotBefore: nb})
		if err != nil {
			a.conflict(wctx, d, nj, err)
			return
		}
		outcome("retried")
		a.requeue(wctx, d, nb)
		return
	}
	nj, err := a.transition(wctx, j, jobstore.Change{From: job.Running, To: job.Failed, Attempt: j.Attempt,
		Error: e, Artifacts: res.Artifacts, Log: res.Log})
	if err != nil {
		a.conflict(wctx, d, nj, err)
		return
	}
	outcome("failed")
	if res.Err.Retryable {
		a.deadLetter(wctx, d, e.Code+": "+e.Message)
		return
	}
	a.ack(wctx, d)
}
