package jobstore

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/mongoconn"
)

// PoolCount is how many of a tenant's jobs wait (queued) and run in one pool.
type PoolCount struct {
	Pool    string
	Queued  int64
	Running int64
}

// ActiveCounts returns the tenant's queued and running jobs per pool (pools
// with none are left out). It reads only those jobs, through the
// tenant_state_id index, never the tenant's history.
func (s *Store) ActiveCounts(ctx context.Context, tenant string) (map[string]PoolCount, error) {
	return s.activeCounts(ctx, bson.D{{Key: "tenant", Value: tenant}})
}

// activeCounts counts the queued and running jobs that match filter, per pool.
func (s *Store) activeCounts(ctx context.Context, filter bson.D) (map[string]PoolCount, error) {
	match := append(filter, bson.E{Key: "state", Value: bson.D{{Key: "$in", Value: bson.A{string(job.Queued), string(job.Running)}}}})
	pipeline := bson.A{
		bson.D{{Key: "$match", Value: match}},
		bson.D{{Key: "$group", Value: bson.D{
			{Key: "_id", Value: bson.D{{Key: "pool", Value: "$pool"}, {Key: "state", Value: "$state"}}},
			{Key: "n", Value: bson.D{{Key: "$sum", Value: 1}}},
		}}},
	}
	cur, err := s.jobs.Aggregate(ctx, pipeline)
	if err != nil {
		return nil, fmt.Errorf("count active jobs: %w", mongoconn.WrapUnavailable(err))
	}
	var rows []struct {
		ID struct {
			Pool  string    `bson:"pool"`
			State job.State `bson:"state"`
		} `bson:"_id"`
		N int64 `bson:"n"`
	}
	if err := cur.All(ctx, &rows); err != nil {
		return nil, fmt.Errorf("count active jobs: %w", mongoconn.WrapUnavailable(err))
	}
	out := make(map[string]PoolCount)
	for _, r := range rows {
		c := out[r.ID.Pool]
		c.Pool = r.ID.Pool
		if r.ID.State == job.Queued {
			c.Queued += r.N
		} else {
			c.Running += r.N
		}
		out[r.ID.Pool] = c
	}
	return out, nil
}

// ActiveByPool returns every tenant's queued and running jobs per pool (pools
// with none are left out), for the operators' metrics. It reads only those
// jobs, through the state_id index, never the history.
func (s *Store) ActiveByPool(ctx context.Context) (map[string]PoolCount, error) {
	return s.activeCounts(ctx, bson.D{})
}
