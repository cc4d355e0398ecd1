package orchestrator

import (
	"context"
	"log/slog"
	"time"

	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/queue"
)

// QueuedLister lists queued jobs (implemented by *jobstore.Store).
type QueuedLister interface {
	ListQueuedBefore(ctx context.Context, t time.Time, limit int) ([]job.Job, error)
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
}

// ReconcileResult counts what one Reconcile did.
type ReconcileResult struct {
	Checked  int `json:"checked"`
	Enqueued int `json:"enqueued"`
}

// Reconcile makes one pass over up to scanLimit queued jobs, oldest first.
func (r *Reconciler) Reconcile(ctx context.Context) (ReconcileResult, error) {
	var res ReconcileResult
	jobs, err := r.Jobs.ListQueuedBefore(ctx, r.Now().Add(-r.Age), scanLimit)
	if err != nil {
		return res, err
	}
	for i := range jobs {
		j := &jobs[i]
		res.Checked++
		in, err := r.Queue.Contains(ctx, j.Pool, j.ID)
		if err != nil {
			return res, err
		}
		if in {
			continue
		}
		// A worker may have taken and finished it since the list was read.
		cur, err := r.Jobs.GetByID(ctx, j.ID)
		if err != nil {
			return res, err
		}
		if cur.State != job.Queued {
			continue
		}
		if _, err := r.Queue.Enqueue(ctx, queue.MessageOf(cur)); err != nil {
			return res, err
		}
		res.Enqueued++
		r.Log.InfoContext(ctx, "queued job was missing from its stream; enqueued again", "job", cur.ID, "pool", cur.Pool)
	}
	return res, nil
}
