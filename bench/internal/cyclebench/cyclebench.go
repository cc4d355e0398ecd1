// Package cyclebench measures one orchestrator cycle (POST /tick: reaper,
// reconciler, pipelines, webhooks) with many stored jobs and nothing to do:
// its cost must not grow with every job ever stored.
package cyclebench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/aigw/aigw/functions/orchestrator"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/mongoconn"
	"github.com/aigw/aigw/internal/rediskeys"
)

// Config says what to measure.
type Config struct {
	MongoURI string
	Redis    redis.UniversalClient
	// Sizes are the numbers of stored (finished) jobs to measure at, ascending.
	Sizes []int
	// Ticks per size (the figure is their median).
	Ticks    int
	Progress io.Writer
}

// Result is one size's figures.
type Result struct {
	Jobs     int
	Median   time.Duration
	Max      time.Duration
	InsertIn time.Duration
}

// batch is the insertMany size.
const batch = 1000

// Run stores finished jobs in a fresh database, up to each size in turn, and
// times Ticks orchestrator cycles at each.
func Run(ctx context.Context, cfg Config) ([]Result, error) {
	client, err := mongoconn.Open(ctx, mongoconn.Options{URI: cfg.MongoURI})
	if err != nil {
		return nil, err
	}
	defer func() { _ = client.Disconnect(context.Background()) }()
	run := time.Now().UnixNano()
	db := client.Database(fmt.Sprintf("aigw_cyclebench_%d", run))
	defer func() { _ = db.Drop(context.Background()) }()
	lockKey := rediskeys.TickLease(fmt.Sprintf("cyclebench-%d", run))
	defer func() { _ = cfg.Redis.Del(context.Background(), lockKey).Err() }()
	svc, err := orchestrator.New(ctx, orchestrator.Deps{DB: db, Redis: cfg.Redis, AdminToken: "cyclebench",
		LockKey: lockKey, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	coll := db.Collection("jobs")
	var out []Result
	stored := 0
	for _, n := range cfg.Sizes {
		start := time.Now()
		for stored < n {
			k := min(batch, n-stored)
			if err := insert(ctx, coll, stored, k); err != nil {
				return out, err
			}
			stored += k
		}
		res := Result{Jobs: n, InsertIn: time.Since(start)}
		var took []time.Duration
		for range max(cfg.Ticks, 1) {
			t0 := time.Now()
			s, err := svc.Tick(ctx)
			d := time.Since(t0)
			if err != nil {
				return out, err
			}
			if s.Skipped || s.Errors != nil {
				return out, fmt.Errorf("tick at %d jobs: %+v", n, s)
			}
			took = append(took, d)
		}
		slices.Sort(took)
		res.Median, res.Max = took[len(took)/2], took[len(took)-1]
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "  %d jobs stored (in %s): tick median %s, max %s\n",
				n, res.InsertIn.Round(time.Millisecond), res.Median.Round(100*time.Microsecond), res.Max.Round(100*time.Microsecond))
		}
		out = append(out, res)
	}
	return out, nil
}

// insert stores k succeeded jobs, numbered from first, in one insertMany,
// shaped as jobstore stores them (the job inline, dedup "id:<id>").
func insert(ctx context.Context, coll *mongo.Collection, first, k int) error {
	now := time.Now().UTC().Truncate(time.Millisecond)
	docs := make([]any, k)
	for i := range k {
		at := now.Add(-time.Duration(first+i) * time.Millisecond)
		j := job.Job{ID: job.NewIDAt(at), Tenant: "bench", Algorithm: "echo", Version: "1.0.0", Pool: fmt.Sprintf("pool-%d", (first+i)%4),
			State: job.Succeeded, Attempt: 1, Priority: job.Normal, Input: json.RawMessage(`{"message":"bench"}`),
			Output: json.RawMessage(`{"message":"bench"}`), CreatedAt: at, UpdatedAt: at, QueuedAt: &at, StartedAt: &at, FinishedAt: &at}
		docs[i] = struct {
			job.Job `bson:",inline"`
			Dedup   string `bson:"dedup"`
		}{j, "id:" + j.ID}
	}
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		return fmt.Errorf("insert %d jobs: %w", k, err)
	}
	return nil
}
