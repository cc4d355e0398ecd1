package queuebench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aigw/aigw/internal/envconf"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/internal/redisconn"
)

// RunAigw measures aigw's queue: 16 producers enqueue one job per call, 16
// consumers take batches and acknowledge them.
func RunAigw(ctx context.Context, cfg Config) (Result, error) {
	res := Result{System: "aigw"}
	srv, err := openServer(ctx, cfg.RedisAddrs)
	if err != nil {
		return res, err
	}
	defer srv.rdb.Close()
	// Producers get a client of their own so their round trips can be counted.
	prodRdb, err := redisconn.Open(ctx, redisconn.Options{Addrs: cfg.RedisAddrs})
	if err != nil {
		return res, err
	}
	defer prodRdb.Close()
	trips := &roundTrips{}
	prodRdb.AddHook(trips)
	env := envconf.New(os.LookupEnv)
	qc := queue.ConfigFromEnv(env) // the shard count every process of a deployment shares
	if err := env.Err(); err != nil {
		return res, err
	}
	qc.BlockSlice, qc.Linger, qc.EnqueuePipelines = 200*time.Millisecond, cfg.Linger, cfg.EnqueuePipelines
	producerQ := queue.New(prodRdb, qc)
	consumerQ := queue.New(srv.rdb, qc)

	// 1. End to end.
	pool := cfg.RunPrefix + "-e2e"
	if err := consumerQ.EnsureGroups(ctx, pool); err != nil {
		return res, err
	}
	defer purge(consumerQ, pool)
	if err := srv.resetStats(ctx); err != nil {
		return res, err
	}
	var done atomic.Int64
	allDone := make(chan struct{})
	cctx, stopConsumers := context.WithCancel(ctx)
	var cwg sync.WaitGroup
	errs := make(chan error, cfg.Consumers+cfg.Producers)
	startConsumers := func(pool string, onJob func(queue.Delivery)) error {
		for i := 0; i < cfg.Consumers; i++ {
			c, err := consumerQ.Consumer(pool, "bench-"+strconv.Itoa(i), queue.ConsumerOptions{Home: i})
			if err != nil {
				return err
			}
			cwg.Add(1)
			go func() {
				defer cwg.Done()
				var done []queue.Delivery // acknowledged with the next take
				for cctx.Err() == nil {
					ds, err := c.AckTake(cctx, done, 64, 200*time.Millisecond)
					if err != nil {
						if cctx.Err() == nil {
							errs <- err
						}
						return
					}
					for _, d := range ds {
						onJob(d)
					}
					done = ds
				}
				_ = c.Ack(context.WithoutCancel(cctx), done...)
			}()
		}
		return nil
	}
	if err := startConsumers(pool, func(queue.Delivery) {
		if done.Add(1) == int64(cfg.Jobs) {
			close(allDone)
		}
	}); err != nil {
		stopConsumers()
		return res, err
	}
	start := time.Now()
	tripsBefore := trips.n.Load()
	if err := produce(cfg.Jobs, cfg.Producers, func() error {
		_, err := producerQ.Enqueue(ctx, queue.Message{JobID: job.NewID(), Pool: pool})
		return err
	}); err != nil {
		stopConsumers()
		cwg.Wait()
		return res, err
	}
	enqTrips := trips.n.Load() - tripsBefore
	select {
	case <-allDone:
	case err := <-errs:
		stopConsumers()
		cwg.Wait()
		return res, err
	case <-time.After(5 * time.Minute):
		stopConsumers()
		cwg.Wait()
		return res, fmt.Errorf("aigw e2e: %d of %d jobs done after 5 minutes", done.Load(), cfg.Jobs)
	}
	elapsed := time.Since(start)
	stopConsumers()
	cwg.Wait()
	cmds, err := srv.commands(ctx)
	if err != nil {
		return res, err
	}
	res.E2EJobsPerSec = float64(cfg.Jobs) / elapsed.Seconds()
	res.CmdsPerJob = float64(cmds) / float64(cfg.Jobs)
	res.RoundTripsPerEnqueue = float64(enqTrips) / float64(cfg.Jobs)

	// 2. Latency, paced.
	pool = cfg.RunPrefix + "-paced"
	if err := consumerQ.EnsureGroups(ctx, pool); err != nil {
		return res, err
	}
	defer purge(consumerQ, pool)
	lat := &latencies{}
	cctx, stopConsumers = context.WithCancel(ctx)
	if err := startConsumers(pool, func(d queue.Delivery) {
		if l, ok := since([]byte(d.Payload)); ok {
			lat.add(l)
		}
	}); err != nil {
		stopConsumers()
		return res, err
	}
	time.Sleep(300 * time.Millisecond) // consumers settle into their blocking reads
	var sent atomic.Int64
	pace(ctx, cfg.PacedRate, cfg.Producers, cfg.PacedFor, func(ctx context.Context) {
		if _, err := producerQ.Enqueue(ctx, queue.Message{JobID: job.NewID(), Pool: pool, Payload: stamp()}); err == nil {
			sent.Add(1)
		}
	})
	waitFor(func() bool { return int64(lat.count()) >= sent.Load() }, 30*time.Second)
	stopConsumers()
	cwg.Wait()
	res.PacedP50, res.PacedP99, res.PacedSamples = lat.quantile(0.50), lat.quantile(0.99), lat.count()

	// 3. Pick-up on an idle pool.
	if res.IdlePickupP50, err = idlePickup(ctx, consumerQ, producerQ, cfg.RunPrefix+"-idle"); err != nil {
		return res, err
	}

	// 4. Memory per queued job.
	pool = cfg.RunPrefix + "-mem"
	defer purge(consumerQ, pool)
	if err := consumerQ.EnsureGroups(ctx, pool); err != nil {
		return res, err
	}
	before, err := srv.usedMemory(ctx)
	if err != nil {
		return res, err
	}
	for i := 0; i < cfg.MemoryJobs; i += 500 {
		batch := make([]queue.Message, 0, 500)
		for j := i; j < min(i+500, cfg.MemoryJobs); j++ {
			batch = append(batch, queue.Message{JobID: job.NewID(), Pool: pool})
		}
		if _, err := producerQ.EnqueueBatch(ctx, batch); err != nil {
			return res, err
		}
	}
	after, err := srv.usedMemory(ctx)
	if err != nil {
		return res, err
	}
	res.BytesPerJob = float64(after-before) / float64(cfg.MemoryJobs)
	return res, nil
}

// idlePickup measures the pick-up of a job on an idle pool: one consumer
// takes as a worker does (up to 2 jobs, blocking 250 ms at a time, homed on
// the shard its name hashes to), and 30 jobs are enqueued one at a time, 50 ms
// after the last was taken, each on the shard its id hashes to. It returns
// the median time from the enqueue call to the take returning the job.
func idlePickup(ctx context.Context, consumerQ, producerQ *queue.Queue, pool string) (time.Duration, error) {
	const jobs, gap = 30, 50 * time.Millisecond
	if err := consumerQ.EnsureGroups(ctx, pool); err != nil {
		return 0, err
	}
	defer purge(consumerQ, pool)
	c, err := consumerQ.Consumer(pool, "bench-idle", queue.ConsumerOptions{Home: -1})
	if err != nil {
		return 0, err
	}
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	taken := make(chan time.Time, jobs)
	failed := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		for cctx.Err() == nil {
			ds, err := c.Take(cctx, 2, 250*time.Millisecond)
			if err != nil {
				if cctx.Err() == nil {
					failed <- err
				}
				return
			}
			if len(ds) > 0 {
				taken <- time.Now()
				_ = c.Ack(cctx, ds...)
			}
		}
	})
	defer wg.Wait()
	defer stop()
	time.Sleep(300 * time.Millisecond) // the consumer settles into its blocking reads
	lat := &latencies{}
	for range jobs {
		time.Sleep(gap)
		start := time.Now()
		if _, err := producerQ.Enqueue(ctx, queue.Message{JobID: job.NewID(), Pool: pool}); err != nil {
			return 0, err
		}
		select {
		case t := <-taken:
			lat.add(t.Sub(start))
		case err := <-failed:
			return 0, err
		case <-time.After(10 * time.Second):
			return 0, fmt.Errorf("aigw idle pick-up: a job not taken after 10s")
		}
	}
	return lat.quantile(0.5), nil
}

// purge deletes a benchmark pool's keys, with a context of its own: it runs on the
// way out, also after the run's context ended.
func purge(q *queue.Queue, pool string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = q.Purge(ctx, pool)
}

func waitFor(cond func() bool, limit time.Duration) {
	end := time.Now().Add(limit)
	for time.Now().Before(end) && !cond() {
		time.Sleep(20 * time.Millisecond)
	}
}
