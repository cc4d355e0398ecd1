package agent

import (
	"context"
	"errors"
	"time"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/events"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/jobstore"
	"github.com/aigw/aigw/internal/lifecycle"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/worker/internal/runner"
)

// handle takes a delivery from its record's state to running (or to the end),
// runs it and records the outcome. ctx is stopped (with a cause) on a cancel
// request, a lost lease or the end of the shutdown grace.
func (a *Agent) handle(ctx context.Context, d queue.Delivery, dp *dispatch) {
	// A pool with max_running quotas reads each record first (the claim
	// path does not know the tenant before it starts the job).
	limits := a.quotaLimits(ctx)
	if len(limits) == 0 && a.handleClaimed(ctx, d, dp) {
		return
	}
	j, ok := a.readQueued(ctx, d, dp)
	if !ok {
		return
	}
	def, gpus, ok := a.resolve(ctx, d, j, dp)
	if !ok {
		return
	}
	defer a.freeGPUs(gpus)
	release, ok := a.admit(ctx, d, j, def, limits)
	if !ok {
		return
	}
	defer release()
	a.setGauges()
	if j.GangSize > 1 {
		a.lead(ctx, d, j, def, gpus, dp)
		return
	}
	if dp.lease, ok = a.warmProcess(ctx, d, j, def, gpus); !ok {
		return
	}
	if j, ok = a.start(ctx, d, j, dp); !ok {
		dp.lease.Release()
		return
	}
	res, cause := a.attempt(ctx, d, j, def, gpus, nil, dp, true)
	a.finish(ctx, d, j, res, cause, holding{slots: 1, gpus: len(gpus)})
}

// readQueued reads the record of d's job and reports it when it is queued,
// or running on a worker that lost its lease (that attempt is then counted
// lost and the job queued again). Any other record ends the delivery here.
func (a *Agent) readQueued(ctx context.Context, d queue.Delivery, dp *dispatch) (*job.Job, bool) {
	log := a.log.With("job_id", d.JobID)
	t0 := time.Now()
	j, err := a.d.Jobs.GetByID(ctx, d.JobID)
	dp.store += time.Since(t0)
	switch {
	case errors.Is(err, jobstore.ErrNotFound):
		log.Warn("no job record: dead-lettered")
		a.deadLetter(ctx, d, "no job record")
		return nil, false
	case err != nil:
		log.Warn("read job record failed; the job comes back when its lease runs out", "err", err)
		return nil, false
	case j.State.Terminal():
		log.Info("job already finished: skipped", "state", string(j.State))
		a.ack(ctx, d)
		return nil, false
	case j.State == job.Running:
		// The queue holds one entry per job, and we hold it: whoever ran the
		// attempt lost its lease. Count that attempt as lost and start the next.
		out, err := a.lc.TakeOver(ctx, j)
		if err != nil {
			log.Warn("take-over failed", "err", err)
			a.settle(ctx, d, out.Queue)
			return nil, false
		}
		log.Info("took over a lost attempt", "attempt", out.Job.Attempt)
		return out.Job, true
	case j.State != job.Queued:
		log.Warn("job in an unexpected state: skipped", "state", string(j.State))
		a.ack(ctx, d)
		return nil, false
	}
	return j, true
}

// resolve finds the algorithm of queued job j and the GPUs to run it on. A
// job that can never run is failed; one that must wait for GPUs is handed
// back; either way ok is false.
func (a *Agent) resolve(ctx context.Context, d queue.Delivery, j *job.Job, dp *dispatch) (*algorithm.Definition, []int, bool) {
	t0 := time.Now()
	def, err := a.d.Algorithms.Get(ctx, j.Algorithm, j.Version)
	dp.store += time.Since(t0)
	if errors.Is(err, algorithm.ErrNotFound) {
		a.failAtStart(ctx, d, j, jobErr(job.CodeUnknownAlgorithm, "algorithm %q version %q is not registered", j.Algorithm, j.Version))
		return nil, nil, false
	}
	if err != nil {
		a.log.Warn("read algorithm failed; the job comes back when its lease runs out", "job_id", j.ID, "err", err)
		return nil, nil, false
	}
	need := a.gpuNeed(def, d.JobID)
	if need > len(a.gpus) && !a.poolHasGPUs(ctx, need) {
		a.failAtStart(ctx, d, j, jobErr(job.CodeUnschedulable, "needs %d GPUs on one node; no worker of pool %s has that many", need, a.cfg.Pool))
		return nil, nil, false
	}
	gpus, ok := a.allocFor(def, need)
	if !ok {
		a.waitForGPUs(ctx, d)
		return nil, nil, false
	}
	return def, gpus, true
}

// start moves queued job j to running; its running event goes out once the
// process has started (publishRunning).
func (a *Agent) start(ctx context.Context, d queue.Delivery, j *job.Job, dp *dispatch) (*job.Job, bool) {
	t0 := time.Now()
	out, err := a.lc.Start(ctx, j, a.cfg.Node)
	dp.store += time.Since(t0)
	if err != nil {
		a.conflict(ctx, d, out, err)
		return nil, false
	}
	dp.running = out.Job
	return out.Job, true
}

// handleClaimed starts a job whose queue entry names its algorithm (see
// job.DispatchHint) with one update of its record (the lifecycle's Claim),
// where handle reads the record and then compares-and-sets it: one MongoDB
// round trip before the process starts instead of two. It reports false,
// having changed nothing, when the job needs handle's path: no hint (gangs and
// jobs whose webhook wants the running event get none), an algorithm it
// cannot resolve, more GPUs than this node has, or a record that is not
// queued (canceled, finished, or a lost attempt to take over).
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
	gpus, ok := a.allocFor(def, need)
	if !ok {
		a.waitForGPUs(ctx, d)
		return true
	}
	if dp.lease, ok = a.warmProcess(ctx, d, nil, def, gpus); !ok {
		a.freeGPUs(gpus)
		return true
	}
	t0 = time.Now()
	j, claimed, err := a.lc.Claim(ctx, d.Payload, d.JobID, a.cfg.Node)
	dp.store += time.Since(t0)
	if !claimed {
		dp.lease.Release()
		a.freeGPUs(gpus)
		if err != nil {
			a.log.Warn("claim failed; the job comes back when its lease runs out", "job_id", d.JobID, "err", err)
		}
		return err != nil
	}
	defer a.freeGPUs(gpus)
	a.setGauges()
	dp.claimed, dp.running = true, j
	res, cause := a.attempt(ctx, d, j, def, gpus, nil, dp, true)
	a.finish(ctx, d, j, res, cause, holding{slots: 1, gpus: len(gpus)})
	return true
}

// publishRunning sends the running state event dp holds back, once. The
// runtime calls Started before it reads any of the process's output, so the
// stream's order stays queued, running, progress and logs, output, the end.
func (a *Agent) publishRunning(ctx context.Context, dp *dispatch) {
	if dp.running != nil {
		a.lc.Announce(ctx, dp.running)
		dp.running = nil
	}
}

// waitForGPUs hands back a job this node cannot run now for want of free
// GPUs, due again shortly (for this worker or one with free GPUs). The record
// stays queued; nothing is lost.
func (a *Agent) waitForGPUs(ctx context.Context, d queue.Delivery) {
	a.requeue(ctx, d, time.Now().Add(time.Duration(300+rand64(400))*time.Millisecond))
}

// failAtStart records a job that cannot run at all (queued → failed, no retry).
func (a *Agent) failAtStart(ctx context.Context, d queue.Delivery, j *job.Job, e *job.Error) {
	a.log.Warn("job cannot run", "job_id", j.ID, "code", e.Code, "err", e.Message)
	out, err := a.lc.FailAtStart(ctx, j, e)
	if err != nil {
		a.conflict(ctx, d, out, err)
		return
	}
	a.finished(j.ID, "failed")
	a.settle(ctx, d, out.Queue)
}

// conflict handles a lost compare-and-set: a job someone else finished (e.g.
// canceled) is acknowledged; one taken over by another worker is left alone.
func (a *Agent) conflict(ctx context.Context, d queue.Delivery, out lifecycle.Outcome, err error) {
	if out.Queue.Verb == lifecycle.Ack {
		a.log.Info("job finished elsewhere", "job_id", d.JobID, "state", string(out.Job.State))
	} else {
		a.log.Warn("job record changed under us; leaving it", "job_id", d.JobID, "err", err)
	}
	a.settle(ctx, d, out.Queue)
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
	gpus []int, env map[string]string, dp *dispatch, progress bool) (runner.Result, error) {
	r := runSpec{job: j, def: def, gpus: gpus, env: env, timeout: lifecycle.Timeout(j, def), progress: progress, queued: d.EnqueuedAt}
	if dp != nil {
		r.lease = dp.lease
	}
	return a.execute(ctx, &agentRun{a: a, d: d, j: j, dp: dp}, r)
}

// finish stores the files of an attempt and records its outcome as one
// transition out of running, then acknowledges, requeues or dead-letters
// the delivery as the lifecycle says. h is what the attempt held, metered
// into the record.
func (a *Agent) finish(ctx context.Context, d queue.Delivery, j *job.Job, res runner.Result, cause error, h holding) {
	a.complete(ctx, &agentRun{a: a, d: d, j: j, h: h}, j.ID, res, cause)
}

// agentRun is the Transport of an attempt the agent runs: the event
// stream, the artifact store, the job record and the queue entry.
type agentRun struct {
	a  *Agent
	d  queue.Delivery
	j  *job.Job
	dp *dispatch // nil: a gang member, or the attempt's end
	h  holding
}

func (t *agentRun) Progress(ctx context.Context, p events.Progress) {
	if _, err := t.a.d.Events.Publish(ctx, t.j.ID, events.TypeProgress, p); err != nil {
		t.a.log.Warn("publish progress failed", "job_id", t.j.ID, "err", err)
	}
}

func (t *agentRun) Logs(ctx context.Context, lines []string) {
	if _, err := t.a.d.Events.Publish(ctx, t.j.ID, events.TypeLog, events.Log{Lines: lines, At: time.Now().UTC()}); err != nil {
		t.a.log.Warn("publish log failed", "job_id", t.j.ID, "err", err)
	}
}

// Started reports the dispatch of a delivery (benchmarks) and sends the
// running event held back (publishRunning).
func (t *agentRun) Started(ctx context.Context, started bool) {
	dp := t.dp
	if dp == nil {
		return
	}
	if started {
		now := time.Now()
		if t.a.d.OnStart != nil {
			t.a.d.OnStart(t.j.ID, dp.taken, now)
		}
		if t.a.d.OnDispatch != nil {
			t.a.d.OnDispatch(Dispatch{JobID: t.j.ID, Taken: dp.taken, Started: now, Store: dp.store, Claimed: dp.claimed})
		}
	}
	t.a.publishRunning(ctx, dp)
}

// SaveArtifacts stores the files in the artifact store (the object store
// or GridFS), retrying one that does not answer (AIGW_ARTIFACT_RETRY).
func (t *agentRun) SaveArtifacts(ctx context.Context, dir string) ([]job.Artifact, error) {
	return t.a.d.Artifacts.SaveJob(ctx, dir, t.j)
}

// Finish records the outcome with one compare-and-set and settles the
// delivery. A run whose lease was lost writes nothing: the job belongs to
// another worker now.
func (t *agentRun) Finish(ctx context.Context, res runner.Result, cause error) string {
	a := t.a
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	u := lifecycle.Meter(t.j, t.h.slots, t.h.gpus, time.Now())
	out, label, err := a.record(wctx, t.j, res, cause, u)
	if err != nil {
		a.conflict(wctx, t.d, out, err)
		return ""
	}
	if label != "lost" {
		a.d.Metrics.UsageGPUSeconds.WithLabelValues(t.j.Tenant, t.j.Pool).Add(u.GPUSeconds)
		a.d.Metrics.UsageCPUSeconds.WithLabelValues(t.j.Tenant, t.j.Pool).Add(u.CPUSeconds)
	}
	a.settle(wctx, t.d, out.Queue)
	return label
}

// holding is what an attempt holds on its workers: slots (one a run, one a
// gang member) and GPUs.
type holding struct{ slots, gpus int }

// record writes the outcome of running attempt j; label is its JobsFinished
// label; u is what the attempt held.
func (a *Agent) record(ctx context.Context, j *job.Job, res runner.Result, cause error, u job.Usage) (lifecycle.Outcome, string, error) {
	switch {
	case errors.Is(cause, errLost):
		a.log.Warn("lease lost: result dropped", "job_id", j.ID, "attempt", j.Attempt)
		return lifecycle.Outcome{Job: j}, "lost", nil
	case errors.Is(cause, errCanceled):
		out, err := a.lc.Cancel(ctx, j, res.Log, u)
		return out, "canceled", err
	case errors.Is(cause, errShutdown):
		out, err := a.lc.HandBack(ctx, j, a.cfg.Node, u)
		return out, "handed_back", err
	}
	if res.Err == nil {
		out, err := a.lc.Succeed(ctx, j, lifecycle.Result{Output: res.Output, Artifacts: res.Artifacts, Log: res.Log,
			ColdStartMS: coldStartMS(res.ColdStart), Usage: u})
		return out, "succeeded", err
	}
	e := &job.Error{Code: res.Err.Code, Message: res.Err.Message}
	a.log.Info("attempt failed", "job_id", j.ID, "attempt", j.Attempt, "code", e.Code, "err", e.Message)
	out, err := a.lc.Fail(ctx, j, lifecycle.Failure{Error: e, Retryable: res.Err.Retryable, Artifacts: res.Artifacts, Log: res.Log,
		ColdStartMS: coldStartMS(res.ColdStart), Usage: u})
	if out.Queue.Verb == lifecycle.Requeue {
		return out, "retried", err
	}
	return out, "failed", err
}
