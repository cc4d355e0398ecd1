package orchestrator

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/aigw/aigw/internal/fairq"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/queue"
)

// PoolScanner pages through a pool's jobs in one state (implemented by *jobstore.Store).
type PoolScanner interface {
	Pools(ctx context.Context, st job.State) ([]string, error)
	PoolPage(ctx context.Context, pool string, st job.State, after string, before time.Time, limit int) ([]job.Job, error)
}

// QueuedLister lists queued jobs (implemented by *jobstore.Store).
type QueuedLister interface {
	PoolScanner
	GetByID(ctx context.Context, id string) (*job.Job, error)
}

// Enqueuer is the part of the queue the reconciler uses (*queue.Queue).
type Enqueuer interface {
	Contains(ctx context.Context, pool, jobID string) (bool, error)
	Enqueue(ctx context.Context, m queue.Message) (queue.Enqueued, error)
}

// Reconciler enqueues again the queued jobs that MongoDB has and the queue
// lacks (e.g. lost in a Redis failover). Enqueue is idempotent and workers
// start a job by compare-and-set, so a job re-added that was in fact taken
// still ends in exactly one terminal state.
type Reconciler struct {
	Jobs  QueuedLister
	Queue Enqueuer
	// Age: jobs queued more recently are left alone (their enqueue may be in flight).
	Age time.Duration
	Now func() time.Time
	Log *slog.Logger
	// Fair, when set, is the pools' fair-share admission: each pass first
	// pumps every pool (moves left unconfirmed, ends never reported, room for
	// waiting jobs); a job waiting there is not missing, and a missing job is
	// admitted again through it.
	Fair *fairq.Fair

	cursors *cursors // per pool; set by New
}

// ReconcileResult counts what one Reconcile did.
type ReconcileResult struct {
	Checked  int `json:"checked"`
	Enqueued int `json:"enqueued"`
	// Moved counts the jobs the fair-share pumps moved into their queues.
	Moved int `json:"moved"`
}

// Reconcile makes one pass: a page of up to pageSize queued jobs of every
// pool that has some, each pool's page after where its last pass stopped.
func (r *Reconciler) Reconcile(ctx context.Context) (ReconcileResult, error) {
	var res ReconcileResult
	var first error // a pool that fails (e.g. its shard is down) does not stop the others
	if r.Fair != nil {
		fps, err := r.Fair.Pools(ctx)
		first = err
		for _, pool := range fps {
			n, err := r.Fair.Pump(ctx, pool)
			res.Moved += n
			if err != nil {
				first = cmp.Or(first, fmt.Errorf("fair share of pool %s: %w", pool, err))
			}
		}
	}
	pools, err := r.Jobs.Pools(ctx, job.Queued)
	if err != nil {
		return res, cmp.Or(err, first)
	}
	before := r.Now().Add(-r.Age)
	for _, pool := range pools {
		jobs, err := r.Jobs.PoolPage(ctx, pool, job.Queued, r.cursors.next(pool), before, pageSize)
		if err == nil {
			err = r.check(ctx, jobs, &res)
		}
		if err != nil {
			first = cmp.Or(first, fmt.Errorf("pool %s: %w", pool, err))
			continue
		}
		last := ""
		if len(jobs) > 0 {
			last = jobs[len(jobs)-1].ID
		}
		r.cursors.advance(pool, last, len(jobs))
	}
	return res, first
}

// check enqueues again those of jobs that their stream lacks.
func (r *Reconciler) check(ctx context.Context, jobs []job.Job, res *ReconcileResult) error {
	for i := range jobs {
		j := &jobs[i]
		res.Checked++
		in, err := r.Queue.Contains(ctx, j.Pool, j.ID)
		if err != nil {
			return err
		}
		if !in && r.Fair != nil {
			if in, err = r.Fair.Holds(ctx, j.Pool, j.ID); err != nil {
				return err
			}
		}
		if in {
			continue
		}
		// A worker may have taken and finished it since the list was read.
		cur, err := r.Jobs.GetByID(ctx, j.ID)
		if err != nil {
			return err
		}
		if cur.State != job.Queued {
			continue
		}
		if r.Fair != nil {
			if _, err := r.Fair.Submit(ctx, cur); err != nil {
				return err
			}
		} else if _, err := r.Queue.Enqueue(ctx, queue.MessageOf(cur)); err != nil {
			return err
		}
		res.Enqueued++
		r.Log.InfoContext(ctx, "queued job was missing from its stream; enqueued again", "job_id", cur.ID, "pool", cur.Pool)
	}
	return nil
}
