package queuebench

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
)

// RunAsynq measures asynq on the same cluster with the same workload: 16
// producers call Client.Enqueue, a server with concurrency 16 processes.
// checkInterval 0 keeps asynq's default TaskCheckInterval (1s).
func RunAsynq(ctx context.Context, cfg Config, system string, checkInterval time.Duration) (Result, error) {
	res := Result{System: system}
	srv, err := openServer(ctx, cfg.RedisAddrs)
	if err != nil {
		return res, err
	}
	defer srv.rdb.Close()
	opt := asynq.RedisClusterClientOpt{Addrs: cfg.RedisAddrs}
	client := asynq.NewClient(opt)
	defer client.Close()
	inspector := asynq.NewInspector(opt)
	defer inspector.Close()
	newServer := func(queue string, h asynq.HandlerFunc) (*asynq.Server, error) {
		s := asynq.NewServer(opt, asynq.Config{
			Concurrency:       cfg.Consumers,
			Queues:            map[string]int{queue: 1},
			TaskCheckInterval: checkInterval,
			LogLevel:          asynq.ErrorLevel,
		})
		return s, s.Start(h)
	}

	// 1. End to end.
	queue := cfg.RunPrefix + "-" + system + "-e2e"
	defer func() { _ = inspector.DeleteQueue(queue, true) }()
	if err := srv.resetStats(ctx); err != nil {
		return res, err
	}
	var done atomic.Int64
	allDone := make(chan struct{})
	s, err := newServer(queue, func(context.Context, *asynq.Task) error {
		if done.Add(1) == int64(cfg.Jobs) {
			close(allDone)
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	start := time.Now()
	if err := produce(cfg.Jobs, cfg.Producers, func() error {
		_, err := client.EnqueueContext(ctx, asynq.NewTask("noop", nil), asynq.Queue(queue))
		return err
	}); err != nil {
		s.Shutdown()
		return res, err
	}
	select {
	case <-allDone:
	case <-time.After(5 * time.Minute):
		s.Shutdown()
		return res, fmt.Errorf("%s e2e: %d of %d tasks done after 5 minutes", system, done.Load(), cfg.Jobs)
	}
	elapsed := time.Since(start)
	cmds, err := srv.commands(ctx)
	s.Shutdown()
	if err != nil {
		return res, err
	}
	res.E2EJobsPerSec = float64(cfg.Jobs) / elapsed.Seconds()
	res.CmdsPerJob = float64(cmds) / float64(cfg.Jobs)

	// 2. Latency, paced.
	queue = cfg.RunPrefix + "-" + system + "-paced"
	defer func() { _ = inspector.DeleteQueue(queue, true) }()
	lat := &latencies{}
	s, err = newServer(queue, func(_ context.Context, t *asynq.Task) error {
		if l, ok := since(t.Payload()); ok {
			lat.add(l)
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	time.Sleep(300 * time.Millisecond)
	var sent atomic.Int64
	pace(ctx, cfg.PacedRate, cfg.Producers, cfg.PacedFor, func(ctx context.Context) {
		if _, err := client.EnqueueContext(ctx, asynq.NewTask("noop", []byte(stamp())), asynq.Queue(queue)); err == nil {
			sent.Add(1)
		}
	})
	waitFor(func() bool { return int64(lat.count()) >= sent.Load() }, 30*time.Second)
	s.Shutdown()
	res.PacedP50, res.PacedP99, res.PacedSamples = lat.quantile(0.50), lat.quantile(0.99), lat.count()

	// 3. Memory per queued task.
	queue = cfg.RunPrefix + "-" + system + "-mem"
	defer func() { _ = inspector.DeleteQueue(queue, true) }()
	before, err := srv.usedMemory(ctx)
	if err != nil {
		return res, err
	}
	if err := produce(cfg.MemoryJobs, cfg.Producers, func() error {
		_, err := client.EnqueueContext(ctx, asynq.NewTask("noop", nil), asynq.Queue(queue))
		return err
	}); err != nil {
		return res, err
	}
	after, err := srv.usedMemory(ctx)
	if err != nil {
		return res, err
	}
	res.BytesPerJob = float64(after-before) / float64(cfg.MemoryJobs)
	return res, nil
}
