package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/events"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/worker/internal/runner"
)

// The serve runtime's side of the agent: a job of a serve algorithm gets a
// ready warm process before its record is claimed. While it waits for one to
// start (a cold start) its delivery is held and its record stays queued; when
// no process can start (the set-up failed or timed out and the runtime backs
// off) the delivery is handed back, due when the next start may be, so the
// job waits in the queue, and one whose time to live passes ends expired.

// serveEvents counts the runtime's set-ups.
func (a *Agent) serveEvents() runner.ServeEvents {
	return runner.ServeEvents{
		Ready: func(def *algorithm.Definition, _ int, setup time.Duration) {
			a.d.Metrics.SetupSeconds.WithLabelValues(def.Name).Observe(setup.Seconds())
		},
		SetupFailed: func(def *algorithm.Definition, _ error) {
			a.d.Metrics.SetupFailed.WithLabelValues(def.Name).Inc()
		},
	}
}

// warmProcess acquires a ready process for a job of def on gpus (nil, true
// for other runtimes). When there is none it settles the delivery itself
// and reports false. j is the job's record when the caller has read it.
func (a *Agent) warmProcess(ctx context.Context, d queue.Delivery, j *job.Job, def *algorithm.Definition, gpus []int) (*runner.Lease, bool) {
	switch {
	case def.Runtime.Type != algorithm.Serve:
		return nil, true
	case runner.Refused(def) != nil:
		return nil, true // a refused program fails the attempt, as an exec one does
	case len(def.Assets) > 0:
		// Its processes start with the assets' paths, known once the attempt
		// holds them: the runtime acquires the process then (a cold start
		// waits with the job running).
		return nil, true
	}
	l, err := a.runner.Acquire(ctx, def, gpus, nil)
	if err == nil {
		if l.Cold > 0 {
			a.d.Metrics.ColdStarts.WithLabelValues(def.Name).Inc()
			a.d.Metrics.ColdStart.Observe(l.Cold.Seconds())
		} else {
			a.d.Metrics.WarmHits.WithLabelValues(def.Name).Inc()
		}
		return l, true
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	var nr *runner.NotReadyError
	switch {
	case errors.Is(context.Cause(ctx), errLost):
		// Another worker holds the job now.
	case ctx.Err() != nil:
		// Canceled (the record is already) or shutting down: the record is
		// untouched, its entry goes back as it is.
		a.requeue(wctx, d, time.Now())
	case errors.As(err, &nr):
		a.notReady(wctx, d, j, nr)
	default:
		a.log.Warn("no warm process", "job_id", d.JobID, "err", err)
		a.requeue(wctx, d, time.Now().Add(time.Second))
	}
	return nil, false
}

// notReady hands back a job whose algorithm has no process that can start
// now, due when the next start may be; a job whose time to live has passed
// ends expired.
func (a *Agent) notReady(ctx context.Context, d queue.Delivery, j *job.Job, nr *runner.NotReadyError) {
	if j == nil {
		var err error
		if j, err = a.d.Jobs.GetByID(ctx, d.JobID); err != nil {
			a.log.Warn("read job record failed; the job comes back when its lease runs out", "job_id", d.JobID, "err", err)
			return
		}
	}
	now := time.Now()
	if j.State == job.Queued && j.ExpiresAt != nil && !now.Before(*j.ExpiresAt) {
		out, err := a.lc.Expire(ctx, j)
		if err != nil {
			a.conflict(ctx, d, out, err)
			return
		}
		a.log.Warn("job expired waiting for a warm process", "job_id", j.ID, "reason", nr.Reason)
		a.finished(j.ID, "expired")
		a.settle(ctx, d, out.Queue)
		return
	}
	due := nr.RetryAt.Add(time.Duration(rand64(100)) * time.Millisecond)
	if j.ExpiresAt != nil && j.ExpiresAt.Before(due) {
		due = *j.ExpiresAt
	}
	a.log.Info("no warm process can start yet: job handed back", "job_id", j.ID, "reason", nr.Reason,
		"due_in", time.Until(due).Round(time.Millisecond).String())
	// Its owner sees why it waits.
	line := fmt.Sprintf("waiting for a warm process of %s %s: %s", j.Algorithm, j.Version, nr.Reason)
	if _, err := a.d.Events.Publish(ctx, j.ID, events.TypeLog, events.Log{Lines: []string{line}, At: now.UTC()}); err != nil {
		a.log.Warn("publish log failed", "job_id", j.ID, "err", err)
	}
	a.requeue(ctx, d, due)
}

// coldStartMS is what a job's record says of its cold start.
func coldStartMS(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return max(d.Milliseconds(), 1)
}

// allocFor assigns n free GPUs to a run of def, preferring, for a serve
// algorithm, a set that an idle warm process of it holds (its model is
// loaded there).
func (a *Agent) allocFor(def *algorithm.Definition, n int) ([]int, bool) {
	if n > 0 && def.Runtime.Type == algorithm.Serve {
		for _, set := range a.runner.IdleGPUSets(def) {
			if len(set) == n && a.takeGPUs(set) {
				return set, true
			}
		}
	}
	return a.allocGPUs(n)
}

// takeGPUs marks the GPUs of set busy if all of them are free.
func (a *Agent) takeGPUs(set []int) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	idx := make([]int, 0, len(set))
	for _, gi := range set {
		found := false
		for i, g := range a.gpus {
			if g.Index == gi && !a.gpuBusy[i] {
				idx, found = append(idx, i), true
				break
			}
		}
		if !found {
			return false
		}
	}
	for _, i := range idx {
		a.gpuBusy[i] = true
	}
	return true
}

// keepWarm asks the runtime for min_warm processes of the newest version of
// each serve algorithm of the pool, on GPU sets of this node (one set per
// process, as far as the node's GPUs go), and for none of those no longer
// registered or superseded.
func (a *Agent) keepWarm(ctx context.Context) {
	src, ok := a.d.Algorithms.(algorithm.Lister)
	if !ok {
		return
	}
	defs, err := src.List(ctx)
	if err != nil {
		if ctx.Err() == nil {
			a.log.Warn("list algorithms for min_warm failed", "err", err)
		}
		return
	}
	newest := map[string]*algorithm.Definition{}
	for i := range defs {
		d := &defs[i]
		if d.Pool != a.cfg.Pool || d.Runtime.Type != algorithm.Serve {
			continue
		}
		if cur := newest[d.Name]; cur == nil || algorithm.CompareVersions(d.Version, cur.Version) > 0 {
			newest[d.Name] = d
		}
	}
	kept := map[string]*algorithm.Definition{}
	for _, d := range newest {
		if d.Runtime.MinWarm > 0 {
			a.runner.KeepWarm(d, a.warmSets(d))
			kept[d.ID()] = d
		}
	}
	a.mu.Lock()
	before := a.warm
	a.warm = kept
	a.mu.Unlock()
	for id, d := range before {
		if _, ok := kept[id]; !ok {
			a.runner.KeepWarm(d, nil)
		}
	}
}

// warmSets are the GPU sets of def's min_warm processes on this node.
func (a *Agent) warmSets(def *algorithm.Definition) [][]int {
	need := def.Resources.GPUs
	if len(a.gpus) == 0 && a.cfg.CPUFallback {
		need = 0
	}
	var sets [][]int
	for i := 0; len(sets) < def.Runtime.MinWarm; i++ {
		if need == 0 {
			sets = append(sets, nil)
			continue
		}
		if (i+1)*need > len(a.gpus) {
			break
		}
		set := make([]int, need)
		for k := range set {
			set[k] = a.gpus[i*need+k].Index
		}
		sets = append(sets, set)
	}
	return sets
}
