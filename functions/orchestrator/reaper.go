package orchestrator

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/fairq"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/jobstore"
	"github.com/aigw/aigw/internal/lifecycle"
	"github.com/aigw/aigw/internal/registry"
)

// JobScanner finds the jobs the reaper looks at, a pool at a time
// (implemented by *jobstore.Store).
type JobScanner interface {
	PoolScanner
	ExpiredInPool(ctx context.Context, pool string, t time.Time, limit int) ([]job.Job, error)
}

// Transitioner is the part of the job store the reaper changes jobs with,
// through the lifecycle (implemented by *jobstore.Store).
type Transitioner = lifecycle.Store

// StatePublisher publishes a job's new state (implemented by *events.Stream).
type StatePublisher = lifecycle.Publisher

// WorkerLister lists a pool's live workers (implemented by *registry.Registry).
type WorkerLister interface {
	Workers(ctx context.Context, pool string) ([]registry.Worker, error)
}

// AlgorithmGetter returns an algorithm definition (implemented by *algorithm.Store).
type AlgorithmGetter interface {
	Get(ctx context.Context, name, version string) (*algorithm.Definition, error)
}

// Reaper ends jobs nobody will finish: queued jobs past their TTL become
// expired; running jobs past their execution timeout plus Grace that no live
// worker holds become failed with code "lost".
type Reaper struct {
	Scan       JobScanner
	Jobs       Transitioner
	Events     StatePublisher
	Workers    WorkerLister
	Algorithms AlgorithmGetter
	Grace      time.Duration
	Now        func() time.Time
	Log        *slog.Logger
	// Fair, when set, gives the room of each job reaped to the next job of
	// its pool (fair share).
	Fair *fairq.Fair

	cursors *cursors // of running jobs, per pool; set by New
}

// ReapResult counts what one Reap did.
type ReapResult struct {
	Expired int `json:"expired"`
	Lost    int `json:"lost"`
	// Raced: another reaper or a worker changed the job first.
	Raced int `json:"raced"`
}

// Reap makes one pass over every pool with queued or running jobs: up to
// pageSize of its expired queued jobs, and a page of up to pageSize of its
// running jobs after where its last pass stopped. A pool that fails does not
// stop the others; the first error is returned.
func (r *Reaper) Reap(ctx context.Context) (ReapResult, error) {
	var res ReapResult
	now := r.Now().UTC()
	var first error
	queued, err := r.Scan.Pools(ctx, job.Queued)
	if err != nil {
		return res, err
	}
	for _, pool := range queued {
		if err := r.expire(ctx, pool, now, &res); err != nil {
			first = cmp.Or(first, fmt.Errorf("pool %s: %w", pool, err))
		}
	}
	running, err := r.Scan.Pools(ctx, job.Running)
	if err != nil {
		return res, cmp.Or(first, err)
	}
	for _, pool := range running {
		if err := r.reapRunning(ctx, pool, now, &res); err != nil {
			first = cmp.Or(first, fmt.Errorf("pool %s: %w", pool, err))
		}
	}
	return res, first
}

// expire ends the pool's queued jobs whose TTL has passed.
func (r *Reaper) expire(ctx context.Context, pool string, now time.Time, res *ReapResult) error {
	queued, err := r.Scan.ExpiredInPool(ctx, pool, now, pageSize)
	if err != nil {
		return err
	}
	for i := range queued {
		j := &queued[i]
		won, err := r.end(ctx, j, r.lifecycle().Expire)
		if err != nil {
			return err
		}
		if won {
			res.Expired++
		} else {
			res.Raced++
		}
	}
	return nil
}

// reapRunning fails the jobs of a page of the pool's running jobs that ran
// past their timeout and that no live worker holds.
func (r *Reaper) reapRunning(ctx context.Context, pool string, now time.Time, res *ReapResult) error {
	running, err := r.Scan.PoolPage(ctx, pool, job.Running, r.cursors.next(pool), time.Time{}, pageSize)
	if err != nil {
		return err
	}
	var workers []registry.Worker
	listed := false
	for i := range running {
		j := &running[i]
		if j.StartedAt == nil {
			continue
		}
		timeout, err := r.timeout(ctx, j)
		if err != nil {
			return err
		}
		if now.Before(j.StartedAt.Add(timeout + r.Grace)) {
			continue
		}
		if !listed {
			if workers, err = r.Workers.Workers(ctx, pool); err != nil {
				return err
			}
			listed = true
		}
		if held(workers, j.ID) {
			continue
		}
		won, err := r.end(ctx, j, func(ctx context.Context, j *job.Job) (lifecycle.Outcome, error) {
			return r.lifecycle().Reap(ctx, j, timeout)
		})
		if err != nil {
			return err
		}
		if won {
			res.Lost++
		} else {
			res.Raced++
		}
	}
	last := ""
	if len(running) > 0 {
		last = running[len(running)-1].ID
	}
	r.cursors.advance(pool, last, len(running))
	return nil
}

// timeout is the job's effective execution timeout (lifecycle.Timeout): its
// own, else its algorithm's, else the default.
func (r *Reaper) timeout(ctx context.Context, j *job.Job) (time.Duration, error) {
	if j.ExecutionTimeoutMS > 0 {
		return lifecycle.Timeout(j, nil), nil
	}
	def, err := r.Algorithms.Get(ctx, j.Algorithm, j.Version)
	if errors.Is(err, algorithm.ErrNotFound) {
		def, err = nil, nil
	}
	if err != nil {
		return 0, err
	}
	return lifecycle.Timeout(j, def), nil
}

func held(workers []registry.Worker, jobID string) bool {
	for _, w := range workers {
		if slices.Contains(w.Running, jobID) {
			return true
		}
	}
	return false
}

// lifecycle is the reaper's view of the job lifecycle.
func (r *Reaper) lifecycle() *lifecycle.Lifecycle {
	return lifecycle.New(r.Jobs, r.Events, r.Log, lifecycle.Backoff{}).OnEnd(r.Fair.Ended)
}

// end applies op (a lifecycle operation) to j; it reports false when someone
// else changed the job first.
func (r *Reaper) end(ctx context.Context, j *job.Job, op func(context.Context, *job.Job) (lifecycle.Outcome, error)) (bool, error) {
	out, err := op(ctx, j)
	if errors.Is(err, jobstore.ErrConflict) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	r.Log.InfoContext(ctx, "job reaped", "job_id", j.ID, "state", out.Job.State, "code", out.Job.Error.Code)
	return true, nil
}
