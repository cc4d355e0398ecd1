package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"time"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/lifecycle"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/worker/internal/gang"
	"github.com/aigw/aigw/worker/internal/runner"
)

// gangEnv is the rendezvous environment of one member.
func gangEnv(r *gang.Reservation, rank int) map[string]string {
	return map[string]string{
		"WORLD_SIZE": strconv.Itoa(r.Size), "RANK": strconv.Itoa(rank),
		"MASTER_ADDR": r.Addr, "MASTER_PORT": strconv.Itoa(r.Port),
	}
}

// freePort picks a TCP port that is free on this node now (MASTER_PORT).
func freePort() (int, error) {
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// lead runs a gang job as its leader (rank 0, on the slot its delivery holds):
// reserve all slots or hand the job back, wait for every member to start,
// mark the record running once, run rank 0, collect the members' results and
// record one outcome. Any member failing stops the others.
func (a *Agent) lead(ctx context.Context, d queue.Delivery, j *job.Job, def *algorithm.Definition, gpus []int, dp *dispatch) {
	r, ok := a.assemble(ctx, d, j)
	if !ok {
		return
	}
	j, ok = a.start(ctx, d, j, dp)
	if !ok {
		a.abortGang(ctx, d.JobID)
		return
	}
	if _, err := a.gang.Renew(ctx, j.ID, a.cfg.GangTimeout, gang.Running); err != nil {
		a.log.Warn("renew gang reservation failed", "job_id", j.ID, "err", err)
	}
	// Rank 0 runs here; watchGang watches the others.
	rctx, stopRank0 := context.WithCancelCause(ctx)
	defer stopRank0(nil)
	own := make(chan rankOutcome, 1)
	go func() {
		res, cause := a.attempt(rctx, d, j, def, gpus, gangEnv(r, 0), dp, true)
		own <- rankOutcome{res, cause}
	}()
	mine, failed, failedRank := a.watchGang(ctx, j, def, r.Size, own, stopRank0)
	a.abortGang(context.WithoutCancel(ctx), j.ID)
	res, cause := gangOutcome(ctx, mine, failed, failedRank)
	a.finish(ctx, d, j, res, cause, holding{slots: r.Size, gpus: r.Size * len(gpus)})
}

// rankOutcome is how the leader's own rank ended.
type rankOutcome struct {
	res   runner.Result
	cause error
}

// retryGangLater hands a gang job back, due again shortly.
func (a *Agent) retryGangLater(ctx context.Context, d queue.Delivery) {
	a.requeue(ctx, d, time.Now().Add(time.Duration(500+rand64(500))*time.Millisecond))
}

// assemble reserves slots for every member of gang job j and waits for each
// member to start; false when the job was handed back (or lost) instead.
func (a *Agent) assemble(ctx context.Context, d queue.Delivery, j *job.Job) (*gang.Reservation, bool) {
	log := a.log.With("job_id", j.ID, "attempt", j.Attempt)
	port, err := freePort()
	if err != nil {
		log.Warn("no free port for MASTER_PORT", "err", err)
		a.retryGangLater(ctx, d)
		return nil, false
	}
	ttl := a.cfg.GangTimeout
	a.mu.Lock()
	free := a.cfg.Slots - a.busy
	a.mu.Unlock()
	r, err := a.gang.Reserve(ctx, gang.Request{JobID: j.ID, Attempt: j.Attempt, Size: j.GangSize, Leader: a.cfg.Node,
		Held: 1, Free: max(free, 0), Addr: a.cfg.AdvertiseAddr, Port: port, TTL: ttl})
	if err != nil || r == nil {
		if err != nil {
			log.Warn("gang reservation failed", "err", err)
		}
		a.retryGangLater(ctx, d) // too few free slots now: nothing is held, the job stays queued
		return nil, false
	}
	if r.Leader != a.cfg.Node || r.Attempt != j.Attempt {
		// A stale reservation of an earlier leader of this job: drop it, try again.
		a.abortGang(ctx, j.ID)
		a.retryGangLater(ctx, d)
		return nil, false
	}
	log.Info("gang reserved", "size", r.Size, "master_port", r.Port)
	deadline := time.Now().Add(a.cfg.GangTimeout)
	for !allStarted(r) {
		if time.Now().After(deadline) || ctx.Err() != nil {
			log.Warn("gang members did not all start in time: released")
			a.abortGang(ctx, j.ID)
			if !errors.Is(context.Cause(ctx), errLost) {
				a.retryGangLater(ctx, d)
			}
			return nil, false
		}
		time.Sleep(100 * time.Millisecond)
		if r, err = a.gang.Renew(ctx, j.ID, ttl, ""); err != nil || r == nil {
			log.Warn("gang reservation vanished", "err", err)
			a.abortGang(ctx, j.ID)
			a.retryGangLater(ctx, d)
			return nil, false
		}
	}
	return r, true
}

// watchGang waits for rank 0 (own) and the other members of j's gang of
// size: until rank 0 ended and every other rank reported success, or a
// rank failed (rank 0 is then stopped), or members never report (failedRank
// -1, at the execution timeout plus the grace), or ctx ended. It keeps the
// reservation alive meanwhile.
func (a *Agent) watchGang(ctx context.Context, j *job.Job, def *algorithm.Definition, size int,
	own <-chan rankOutcome, stopRank0 context.CancelCauseFunc) (mine *rankOutcome, failed *gang.MemberResult, failedRank int) {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	// Members that never report (their worker died) fail the gang at its timeout.
	overall := time.Now().Add(lifecycle.Timeout(j, def) + a.cfg.KillGrace + a.cfg.GangTimeout)
	for mine == nil || (failed == nil && mine.res.Err == nil && mine.cause == nil && ctx.Err() == nil &&
		!a.allReported(ctx, j.ID, size)) {
		select {
		case o := <-own:
			mine = &o
			continue
		case <-tick.C:
		}
		if mine != nil && failed == nil && time.Now().After(overall) {
			failed = &gang.MemberResult{Code: runner.CodeTimeout, Message: "did not report within the execution timeout"}
			failedRank = -1
			continue
		}
		if _, err := a.gang.Renew(ctx, j.ID, a.cfg.GangTimeout, ""); err != nil && ctx.Err() == nil {
			a.log.Warn("renew gang reservation failed", "job_id", j.ID, "err", err)
		}
		if failed != nil || ctx.Err() != nil {
			continue
		}
		if failed, failedRank = a.failedMember(ctx, j.ID, size); failed != nil {
			stopRank0(errGangAbort)
		}
	}
	return mine, failed, failedRank
}

// failedMember returns the first of ranks 1..size-1 that reported a failure.
func (a *Agent) failedMember(ctx context.Context, jobID string, size int) (*gang.MemberResult, int) {
	results, err := a.gang.Results(ctx, jobID)
	if err != nil {
		return nil, 0
	}
	for rank := 1; rank < size; rank++ {
		if mr, ok := results[rank]; ok && !mr.OK {
			return &mr, rank
		}
	}
	return nil, 0
}

// gangOutcome is the gang's one result: rank 0's, or the failed member's.
func gangOutcome(ctx context.Context, mine *rankOutcome, failed *gang.MemberResult, failedRank int) (runner.Result, error) {
	res, cause := mine.res, mine.cause
	if errors.Is(cause, errGangAbort) {
		cause = nil
	}
	if cause == nil && ctx.Err() != nil {
		cause = context.Cause(ctx)
	}
	if failed != nil && cause == nil {
		res.Err = &runner.Failure{Code: failed.Code, Message: fmt.Sprintf("gang member rank %d: %s", failedRank, failed.Message),
			Retryable: job.RetryableCode(failed.Code)}
		res.Output = nil
	} else if res.Err != nil && res.Err.Code != runner.CodeStopped {
		res.Err.Message = "gang member rank 0: " + res.Err.Message
	}
	return res, cause
}

// waitGangRunning waits until the leader marks the job's reservation running;
// false when it is aborted, gone, or not running within the gang start timeout.
func (a *Agent) waitGangRunning(ctx context.Context, jobID string) bool {
	deadline := time.Now().Add(a.cfg.GangTimeout + a.cfg.Heartbeat)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		r, err := a.gang.Get(ctx, jobID)
		switch {
		case err != nil:
			a.log.Warn("read gang reservation failed", "job_id", jobID, "err", err)
		case r == nil || r.State == gang.Abort:
			return false
		case r.State == gang.Running:
			return true
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	return false
}

func allStarted(r *gang.Reservation) bool {
	for _, m := range r.Members {
		if !m.Started {
			return false
		}
	}
	return true
}

// allReported says whether ranks 1..size-1 have all reported success.
func (a *Agent) allReported(ctx context.Context, jobID string, size int) bool {
	results, err := a.gang.Results(ctx, jobID)
	if err != nil {
		return false
	}
	for rank := 1; rank < size; rank++ {
		if mr, ok := results[rank]; !ok || !mr.OK {
			return false
		}
	}
	return true
}

// abortGang tells the members to stop, then releases the reservation.
func (a *Agent) abortGang(ctx context.Context, jobID string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := a.gang.Renew(ctx, jobID, time.Second, gang.Abort); err != nil {
		a.log.Warn("abort gang failed", "job_id", jobID, "err", err)
	}
	// Members poll every 200 ms; give them time to see the abort before the
	// reservation (and so the signal) disappears.
	time.Sleep(400 * time.Millisecond)
	if err := a.gang.Release(ctx, jobID); err != nil {
		a.log.Warn("release gang failed", "job_id", jobID, "err", err)
	}
}

// gangTick publishes this node's free slots, starts the members reserved on
// it and stops members whose gang is gone or aborting.
func (a *Agent) gangTick(ctx context.Context) {
	a.mu.Lock()
	free := a.cfg.Slots - a.busy
	if a.draining {
		free = 0
	}
	a.mu.Unlock()
	if err := a.gang.Publish(ctx, a.cfg.Node, free, 2*a.cfg.Heartbeat); err != nil {
		a.log.Warn("publish free slots failed", "err", err)
		return
	}
	rs, err := a.gang.Reservations(ctx)
	if err != nil {
		a.log.Warn("read gang reservations failed", "err", err)
		return
	}
	live := map[string]bool{}
	pending := 0
	type todo struct {
		r    gang.Reservation
		rank int
	}
	var start []todo
	for _, r := range rs {
		if r.State == gang.Abort || r.Expires < time.Now().UnixMilli() {
			continue
		}
		for _, m := range r.Members {
			if m.Node != a.cfg.Node {
				continue
			}
			live[memberKey(r.JobID, m.Rank)] = true
			if !m.Started {
				pending++
				start = append(start, todo{r, m.Rank})
			}
		}
	}
	sort.Slice(start, func(i, k int) bool { return start[i].r.JobID < start[k].r.JobID })
	a.mu.Lock()
	a.pending = pending
	for key, r := range a.runs {
		if r.member && !live[key] {
			r.cancel(errGangAbort)
		}
	}
	draining := a.draining
	a.mu.Unlock()
	if draining {
		return
	}
	for _, t := range start {
		a.startMember(ctx, t.r, t.rank)
	}
}

func memberKey(jobID string, rank int) string { return jobID + "#" + strconv.Itoa(rank) }

// startMember claims a slot and the member, then runs it in the background.
func (a *Agent) startMember(ctx context.Context, r gang.Reservation, rank int) {
	key := memberKey(r.JobID, rank)
	a.mu.Lock()
	if _, ok := a.runs[key]; ok || a.cfg.Slots-a.busy <= 0 {
		a.mu.Unlock()
		return
	}
	a.busy++
	a.pending--
	mctx, cancel := context.WithCancelCause(ctx)
	a.runs[key] = &run{jobID: r.JobID, rank: rank, member: true, cancel: cancel}
	a.mu.Unlock()
	a.setGauges()
	release := func() {
		cancel(nil)
		a.mu.Lock()
		delete(a.runs, key)
		a.busy--
		a.mu.Unlock()
		a.setGauges()
		select {
		case a.freed <- struct{}{}:
		default:
		}
	}
	claimed, err := a.gang.Start(ctx, r.JobID, rank, a.cfg.Node)
	if err != nil || claimed == nil {
		release()
		return
	}
	go func() {
		defer release()
		a.runMember(mctx, claimed, rank)
	}()
}

// runMember runs one non-leader member and reports its result.
func (a *Agent) runMember(ctx context.Context, r *gang.Reservation, rank int) {
	log := a.log.With("job_id", r.JobID, "rank", rank)
	report := func(mr gang.MemberResult) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := a.gang.Report(rctx, r.JobID, rank, mr); err != nil {
			log.Warn("report gang result failed", "err", err)
		}
	}
	// A member holds its slot but runs only once every member has claimed one
	// and the leader has started the job: a reservation made on a stale count of
	// free slots then never runs its members one after another, it times out and
	// is released, and the gang waits for N slots that are really free.
	if !a.waitGangRunning(ctx, r.JobID) {
		log.Info("gang did not start: member not run")
		return
	}
	j, err := a.d.Jobs.GetByID(ctx, r.JobID)
	if err != nil {
		report(gang.MemberResult{Code: runner.CodeRuntime, Message: "read job record: " + err.Error()})
		return
	}
	def, err := a.d.Algorithms.Get(ctx, j.Algorithm, j.Version)
	if err != nil {
		report(gang.MemberResult{Code: runner.CodeRuntime, Message: "read algorithm: " + err.Error()})
		return
	}
	gpus, ok := a.allocGPUs(def.Resources.GPUs)
	if !ok {
		report(gang.MemberResult{Code: runner.CodeRuntime, Message: fmt.Sprintf("node %s has not %d free GPUs", a.cfg.Node, def.Resources.GPUs)})
		return
	}
	defer a.freeGPUs(gpus)
	j.Attempt = r.Attempt
	res, cause := a.attempt(ctx, queue.Delivery{}, j, def, gpus, gangEnv(r, rank), nil, false)
	res.RemoveDir()
	switch {
	case cause != nil:
		log.Info("gang member stopped", "cause", cause.Error())
		a.d.Metrics.JobsFinished.WithLabelValues("stopped").Inc()
	case res.Err != nil:
		a.d.Metrics.JobsFinished.WithLabelValues("failed").Inc()
		report(gang.MemberResult{Code: res.Err.Code, Message: res.Err.Message})
	default:
		a.d.Metrics.JobsFinished.WithLabelValues("succeeded").Inc()
		report(gang.MemberResult{OK: true, Output: res.Output})
	}
}
