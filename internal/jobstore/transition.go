package jobstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/mongoconn"
)

// Change is one state transition of a job, applied as a compare-and-set.
type Change struct {
	From, To job.State
	// Attempt, when > 0, must also match the record (so a worker whose attempt was
	// taken over cannot finish the newer one).
	Attempt int
	// Worker is recorded on → running.
	Worker string
	// Output is stored on → succeeded.
	Output json.RawMessage
	// Error is stored on → failed, canceled, expired, and on a retry (→ queued) as
	// the last attempt's error.
	Error *job.Error
	// NotBefore delays a retry (→ queued).
	NotBefore time.Time
	// ExpiresAt, on → queued, sets when the requeued job expires (a manual
	// retry of an expired job needs a new deadline).
	ExpiresAt time.Time
	// Artifacts and Log are stored on → succeeded, failed and canceled (the
	// attempt's files and log tail).
	Artifacts []job.Artifact
	Log       string
	// ColdStartMS is stored with them when > 0: the attempt waited that long
	// for a warm process to start.
	ColdStartMS int64
	// Usage, on a move out of running, is what the attempt held (GPU- and
	// CPU-seconds); it is added to the record's usage in the same update.
	Usage job.Usage
	// Notify appends the change to the job's webhook outbox in the same update
	// (set it from Job.Notifies(To)).
	Notify bool
}

// Transition moves job id from c.From to c.To if, and only if, it is still in
// c.From (and at c.Attempt): of two racing transitions exactly one wins. The loser
// gets a *ConflictError (errors.Is ErrConflict) naming the state it found; a move
// the lifecycle does not allow is a *job.InvalidTransitionError and touches nothing.
// → queued (a retry) counts the attempt up by one; a purged record (purged_at)
// never leaves its finished state.
func (s *Store) Transition(ctx context.Context, id string, c Change) (*job.Job, error) {
	if err := job.CheckTransition(c.From, c.To); err != nil {
		return nil, err
	}
	filter := bson.D{{Key: "_id", Value: id}, {Key: "state", Value: c.From}}
	if c.Attempt > 0 {
		filter = append(filter, bson.E{Key: "attempt", Value: c.Attempt})
	}
	if c.From.Terminal() {
		// Out of a finished state (a retry): never a purged record, whose
		// input is gone.
		filter = append(filter, bson.E{Key: "purged_at", Value: bson.D{{Key: "$exists", Value: false}}})
	}
	var rec record
	err := s.jobs.FindOneAndUpdate(ctx, filter, s.update(c), options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&rec)
	if err == nil {
		return &rec.Job, nil
	}
	if !errors.Is(err, mongo.ErrNoDocuments) {
		return nil, fmt.Errorf("job %s %s → %s: %w", id, c.From, c.To, mongoconn.WrapUnavailable(err))
	}
	cur, err := s.GetByID(ctx, id)
	if err != nil {
		return nil, err
	}
	return cur, &ConflictError{ID: id, Expected: c.From, Actual: cur.State, ExpectedAttempt: c.Attempt, ActualAttempt: cur.Attempt}
}

// Claim moves job id from queued to running for worker in one update that
// also returns the record: a worker's read and compare-and-set in one round
// trip. It is for a job whose queue entry carries its dispatch hint (see
// job.DispatchHint): one that needs nothing else in that update (not a gang,
// no webhook for the running event; both are fixed when the job is created).
// The filter holds that itself: it matches only a queued record created with
// that very hint (a gang's or a running-webhook job's is empty, and so is an
// empty hint never claimed). A job that does not match is left as it was,
// with a *ConflictError whose Actual state is unknown (""): the caller reads
// the record and goes on from there. The filter is {_id} plus top-level
// equalities, which aigw-devmongo answers through the _id index.
func (s *Store) Claim(ctx context.Context, id, hint, worker string) (*job.Job, error) {
	if hint == "" {
		return nil, &ConflictError{ID: id, Expected: job.Queued}
	}
	filter := bson.D{{Key: "_id", Value: id}, {Key: "state", Value: job.Queued}, {Key: "dispatch", Value: hint}}
	var rec record
	err := s.jobs.FindOneAndUpdate(ctx, filter, s.update(Change{From: job.Queued, To: job.Running, Worker: worker}),
		options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&rec)
	switch {
	case err == nil:
		return &rec.Job, nil
	case errors.Is(err, mongo.ErrNoDocuments):
		return nil, &ConflictError{ID: id, Expected: job.Queued}
	default:
		return nil, fmt.Errorf("claim job %s: %w", id, mongoconn.WrapUnavailable(err))
	}
}

// update is the update document of change c.
func (s *Store) update(c Change) bson.D {
	now := s.now().UTC().Truncate(time.Millisecond)
	set := bson.D{{Key: "state", Value: c.To}, {Key: "updated_at", Value: now}}
	var unset bson.D
	var inc bson.D
	switch c.To {
	case job.Running:
		set = append(set, bson.E{Key: "started_at", Value: now})
		if c.Worker != "" {
			set = append(set, bson.E{Key: "worker", Value: c.Worker})
		}
		unset = bson.D{{Key: "finished_at", Value: ""}, {Key: "not_before", Value: ""}}
	case job.Succeeded:
		set = append(set, bson.E{Key: "finished_at", Value: now})
		set = appendRunResult(set, c)
		if c.Output != nil {
			set = append(set, bson.E{Key: "output", Value: c.Output})
		}
		unset = bson.D{{Key: "error", Value: ""}}
	case job.Failed, job.Canceled, job.Expired:
		set = append(set, bson.E{Key: "finished_at", Value: now})
		set = appendRunResult(set, c)
		if c.Error != nil {
			set = append(set, bson.E{Key: "error", Value: c.Error})
		}
	case job.Queued:
		set = append(set, bson.E{Key: "queued_at", Value: now})
		inc = bson.D{{Key: "attempt", Value: 1}}
		unset = bson.D{{Key: "started_at", Value: ""}, {Key: "finished_at", Value: ""}, {Key: "worker", Value: ""}, {Key: "output", Value: ""},
			{Key: "cold_start_ms", Value: ""}}
		if c.Error != nil {
			set = append(set, bson.E{Key: "error", Value: c.Error})
		}
		if !c.ExpiresAt.IsZero() {
			set = append(set, bson.E{Key: "expires_at", Value: c.ExpiresAt.UTC().Truncate(time.Millisecond)})
		}
		if !c.NotBefore.IsZero() {
			set = append(set, bson.E{Key: "not_before", Value: c.NotBefore.UTC().Truncate(time.Millisecond)})
		} else {
			unset = append(unset, bson.E{Key: "not_before", Value: ""})
		}
	}
	if c.From == job.Running && !c.Usage.Zero() {
		inc = append(inc, bson.E{Key: "usage.gpu_seconds", Value: c.Usage.GPUSeconds},
			bson.E{Key: "usage.cpu_seconds", Value: c.Usage.CPUSeconds})
	}
	update := bson.D{{Key: "$set", Value: set}}
	if len(unset) > 0 {
		update = append(update, bson.E{Key: "$unset", Value: unset})
	}
	if len(inc) > 0 {
		update = append(update, bson.E{Key: "$inc", Value: inc})
	}
	if c.Notify {
		attempt := c.Attempt
		if c.To == job.Queued && attempt > 0 {
			attempt++
		}
		update = append(update, bson.E{Key: "$push", Value: bson.D{{Key: "outbox",
			Value: job.Notification{State: c.To, Attempt: attempt, At: now}}}})
	}
	return update
}

func appendRunResult(set bson.D, c Change) bson.D {
	if len(c.Artifacts) > 0 {
		set = append(set, bson.E{Key: "artifacts", Value: c.Artifacts})
	}
	if c.Log != "" {
		set = append(set, bson.E{Key: "log", Value: c.Log})
	}
	if c.ColdStartMS > 0 {
		set = append(set, bson.E{Key: "cold_start_ms", Value: c.ColdStartMS})
	}
	return set
}

// PendingNotifications returns up to limit jobs whose webhook outbox is not
// empty, oldest first. Every notification has a date at, so "a date under
// outbox.at" is "a notification in the outbox", and the outbox_at index
// holds such a date only for those jobs: the query reads them, not every job
// (as outbox.0 $exists did).
func (s *Store) PendingNotifications(ctx context.Context, limit int) ([]job.Job, error) {
	if limit <= 0 || limit > 500 {
		limit = 500
	}
	cur, err := s.jobs.Find(ctx, bson.D{{Key: "outbox.at", Value: bson.D{{Key: "$type", Value: "date"}}}},
		options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("pending notifications: %w", mongoconn.WrapUnavailable(err))
	}
	var recs []record
	if err := cur.All(ctx, &recs); err != nil {
		return nil, fmt.Errorf("pending notifications: %w", mongoconn.WrapUnavailable(err))
	}
	out := make([]job.Job, len(recs))
	for i := range recs {
		out[i] = recs[i].Job
	}
	return out, nil
}

// AckNotification removes n (as read from the outbox) from job id's outbox,
// once the orchestrator has recorded its delivery durably.
func (s *Store) AckNotification(ctx context.Context, id string, n job.Notification) error {
	_, err := s.jobs.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}},
		bson.D{{Key: "$pull", Value: bson.D{{Key: "outbox", Value: job.Notification{
			State: n.State, Attempt: n.Attempt, At: n.At.UTC().Truncate(time.Millisecond)}}}}})
	if err != nil {
		return fmt.Errorf("ack notification of %s: %w", id, mongoconn.WrapUnavailable(err))
	}
	return nil
}
