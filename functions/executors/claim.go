package executors

import (
	"context"
	"errors"
	"time"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/executorapi"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/jobstore"
	"github.com/aigw/aigw/internal/lifecycle"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/internal/registry"
)

// claim takes delivery d's job to running on executor x, by the agent's
// rules (worker/agent/handle.go): a hinted entry is claimed with one update
// of its record; otherwise the record is read and moved queued → running
// with one compare-and-set, taking over an attempt whose holder lost its
// lease. A job x cannot run is failed when nobody in the pool can (unknown
// algorithm; a gang, which executors refuse; more GPUs than any node has),
// else handed back for an agent or another executor.
func (s *Service) claim(ctx context.Context, x *executor, d queue.Delivery) (executorapi.Job, bool) {
	// A pool with max_running quotas reads each record first (the claim
	// path does not know the tenant before it starts the job).
	limits := s.quotaLimits(ctx, x)
	if name, version, ok := job.ParseDispatchHint(d.Payload); ok && len(limits) == 0 {
		def, err := s.algorithms.Get(ctx, name, version)
		if err == nil && s.gpuNeed(x, def) <= s.gpusOf(x) {
			j, claimed, err := s.lc.Claim(ctx, d.Payload, d.JobID, x.node)
			if claimed {
				return s.started(ctx, x, d, j, def)
			}
			if err != nil {
				s.log.Warn("claim failed; the job comes back when its lease runs out", "job_id", d.JobID, "err", err)
				return executorapi.Job{}, false
			}
		}
	}
	j, ok := s.readQueued(ctx, x, d)
	if !ok {
		return executorapi.Job{}, false
	}
	def, ok := s.resolve(ctx, x, d, j)
	if !ok {
		return executorapi.Job{}, false
	}
	if !s.admit(ctx, x, d, j, def, limits) {
		return executorapi.Job{}, false
	}
	out, err := s.lc.Start(ctx, j, x.node)
	if err != nil {
		s.release(ctx, x.cred.Pool, j)
		s.conflict(ctx, x, d, out, err)
		return executorapi.Job{}, false
	}
	return s.started(ctx, x, d, out.Job, def)
}

// started holds running job j and announces it. An executor revoked while
// its claim was in flight holds nothing: the job goes straight back.
func (s *Service) started(ctx context.Context, x *executor, d queue.Delivery, j *job.Job, def *algorithm.Definition) (executorapi.Job, bool) {
	if !x.add(d, j, def) {
		s.handBack(ctx, x, &hold{d: d, j: j, def: def}, "credential revoked during the claim")
		return executorapi.Job{}, false
	}
	s.lc.Announce(ctx, j)
	s.log.Info("job claimed by executor", "job_id", j.ID, "attempt", j.Attempt, "pool", x.cred.Pool, "node", x.node)
	return executorapi.Job{ID: j.ID, Attempt: j.Attempt, Algorithm: j.Algorithm, Version: def.Version, Input: j.Input,
		TimeoutMS: lifecycle.Timeout(j, def).Milliseconds(), Definition: def}, true
}

func (s *Service) gpusOf(x *executor) int {
	n, _ := x.gpus()
	return n
}

// gpuNeed is how many GPUs a run of def takes on x: none on an executor
// without GPUs that runs GPU algorithms on its CPU.
func (s *Service) gpuNeed(x *executor, def *algorithm.Definition) int {
	n, fallback := x.gpus()
	if n == 0 && fallback {
		return 0
	}
	return def.Resources.GPUs
}

// readQueued reads d's record and reports it when it is queued, or running
// on a holder that lost its lease (that attempt is then counted lost).
func (s *Service) readQueued(ctx context.Context, x *executor, d queue.Delivery) (*job.Job, bool) {
	log := s.log.With("job_id", d.JobID, "node", x.node)
	j, err := s.jobs.GetByID(ctx, d.JobID)
	switch {
	case errors.Is(err, jobstore.ErrNotFound):
		log.Warn("no job record: dead-lettered")
		s.settle(ctx, x, d, lifecycle.QueueAction{Verb: lifecycle.DeadLetter, Reason: "no job record"})
		return nil, false
	case err != nil:
		log.Warn("read job record failed; the job comes back when its lease runs out", "err", err)
		return nil, false
	case j.State.Terminal():
		s.settle(ctx, x, d, lifecycle.QueueAction{Verb: lifecycle.Ack})
		return nil, false
	case j.State == job.Running:
		out, err := s.lc.TakeOver(ctx, j)
		if err != nil {
			log.Warn("take-over failed", "err", err)
			s.settle(ctx, x, d, out.Queue)
			return nil, false
		}
		log.Info("took over a lost attempt", "attempt", out.Job.Attempt)
		return out.Job, true
	case j.State != job.Queued:
		log.Warn("job in an unexpected state: skipped", "state", string(j.State))
		s.settle(ctx, x, d, lifecycle.QueueAction{Verb: lifecycle.Ack})
		return nil, false
	}
	return j, true
}

// resolve finds the algorithm of queued job j and checks that x can run it.
func (s *Service) resolve(ctx context.Context, x *executor, d queue.Delivery, j *job.Job) (*algorithm.Definition, bool) {
	def, err := s.algorithms.Get(ctx, j.Algorithm, j.Version)
	if errors.Is(err, algorithm.ErrNotFound) {
		s.failAtStart(ctx, x, d, j, job.CodeUnknownAlgorithm, "algorithm "+j.Algorithm+" version "+j.Version+" is not registered")
		return nil, false
	}
	if err != nil {
		s.log.Warn("read algorithm failed; the job comes back when its lease runs out", "job_id", j.ID, "err", err)
		return nil, false
	}
	if j.GangSize > 1 {
		// Gangs need members that reach each other and the gang's Redis
		// keys: only agents run them.
		if s.poolHas(ctx, x, func(w registry.Worker) bool { return w.Kind != registry.KindExecutor }) {
			s.handOn(ctx, x, d)
			return nil, false
		}
		s.failAtStart(ctx, x, d, j, job.CodeUnschedulable,
			"gang jobs do not run on remote executors, and pool "+x.cred.Pool+" has no worker agent to run them")
		return nil, false
	}
	need := s.gpuNeed(x, def)
	if need > s.gpusOf(x) {
		if s.poolHas(ctx, x, func(w registry.Worker) bool { return len(w.GPUs) >= need }) {
			s.handOn(ctx, x, d)
			return nil, false
		}
		s.failAtStart(ctx, x, d, j, job.CodeUnschedulable, "needs more GPUs on one node than any worker or executor of pool "+x.cred.Pool+" has")
		return nil, false
	}
	return def, true
}

// poolHas reports whether a live worker or executor of x's pool matches ok
// (true when the registry cannot tell: retry later rather than fail).
func (s *Service) poolHas(ctx context.Context, x *executor, ok func(registry.Worker) bool) bool {
	ws, err := s.registry.Workers(ctx, x.cred.Pool)
	if err != nil {
		return true
	}
	for _, w := range ws {
		if ok(w) {
			return true
		}
	}
	return false
}

// handOn gives back a job x cannot run but another node of its pool can,
// due again shortly.
func (s *Service) handOn(ctx context.Context, x *executor, d queue.Delivery) {
	s.settle(ctx, x, d, lifecycle.QueueAction{Verb: lifecycle.Requeue, At: time.Now().Add(500 * time.Millisecond)})
}

func (s *Service) failAtStart(ctx context.Context, x *executor, d queue.Delivery, j *job.Job, code, msg string) {
	s.log.Warn("job cannot run", "job_id", j.ID, "code", code, "err", msg)
	out, err := s.lc.FailAtStart(ctx, j, &job.Error{Code: code, Message: msg})
	if err != nil {
		s.conflict(ctx, x, d, out, err)
		return
	}
	s.settle(ctx, x, d, out.Queue)
}

// conflict handles a lost compare-and-set as the agent does.
func (s *Service) conflict(ctx context.Context, x *executor, d queue.Delivery, out lifecycle.Outcome, err error) {
	if out.Queue.Verb == lifecycle.Ack {
		s.log.Info("job finished elsewhere", "job_id", d.JobID)
	} else {
		s.log.Warn("job record changed under us; leaving it", "job_id", d.JobID, "err", err)
	}
	s.settle(ctx, x, d, out.Queue)
}
