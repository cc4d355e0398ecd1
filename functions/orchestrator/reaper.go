package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/jobstore"
	"github.com/aigw/aigw/internal/registry"
)

// scanLimit bounds the jobs one pass of the reaper or reconciler looks at.
const scanLimit = 500

// jobScanner finds the jobs the reaper looks at. jobstore has no cross-tenant
// query by state or expiry, so these read its collection directly, with
// filters its state_id index serves.
type jobScanner struct{ jobs *mongo.Collection }

func (s jobScanner) find(ctx context.Context, filter bson.D) ([]job.Job, error) {
	cur, err := s.jobs.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(scanLimit))
	if err != nil {
		return nil, fmt.Errorf("scan jobs: %w", err)
	}
	var out []job.Job
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("scan jobs: %w", err)
	}
	return out, nil
}

// expired: queued jobs whose TTL has passed.
func (s jobScanner) expired(ctx context.Context, now time.Time) ([]job.Job, error) {
	return s.find(ctx, bson.D{{Key: "state", Value: job.Queued}, {Key: "expires_at", Value: bson.D{{Key: "$lt", Value: now}}}})
}

// running: every running job.
func (s jobScanner) running(ctx context.Context) ([]job.Job, error) {
	return s.find(ctx, bson.D{{Key: "state", Value: job.Running}})
}

// Transitioner is the part of the job store the reaper changes jobs with.
type Transitioner interface {
	Transition(ctx context.Context, id string, c jobstore.Change) (*job.Job, error)
}

// StatePublisher publishes a job's new state (implemented by *events.Stream).
type StatePublisher interface {
	PublishState(ctx context.Context, j *job.Job) (string, error)
}

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
	scan       jobScanner // set by New
	Jobs       Transitioner
	Events     StatePublisher
	Workers    WorkerLister
	Algorithms AlgorithmGetter
	Grace      time.Duration
	Now        func() time.Time
	Log        *slog.Logger
}

// ReapResult counts what one Reap did.
type ReapResult struct {
	Expired int `json:"expired"`
	Lost    int `json:"lost"`
	// Raced: another reaper or a worker changed the job first.
	Raced int `json:"raced"`
}

// Reap makes one pass.
func (r *Reaper) Reap(ctx context.Context) (ReapResult, error) {
	var res ReapResult
	now := r.Now().UTC()
	queued, err := r.scan.expired(ctx, now)
	if err != nil {
		return res, err
	}
	for i := range queued {
		j := &queued[i]
		won, err := r.end(ctx, j, job.Queued, job.Expired, &job.Error{Code: "expired",
			Message: fmt.Sprintf("no worker started the job before it expired at %s", j.ExpiresAt.UTC().Format(time.RFC3339))})
		if err != nil {
			return res, err
		}
		if won {
			res.Expired++
		} else {
			res.Raced++
		}
	}
	running, err := r.scan.running(ctx)
	if err != nil {
		return res, err
	}
	live := map[string][]registry.Worker{}
	for i := range running {
		j := &running[i]
		if j.StartedAt == nil {
			continue
		}
		timeout, err := r.timeout(ctx, j)
		if err != nil {
			return res, err
		}
		if now.Before(j.StartedAt.Add(timeout + r.Grace)) {
			continue
		}
		workers, ok := live[j.Pool]
		if !ok {
			if workers, err = r.Workers.Workers(ctx, j.Pool); err != nil {
				return res, err
			}
			live[j.Pool] = workers
		}
		if held(workers, j.ID) {
			continue
		}
		won, err := r.end(ctx, j, job.Running, job.Failed, &job.Error{Code: "lost",
			Message: fmt.Sprintf("the job ran past its timeout of %s and no live worker holds it", timeout)})
		if err != nil {
			return res, err
		}
		if won {
			res.Lost++
		} else {
			res.Raced++
		}
	}
	return res, nil
}

// timeout is the job's execution timeout, else its algorithm's, else the default.
func (r *Reaper) timeout(ctx context.Context, j *job.Job) (time.Duration, error) {
	if j.ExecutionTimeoutMS > 0 {
		return time.Duration(j.ExecutionTimeoutMS) * time.Millisecond, nil
	}
	def, err := r.Algorithms.Get(ctx, j.Algorithm, j.Version)
	if errors.Is(err, algorithm.ErrNotFound) {
		return algorithm.DefaultTimeout, nil
	}
	if err != nil {
		return 0, err
	}
	return def.Timeout(), nil
}

func held(workers []registry.Worker, jobID string) bool {
	for _, w := range workers {
		if slices.Contains(w.Running, jobID) {
			return true
		}
	}
	return false
}

// end moves j from → to by compare-and-set (on its attempt too) and publishes
// the new state; it reports false when someone else changed the job first.
func (r *Reaper) end(ctx context.Context, j *job.Job, from, to job.State, e *job.Error) (bool, error) {
	done, err := r.Jobs.Transition(ctx, j.ID, jobstore.Change{From: from, To: to, Attempt: j.Attempt, Error: e, Notify: j.Notifies(to)})
	if errors.Is(err, jobstore.ErrConflict) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	r.Log.InfoContext(ctx, "job reaped", "job", j.ID, "state", to, "code", e.Code)
	if _, err := r.Events.PublishState(ctx, done); err != nil {
		r.Log.WarnContext(ctx, "state event not published", "job", j.ID, "err", err)
	}
	return true, nil
}
