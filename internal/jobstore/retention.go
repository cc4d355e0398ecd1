package jobstore

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/mongoconn"
)

// terminalStates are the states a job's retention counts from.
func terminalStates() bson.A { return statesWhere(true) }

// statesWhere are the states whose Terminal is terminal.
func statesWhere(terminal bool) bson.A {
	var a bson.A
	for _, s := range job.States() {
		if s.Terminal() == terminal {
			a = append(a, s)
		}
	}
	return a
}

// PurgeFilter picks the finished jobs whose retention has run out: finished
// before Before, of Tenant (when set) or of any tenant but those in Except.
type PurgeFilter struct {
	Tenant string
	Except []string
	Before time.Time
}

// ListPurgeable returns up to limit finished, not yet purged jobs that f
// picks, oldest id first.
func (s *Store) ListPurgeable(ctx context.Context, f PurgeFilter, limit int) ([]job.Job, error) {
	filter := bson.D{
		{Key: "state", Value: bson.D{{Key: "$in", Value: terminalStates()}}},
		{Key: "finished_at", Value: bson.D{{Key: "$lt", Value: f.Before}}},
		{Key: "purged_at", Value: bson.D{{Key: "$exists", Value: false}}},
	}
	switch {
	case f.Tenant != "":
		filter = append(filter, bson.E{Key: "tenant", Value: f.Tenant})
	case len(f.Except) > 0:
		filter = append(filter, bson.E{Key: "tenant", Value: bson.D{{Key: "$nin", Value: f.Except}}})
	}
	cur, err := s.jobs.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("list purgeable jobs: %w", mongoconn.WrapUnavailable(err))
	}
	var recs []record
	if err := cur.All(ctx, &recs); err != nil {
		return nil, fmt.Errorf("list purgeable jobs: %w", mongoconn.WrapUnavailable(err))
	}
	out := make([]job.Job, len(recs))
	for i := range recs {
		out[i] = recs[i].Job
	}
	return out, nil
}

// Purge deletes a finished job's input, output, log and artifacts from its
// record and sets purged_at; the state, timestamps and error code stay. A
// job that is not finished, or already purged, is left as it is (false).
func (s *Store) Purge(ctx context.Context, id string, at time.Time) (bool, error) {
	res, err := s.jobs.UpdateOne(ctx, bson.D{
		{Key: "_id", Value: id},
		{Key: "state", Value: bson.D{{Key: "$in", Value: terminalStates()}}},
		{Key: "purged_at", Value: bson.D{{Key: "$exists", Value: false}}},
	}, bson.D{
		{Key: "$set", Value: bson.D{{Key: "purged_at", Value: at.UTC()}}},
		{Key: "$unset", Value: bson.D{{Key: "input", Value: ""}, {Key: "output", Value: ""}, {Key: "log", Value: ""}, {Key: "artifacts", Value: ""}}},
	})
	if err != nil {
		return false, fmt.Errorf("purge job %s: %w", id, mongoconn.WrapUnavailable(err))
	}
	return res.ModifiedCount == 1, nil
}

// EachUnfinished calls fn with each of tenant's jobs that has not finished
// (queued or running), until fn returns an error, which it returns.
func (s *Store) EachUnfinished(ctx context.Context, tenant string, fn func(*job.Job) error) error {
	cur, err := s.jobs.Find(ctx, bson.D{{Key: "tenant", Value: tenant}, {Key: "state", Value: bson.D{{Key: "$in", Value: statesWhere(false)}}}})
	if err != nil {
		return fmt.Errorf("list unfinished jobs: %w", mongoconn.WrapUnavailable(err))
	}
	defer func() { _ = cur.Close(context.WithoutCancel(ctx)) }()
	for cur.Next(ctx) {
		var rec record
		if err := cur.Decode(&rec); err != nil {
			return fmt.Errorf("list unfinished jobs: %w", err)
		}
		if err := fn(&rec.Job); err != nil {
			return err
		}
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("list unfinished jobs: %w", mongoconn.WrapUnavailable(err))
	}
	return nil
}
