package jobstore

import (
	"context"
	"fmt"
	"sort"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/mongoconn"
)

// Usage groupings.
const (
	ByAlgorithm = "algorithm"
	ByDay       = "day"
)

// MaxUsageRange is the longest from–to range one usage query reads.
const MaxUsageRange = 366 * 24 * time.Hour

// UsageQuery selects the jobs that finished in [From, To): one tenant's, or
// every tenant's when Tenant is "", grouped by GroupBy (ByAlgorithm or ByDay,
// a UTC day of finished_at).
type UsageQuery struct {
	Tenant   string
	From, To time.Time
	GroupBy  string
}

// UsageRow is the metered usage of one group.
type UsageRow struct {
	Tenant    string `json:"tenant"`
	Algorithm string `json:"algorithm,omitempty"`
	// Day is a UTC date, 2006-01-02.
	Day        string  `json:"day,omitempty"`
	Jobs       int64   `json:"jobs"`
	GPUSeconds float64 `json:"gpu_seconds"`
	CPUSeconds float64 `json:"cpu_seconds"`
}

// Usage sums the usage of the jobs that finished in q's range (a job is
// counted once, when it ends, with every attempt it took), sorted by tenant
// then group. It reads those jobs through the tenant_finished_at (or
// finished_at) index and adds them up here, not with $group, so it answers
// alike on MongoDB and aigw-devmongo; the range is at most MaxUsageRange.
func (s *Store) Usage(ctx context.Context, q UsageQuery) ([]UsageRow, error) {
	if q.GroupBy != ByAlgorithm && q.GroupBy != ByDay {
		return nil, fmt.Errorf("%w: group by %q, want algorithm or day", ErrInvalid, q.GroupBy)
	}
	if !q.From.Before(q.To) || q.To.Sub(q.From) > MaxUsageRange {
		return nil, fmt.Errorf("%w: usage range %s – %s: want from before to, at most %s apart", ErrInvalid, q.From, q.To, MaxUsageRange)
	}
	filter := bson.D{}
	if q.Tenant != "" {
		filter = append(filter, bson.E{Key: "tenant", Value: q.Tenant})
	}
	filter = append(filter, bson.E{Key: "finished_at", Value: bson.D{
		{Key: "$gte", Value: q.From.UTC()}, {Key: "$lt", Value: q.To.UTC()}}})
	cur, err := s.jobs.Find(ctx, filter, options.Find().SetBatchSize(1000).SetProjection(bson.D{
		{Key: "tenant", Value: 1}, {Key: "algorithm", Value: 1}, {Key: "finished_at", Value: 1}, {Key: "usage", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("read usage: %w", mongoconn.WrapUnavailable(err))
	}
	defer cur.Close(ctx)
	type key struct{ tenant, group string }
	sums := map[key]*UsageRow{}
	for cur.Next(ctx) {
		var r struct {
			Tenant     string     `bson:"tenant"`
			Algorithm  string     `bson:"algorithm"`
			FinishedAt time.Time  `bson:"finished_at"`
			Usage      *job.Usage `bson:"usage"`
		}
		if err := cur.Decode(&r); err != nil {
			return nil, fmt.Errorf("read usage: %w", err)
		}
		k := key{r.Tenant, r.Algorithm}
		if q.GroupBy == ByDay {
			k.group = r.FinishedAt.UTC().Format(time.DateOnly)
		}
		row := sums[k]
		if row == nil {
			row = &UsageRow{Tenant: r.Tenant}
			if q.GroupBy == ByDay {
				row.Day = k.group
			} else {
				row.Algorithm = k.group
			}
			sums[k] = row
		}
		row.Jobs++
		if r.Usage != nil {
			row.GPUSeconds += r.Usage.GPUSeconds
			row.CPUSeconds += r.Usage.CPUSeconds
		}
	}
	if err := cur.Err(); err != nil {
		return nil, fmt.Errorf("read usage: %w", mongoconn.WrapUnavailable(err))
	}
	out := make([]UsageRow, 0, len(sums))
	for _, r := range sums {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Tenant != out[j].Tenant {
			return out[i].Tenant < out[j].Tenant
		}
		return out[i].Algorithm+out[i].Day < out[j].Algorithm+out[j].Day
	})
	return out, nil
}

// UsagePoint is the GPU-seconds of one job that finished at At.
type UsagePoint struct {
	At         time.Time
	GPUSeconds float64
}

// GPUUsageSince returns the GPU-seconds of tenant's jobs in pool that
// finished at or after since, oldest first (jobs with none are left out), at
// most limit of them (through the tenant_finished_at index).
func (s *Store) GPUUsageSince(ctx context.Context, tenant, pool string, since time.Time, limit int) ([]UsagePoint, error) {
	cur, err := s.jobs.Find(ctx, bson.D{
		{Key: "tenant", Value: tenant},
		{Key: "finished_at", Value: bson.D{{Key: "$gte", Value: since.UTC()}}},
		{Key: "pool", Value: pool},
		{Key: "usage.gpu_seconds", Value: bson.D{{Key: "$gt", Value: 0}}},
	}, options.Find().SetSort(bson.D{{Key: "finished_at", Value: 1}}).SetLimit(int64(limit)).
		SetProjection(bson.D{{Key: "finished_at", Value: 1}, {Key: "usage", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("read GPU usage: %w", mongoconn.WrapUnavailable(err))
	}
	var recs []struct {
		FinishedAt time.Time `bson:"finished_at"`
		Usage      job.Usage `bson:"usage"`
	}
	if err := cur.All(ctx, &recs); err != nil {
		return nil, fmt.Errorf("read GPU usage: %w", mongoconn.WrapUnavailable(err))
	}
	out := make([]UsagePoint, len(recs))
	for i, r := range recs {
		out[i] = UsagePoint{At: r.FinishedAt, GPUSeconds: r.Usage.GPUSeconds}
	}
	return out, nil
}
