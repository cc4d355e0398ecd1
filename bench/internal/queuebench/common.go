// Package queuebench runs the same queue workloads through aigw's queue and
// through asynq, on the same Redis Cluster in the same run.
package queuebench

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aigw/aigw/bench/internal/stats"
	"github.com/aigw/aigw/internal/redisconn"
)

// Config is the workload.
type Config struct {
	Jobs             int           // end-to-end jobs (50,000)
	Producers        int           // 16
	Consumers        int           // 16
	PacedRate        int           // jobs/s for the latency run (1,000)
	PacedFor         time.Duration // how long the latency run enqueues (5s)
	MemoryJobs       int           // jobs left queued to measure memory per job (20,000)
	RedisAddrs       []string
	RunPrefix        string        // names queues and pools of this run
	Linger           time.Duration // aigw consumers' queue.Config.Linger
	EnqueuePipelines int           // aigw's queue.Config.EnqueuePipelines
}

// Result is one system's figures.
type Result struct {
	System               string
	E2EJobsPerSec        float64
	PacedP50, PacedP99   time.Duration
	PacedSamples         int
	CmdsPerJob           float64
	BytesPerJob          float64
	RoundTripsPerEnqueue float64 // 0 when not measured
	// IdlePickupP50 is the median time from an enqueue call to a consumer that
	// takes as a worker does, alone on an idle pool, having the job (0 when
	// not measured).
	IdlePickupP50 time.Duration
}

// latencies is a concurrent sample collector.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.d)
}

// quantile returns the q-quantile (nearest rank).
func (l *latencies) quantile(q float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return stats.Quantile(l.d, q)
}

// pace calls fn rate times a second, spread over producers goroutines, for d.
func pace(ctx context.Context, rate, producers int, d time.Duration, fn func(context.Context)) {
	interval := time.Duration(float64(time.Second) * float64(producers) / float64(rate))
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// stagger the producers over one interval
			time.Sleep(interval * time.Duration(p) / time.Duration(producers))
			t := time.NewTicker(interval)
			defer t.Stop()
			end := time.Now().Add(d)
			for time.Now().Before(end) {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					fn(ctx)
				}
			}
		}()
	}
	wg.Wait()
}

// produce makes n calls of enqueue spread over producers goroutines (the first
// goroutine takes the remainder) and returns the first error.
func produce(n, producers int, enqueue func() error) error {
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	per := n / producers
	for p := 0; p < producers; p++ {
		calls := per
		if p == 0 {
			calls += n - per*producers
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < calls; i++ {
				if err := enqueue(); err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// stamp and since carry the enqueue time in a payload.
func stamp() string { return strconv.FormatInt(time.Now().UnixNano(), 10) }

func since(payload []byte) (time.Duration, bool) {
	n, err := strconv.ParseInt(string(payload), 10, 64)
	if err != nil {
		return 0, false
	}
	return time.Since(time.Unix(0, n)), true
}

// server is the Redis Cluster both systems run on; it counts commands and memory
// over the masters.
type server struct {
	rdb redis.UniversalClient
}

func openServer(ctx context.Context, addrs []string) (*server, error) {
	rdb, err := redisconn.Open(ctx, redisconn.Options{Addrs: addrs})
	if err != nil {
		return nil, err
	}
	return &server{rdb: rdb}, nil
}

func (s *server) resetStats(ctx context.Context) error {
	return redisconn.ForEachMaster(ctx, s.rdb, func(ctx context.Context, c *redis.Client) error {
		return c.ConfigResetStat(ctx).Err()
	})
}

// commands sums the calls of every command (including those run inside scripts)
// over the masters since the last resetStats. With AIGW_BENCH_CMDSTATS set it
// prints the calls per command to stderr.
func (s *server) commands(ctx context.Context) (int64, error) {
	var total atomic.Int64
	var mu sync.Mutex
	per := map[string]int64{}
	defer func() {
		if os.Getenv("AIGW_BENCH_CMDSTATS") == "" {
			return
		}
		names := slices.Sorted(maps.Keys(per))
		for _, n := range names {
			fmt.Fprintf(os.Stderr, "cmdstat %-20s %d\n", n, per[n])
		}
	}()
	err := redisconn.ForEachMaster(ctx, s.rdb, func(ctx context.Context, c *redis.Client) error {
		info, err := c.Info(ctx, "commandstats").Result()
		if err != nil {
			return err
		}
		for _, line := range strings.Split(info, "\r\n") {
			if !strings.HasPrefix(line, "cmdstat_") {
				continue
			}
			_, rest, _ := strings.Cut(line, "calls=")
			v, _, _ := strings.Cut(rest, ",")
			n, _ := strconv.ParseInt(v, 10, 64)
			total.Add(n)
			name, _, _ := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":")
			mu.Lock()
			per[name] += n
			mu.Unlock()
		}
		return nil
	})
	return total.Load(), err
}

// usedMemory sums used_memory over the masters.
func (s *server) usedMemory(ctx context.Context) (int64, error) {
	var total atomic.Int64
	err := redisconn.ForEachMaster(ctx, s.rdb, func(ctx context.Context, c *redis.Client) error {
		info, err := c.Info(ctx, "memory").Result()
		if err != nil {
			return err
		}
		for _, line := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				total.Add(n)
			}
		}
		return nil
	})
	return total.Load(), err
}

// roundTrips counts the round trips a client makes: one per command sent alone,
// one per pipeline.
type roundTrips struct{ n atomic.Int64 }

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		r.n.Add(1)
		return next(ctx, cmd)
	}
}
func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		r.n.Add(1)
		return next(ctx, cmds)
	}
}
