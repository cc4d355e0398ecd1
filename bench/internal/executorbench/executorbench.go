// Package executorbench measures remote executors (aigw-worker --join,
// speaking the executor API over HTTP) beside worker agents (Redis and
// MongoDB) in the same run, on the same stores, with the same no-op exec
// program and the same slots:
//
//   - dispatch overhead: a job enqueued on an idle pool (every slot free,
//     the workers waiting for work) → its process started, one job at a
//     time. For an agent that covers the queue's wake-up, the one-update
//     claim of the record and the process start; for an executor, the
//     executors function's wake-up and claim, the long poll's answer
//     (HTTP, JSON with the algorithm's definition) and the process start.
//   - jobs/s: a burst of jobs enqueued at once, from the enqueue to the
//     last outcome recorded.
//
// The target: executors' dispatch p99 at most twice the agents'.
package executorbench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aigw/aigw/bench/internal/stats"
	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/worker/agent"
)

// Config is the workload.
type Config struct {
	MongoURI   string
	RedisAddrs []string
	// Noop is the no-op program's command line (workerbench.BuildNoop).
	Noop []string
	// Workers of each kind, Slots each.
	Workers, Slots int
	// Dispatches is how many jobs are timed one at a time on an idle pool;
	// Jobs how many make the burst.
	Dispatches, Jobs int
	// Timeout bounds each part.
	Timeout time.Duration
}

// Systems of a Result.
const (
	SystemAgent    = "agent"
	SystemExecutor = "executor"
)

// Result is one system's figures.
type Result struct {
	System string
	// Dispatch overhead on an idle pool: enqueued → process started.
	P50, P99   time.Duration
	Dispatches int
	// Burst: jobs/s from the enqueue to the last outcome.
	Jobs       int
	JobsPerSec float64
}

// system is one kind of worker on a pool of its own.
type system struct {
	name, pool string
	mu         sync.Mutex
	enqueued   map[string]time.Time
	started    map[string]time.Time
	finished   chan string
	failed     atomic.Int64
}

func (y *system) onStart(id string, _, at time.Time) {
	y.mu.Lock()
	if _, ok := y.started[id]; !ok {
		y.started[id] = at
	}
	y.mu.Unlock()
}

func (y *system) onFinish(id, outcome string) {
	if outcome != "succeeded" {
		y.failed.Add(1)
		slog.Warn("job did not succeed", "system", y.name, "job_id", id, "outcome", outcome)
	}
	y.finished <- id
}

// Run measures both systems in one stack and returns their results
// (agent, executor): the dispatches taking turns, then the bursts.
func Run(ctx context.Context, cfg Config) ([]Result, error) {
	if len(cfg.Noop) == 0 {
		return nil, errors.New("executorbench: no no-op program")
	}
	cfg.Workers, cfg.Slots = max(cfg.Workers, 1), max(cfg.Slots, 1)
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Minute
	}
	run := fmt.Sprintf("executorbench%d", time.Now().UnixNano())
	s, err := Open(ctx, run, StackConfig{MongoURI: cfg.MongoURI, RedisAddrs: cfg.RedisAddrs, Lease: 30 * time.Second})
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "aigw-executorbench-")
	if err != nil {
		s.Close()
		return nil, err
	}
	ag := &system{name: SystemAgent, pool: run + "-a"}
	ex := &system{name: SystemExecutor, pool: run + "-e"}
	defer func() {
		s.Close()
		s.Purge(ag.pool, ex.pool)
		_ = os.RemoveAll(tmp)
	}()
	binDir := filepath.Dir(cfg.Noop[0])
	cmd := append([]string{filepath.Base(cfg.Noop[0])}, cfg.Noop[1:]...)
	retries := 0
	for _, y := range []*system{ag, ex} {
		y.enqueued, y.started = map[string]time.Time{}, map[string]time.Time{}
		y.finished = make(chan string, cfg.Jobs+cfg.Dispatches+16)
		if _, _, err := s.Algos.Put(ctx, algorithm.Definition{Name: "noop-" + y.name, Version: "1.0.0", Pool: y.pool,
			Runtime: algorithm.Runtime{Type: algorithm.Exec, Command: cmd}, MaxRetries: &retries, TimeoutMS: 60000}); err != nil {
			return nil, err
		}
	}
	for w := range cfg.Workers {
		node := fmt.Sprintf("%s-a%d", run, w+1)
		if _, err := s.Agent(WorkerConfig(ag.pool, node, cfg.Slots, binDir, tmp), agent.Deps{OnStart: ag.onStart, OnFinish: ag.onFinish}); err != nil {
			return nil, err
		}
		if _, err := s.Joined(ctx, ex.pool, fmt.Sprintf("e%d", w+1), WorkerConfig("", "", cfg.Slots, binDir, tmp),
			agent.JoinDeps{OnStart: ex.onStart, OnFinish: ex.onFinish}); err != nil {
			return nil, err
		}
	}
	// The records first, outside the timed parts.
	create := func(y *system, n int) ([]queue.Message, error) {
		msgs := make([]queue.Message, 0, n)
		for range n {
			j, _, err := s.Jobs.Create(ctx, job.Job{Tenant: "bench", Algorithm: "noop-" + y.name, Version: "1.0.0", Pool: y.pool,
				Input: json.RawMessage(`{}`)})
			if err != nil {
				return nil, err
			}
			msgs = append(msgs, queue.MessageOf(j))
		}
		return msgs, nil
	}
	systems := []*system{ag, ex}
	out := make([]Result, len(systems))
	// Warm up: one job a slot, so every worker has polled and started a
	// process once.
	for _, y := range systems {
		warm, err := create(y, cfg.Workers*cfg.Slots)
		if err != nil {
			return nil, err
		}
		if err := burst(ctx, s.Queue, y, warm, cfg.Timeout); err != nil {
			return nil, fmt.Errorf("%s warm-up: %w", y.name, err)
		}
	}
	// Dispatch, one job at a time on an idle pool, the systems taking turns
	// (a busy machine's load falls on both alike).
	one := make([][]queue.Message, len(systems))
	for k, y := range systems {
		var err error
		if one[k], err = create(y, cfg.Dispatches); err != nil {
			return nil, err
		}
	}
	d := make([][]time.Duration, len(systems))
	for i := range cfg.Dispatches {
		for k, y := range systems {
			m := one[k][i]
			time.Sleep(20 * time.Millisecond) // the workers back in their wait
			at := time.Now()
			if _, err := s.Queue.EnqueueBatch(ctx, []queue.Message{m}); err != nil {
				return nil, err
			}
			if err := await(ctx, y, 1, cfg.Timeout); err != nil {
				return nil, fmt.Errorf("%s dispatch: %w", y.name, err)
			}
			y.mu.Lock()
			started, ok := y.started[m.JobID]
			y.mu.Unlock()
			if !ok {
				return nil, fmt.Errorf("%s: job %s ended without a start", y.name, m.JobID)
			}
			d[k] = append(d[k], started.Sub(at))
		}
	}
	// The bursts, one system after the other.
	for k, y := range systems {
		res := Result{System: y.name, Dispatches: cfg.Dispatches, Jobs: cfg.Jobs,
			P50: stats.Quantile(d[k], 0.50), P99: stats.Quantile(d[k], 0.99)}
		msgs, err := create(y, cfg.Jobs)
		if err != nil {
			return nil, err
		}
		start := time.Now()
		if err := burst(ctx, s.Queue, y, msgs, cfg.Timeout); err != nil {
			return nil, fmt.Errorf("%s burst: %w", y.name, err)
		}
		res.JobsPerSec = float64(cfg.Jobs) / time.Since(start).Seconds()
		if n := y.failed.Load(); n > 0 {
			return nil, fmt.Errorf("%s: %d jobs did not succeed", y.name, n)
		}
		slog.Info("measured", "system", y.name, "dispatch_p50", res.P50, "dispatch_p99", res.P99, "jobs_per_s", res.JobsPerSec)
		out[k] = res
	}
	return out, nil
}

// burst enqueues msgs at once and waits for their outcomes.
func burst(ctx context.Context, q *queue.Queue, y *system, msgs []queue.Message, timeout time.Duration) error {
	for batch := range slices.Chunk(msgs, 1000) {
		if _, err := q.EnqueueBatch(ctx, batch); err != nil {
			return err
		}
	}
	return await(ctx, y, len(msgs), timeout)
}

// await waits for n outcomes of y.
func await(ctx context.Context, y *system, n int, timeout time.Duration) error {
	deadline := time.After(timeout)
	for i := range n {
		select {
		case <-y.finished:
		case <-deadline:
			return fmt.Errorf("%d of %d jobs done after %s", i, n, timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
