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
func terminalStates() bson.A {
	var a bson.A
	for _, s := range job.States() {
		if s.Terminal() {
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

// EachMayRun calls fn with each of tenant's jobs that may still run: queued
// or running, or failed or expired (a retry queues those again) and not
// purged; until fn returns an error, which it returns. Each has its id,
// tenant, state and input only.
func (s *Store) EachMayRun(ctx context.Context, tenant string, fn func(*job.Job) error) error {
	var states bson.A
	for _, st := range job.States() {
		if !st.Terminal() || job.CheckTransition(st, job.Queued) == nil {
			states = append(states, st)
		}
	}
	// Only what a caller may need of each: not the outputs and log tails.
	cur, err := s.jobs.Find(ctx, bson.D{{Key: "tenant", Value: tenant}, {Key: "state", Value: bson.D{{Key: "$in", Value: states}}},
		{Key: "purged_at", Value: bson.D{{Key: "$exists", Value: false}}}},
		options.Find().SetProjection(bson.D{{Key: "tenant", Value: 1}, {Key: "state", Value: 1}, {Key: "input", Value: 1}}))
	if err != nil {
		return fmt.Errorf("list jobs that may run: %w", mongoconn.WrapUnavailable(err))
	}
	defer func() { _ = cur.Close(context.WithoutCancel(ctx)) }()
	for cur.Next(ctx) {
		var rec record
		if err := cur.Decode(&rec); err != nil {
			return fmt.Errorf("list jobs that may run: %w", err)
		}
		if err := fn(&rec.Job); err != nil {
			return err
		}
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("list jobs that may run: %w", mongoconn.WrapUnavailable(err))
	}
	return nil
}
