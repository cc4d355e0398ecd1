package executors

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/executorapi"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/lifecycle"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/internal/registry"
)

// executor is the state of one executor credential in this process: its
// queue consumers (the executor is the consumer) and the jobs it holds.
type executor struct {
	cred    Credential
	node    string
	taker   *queue.Consumer // used only under takeMu (one claim at a time)
	takeMu  sync.Mutex
	ctl     *queue.Consumer // acks, extends, requeues
	ctlMu   sync.Mutex
	started time.Time

	mu         sync.Mutex
	reg        executorapi.Register
	registered bool
	addr       string
	beat       time.Time // last call of any kind
	busy       int
	holds      map[string]*hold // by job id
	revoked    bool             // forgotten: holds nothing more (a claim in flight hands its jobs back)
	authed     time.Time        // when its token was last checked against the credential store
}

// hold is a job an executor runs: its queue entry, its running record and
// the artifacts uploaded so far.
type hold struct {
	d    queue.Delivery
	j    *job.Job
	def  *algorithm.Definition
	beat time.Time
	arts []job.Artifact
}

// nodeOf is an executor's name in job records and the registry.
func nodeOf(cr Credential) string { return cr.Name + "." + cr.ID }

// executorOf returns the state of credential cr, made on its first call.
func (s *Service) executorOf(cr Credential) (*executor, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if x, ok := s.execs[cr.ID]; ok {
		return x, nil
	}
	node := nodeOf(cr)
	taker, err := s.queue.Consumer(cr.Pool, node, queue.ConsumerOptions{Home: -1})
	if err != nil {
		return nil, err
	}
	ctl, err := s.queue.Consumer(cr.Pool, node, queue.ConsumerOptions{Home: -1})
	if err != nil {
		return nil, err
	}
	x := &executor{cred: cr, node: node, taker: taker, ctl: ctl, started: time.Now().UTC(), holds: map[string]*hold{}}
	s.execs[cr.ID] = x
	return x, nil
}

// seen notes a call of the executor from addr.
func (x *executor) seen(addr string) {
	x.mu.Lock()
	x.addr, x.beat = addr, time.Now()
	x.mu.Unlock()
}

// gpus is how many GPUs the executor registered; cpuFallback whether it runs
// GPU algorithms on its CPU.
func (x *executor) gpus() (n int, cpuFallback bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.reg.GPUs), x.reg.CPUFallback
}

// add holds j (running on x) from delivery d, unless x's credential was
// revoked meanwhile (false: the caller hands the job back).
func (x *executor) add(d queue.Delivery, j *job.Job, def *algorithm.Definition) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.revoked {
		return false
	}
	x.holds[j.ID] = &hold{d: d, j: j, def: def, beat: time.Now()}
	return true
}

// isRevoked reports whether x's credential was revoked while a call of it
// was in flight.
func (x *executor) isRevoked() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.revoked
}

// get returns the hold of job id at attempt (attempt 0: any), or nil.
func (x *executor) get(id string, attempt int) *hold {
	x.mu.Lock()
	defer x.mu.Unlock()
	h := x.holds[id]
	if h == nil || (attempt != 0 && h.j.Attempt != attempt) {
		return nil
	}
	return h
}

// take removes and returns the hold of job id at attempt, or nil: whoever
// takes it ends it, so a finish and a lease running out never both do.
func (x *executor) take(id string, attempt int) *hold {
	x.mu.Lock()
	defer x.mu.Unlock()
	h := x.holds[id]
	if h == nil || (attempt != 0 && h.j.Attempt != attempt) {
		return nil
	}
	delete(x.holds, id)
	return h
}

// heldIDs lists the jobs x holds.
func (x *executor) heldIDs() []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	ids := make([]string, 0, len(x.holds))
	for id := range x.holds {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// worker is x's registry entry.
func (x *executor) worker() registry.Worker {
	x.mu.Lock()
	defer x.mu.Unlock()
	labels := map[string]string{}
	for k, v := range x.reg.Labels {
		labels[k] = v
	}
	labels["executor_id"] = x.cred.ID
	w := registry.Worker{Node: x.node, Pool: x.cred.Pool, Version: x.reg.Version, Addr: x.addr, Labels: labels,
		Kind: registry.KindExecutor, Slots: x.reg.Slots, SlotsBusy: x.busy, GPUs: slices.Clone(x.reg.GPUs), StartedAt: x.started}
	for id := range x.holds {
		w.Running = append(w.Running, id)
	}
	slices.Sort(w.Running)
	return w
}

// publish writes x's registry entry, alive for one lease.
func (s *Service) publish(ctx context.Context, x *executor) {
	if err := s.registry.Heartbeat(ctx, x.worker(), s.d.Lease); err != nil {
		s.log.Warn("registry heartbeat failed", "pool", x.cred.Pool, "node", x.node, "err", err)
	}
}

// settle does to delivery d what the lifecycle says (as the agent does).
func (s *Service) settle(ctx context.Context, x *executor, d queue.Delivery, q lifecycle.QueueAction) {
	x.ctlMu.Lock()
	defer x.ctlMu.Unlock()
	var err error
	switch q.Verb {
	case lifecycle.Ack:
		err = x.ctl.Ack(ctx, d)
	case lifecycle.Requeue:
		err = x.ctl.Requeue(ctx, d, q.At)
	case lifecycle.DeadLetter:
		err = x.ctl.DeadLetter(ctx, d, q.Reason)
	}
	if err != nil {
		s.log.Warn("queue "+q.Verb.String()+" failed", "job_id", d.JobID, "pool", x.cred.Pool, "err", err)
	}
}

// sweep hands back the jobs whose executor sent no heartbeat for a lease
// and renews the queue leases of the others; a queue lease lost anyway
// (Redis lost it) drops the hold: the heartbeat then reports the job lost.
func (s *Service) sweep(ctx context.Context) {
	s.mu.Lock()
	xs := make([]*executor, 0, len(s.execs))
	for _, x := range s.execs {
		xs = append(xs, x)
	}
	s.mu.Unlock()
	now := time.Now()
	for _, x := range xs {
		var expired []*hold
		var live []queue.Delivery
		x.mu.Lock()
		for id, h := range x.holds {
			if now.Sub(h.beat) > s.d.Lease {
				expired = append(expired, h)
				delete(x.holds, id)
			} else {
				live = append(live, h.d)
			}
		}
		x.mu.Unlock()
		for _, h := range expired {
			s.handBack(ctx, x, h, "lease ran out: no heartbeat for "+s.d.Lease.String())
		}
		if len(live) == 0 {
			continue
		}
		x.ctlMu.Lock()
		lost, err := x.ctl.Extend(ctx, live...)
		x.ctlMu.Unlock()
		if err != nil {
			s.log.Warn("extend leases failed", "pool", x.cred.Pool, "node", x.node, "err", err)
		}
		for _, d := range lost {
			if h := x.take(d.JobID, 0); h != nil {
				s.log.Warn("queue lease lost", "job_id", d.JobID, "node", x.node)
			}
		}
	}
}

// handBack puts the job of a hold its executor lost (lease ran out, or its
// credential was revoked) back in the queue: the attempt counts as lost
// (running → queued, attempt + 1) and the entry is due now, so another
// worker or executor runs it.
func (s *Service) handBack(ctx context.Context, x *executor, h *hold, why string) {
	ctx = context.WithoutCancel(ctx)
	log := s.log.With("job_id", h.j.ID, "pool", x.cred.Pool, "node", x.node, "attempt", h.j.Attempt)
	s.release(ctx, x.cred.Pool, h.j)
	out, err := s.lc.TakeOver(ctx, h.j)
	if err != nil {
		log.Info("hand-back found the job changed", "err", err)
		s.settle(ctx, x, h.d, out.Queue)
		return
	}
	log.Warn("executor lost the job: queued again", "reason", why, "next_attempt", out.Job.Attempt)
	s.settle(ctx, x, h.d, lifecycle.QueueAction{Verb: lifecycle.Requeue})
}

// forget drops executor id's state, handing back its jobs (its credential
// was revoked).
func (s *Service) forget(ctx context.Context, id string) {
	s.mu.Lock()
	x := s.execs[id]
	delete(s.execs, id)
	s.mu.Unlock()
	if x == nil {
		return
	}
	x.mu.Lock()
	hs := make([]*hold, 0, len(x.holds))
	for _, h := range x.holds {
		hs = append(hs, h)
	}
	x.holds = map[string]*hold{}
	x.revoked = true
	x.mu.Unlock()
	for _, h := range hs {
		s.handBack(ctx, x, h, "credential revoked")
	}
	if err := s.registry.Remove(context.WithoutCancel(ctx), x.cred.Pool, x.node); err != nil {
		s.log.Warn("registry remove failed", "node", x.node, "err", err)
	}
}
