package jobstore

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/mongoconn"
)

// The orchestrator's recovery scans (reaper, reconciler) look at the jobs of
// one pool at a time, a bounded page per pool and cycle, so that a pool with a
// backlog never hides another pool's jobs. Each query is served by an index
// that starts with pool and state (pool_state_id, pool_state_expires_at; see
// New); none reads finished jobs.

// Pools returns the pools that have jobs in state st, in no particular order.
func (s *Store) Pools(ctx context.Context, st job.State) ([]string, error) {
	// $group rather than distinct, which FerretDB refuses with a maxTimeMS.
	cur, err := s.jobs.Aggregate(ctx, mongo.Pipeline{
		{{Key: "$match", Value: bson.D{{Key: "state", Value: st}}}},
		{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$pool"}}}},
	})
	if err != nil {
		return nil, fmt.Errorf("pools with %s jobs: %w", st, mongoconn.WrapUnavailable(err))
	}
	var rows []struct {
		Pool string `bson:"_id"`
	}
	if err := cur.All(ctx, &rows); err != nil {
		return nil, fmt.Errorf("pools with %s jobs: %w", st, mongoconn.WrapUnavailable(err))
	}
	pools := make([]string, 0, len(rows))
	for _, r := range rows {
		if r.Pool != "" {
			pools = append(pools, r.Pool)
		}
	}
	return pools, nil
}

// PoolPage returns up to limit jobs of pool in state st whose id comes after
// after ("" for the first page), in id (creation) order. With before set, only
// jobs (re)queued before it. A page shorter than limit is the last one.
func (s *Store) PoolPage(ctx context.Context, pool string, st job.State, after string, before time.Time, limit int) ([]job.Job, error) {
	if pool == "" || limit <= 0 {
		return nil, fmt.Errorf("%w: a pool page needs a pool and a positive limit", ErrInvalid)
	}
	q := bson.D{{Key: "pool", Value: pool}, {Key: "state", Value: st}}
	if after != "" {
		q = append(q, bson.E{Key: "_id", Value: bson.D{{Key: "$gt", Value: after}}})
	}
	if !before.IsZero() {
		q = append(q, bson.E{Key: "queued_at", Value: bson.D{{Key: "$lt", Value: before}}})
	}
	return s.find(ctx, q, bson.D{{Key: "_id", Value: 1}}, limit, "page of "+pool)
}

// ExpiredInPool returns up to limit queued jobs of pool whose TTL passed
// before t, the earliest deadline first.
func (s *Store) ExpiredInPool(ctx context.Context, pool string, t time.Time, limit int) ([]job.Job, error) {
	if pool == "" || limit <= 0 {
		return nil, fmt.Errorf("%w: an expiry scan needs a pool and a positive limit", ErrInvalid)
	}
	q := bson.D{{Key: "pool", Value: pool}, {Key: "state", Value: job.Queued}, {Key: "expires_at", Value: bson.D{{Key: "$lt", Value: t}}}}
	return s.find(ctx, q, bson.D{{Key: "expires_at", Value: 1}}, limit, "expired jobs of "+pool)
}

func (s *Store) find(ctx context.Context, q, sort bson.D, limit int, what string) ([]job.Job, error) {
	cur, err := s.jobs.Find(ctx, q, options.Find().SetSort(sort).SetLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, mongoconn.WrapUnavailable(err))
	}
	var recs []record
	if err := cur.All(ctx, &recs); err != nil {
		return nil, fmt.Errorf("%s: %w", what, mongoconn.WrapUnavailable(err))
	}
	out := make([]job.Job, len(recs))
	for i := range recs {
		out[i] = recs[i].Job
	}
	return out, nil
}
