// Package workerbench measures the GPU worker agent's dispatch: no-op exec jobs
// run by in-process agents (worker/agent) on the real stores, MongoDB for the
// job records and Redis Cluster for the queue, and the same no-op process run
// per task by an asynq server for comparison.
//
// Each job's dispatch overhead is the time from its delivery coming out of the
// queue to its process having started. For aigw that covers the algorithm
// (the agent's cache, named by the queue entry's dispatch hint), claiming the
// job record (one MongoDB update that reads it and sets it running) and its
// state event (Redis), and preparing and starting the process; the part
// spent waiting on MongoDB is reported apart, so the figure
// excluding the store is the agent's own cost. For asynq it is the time from
// its handler being called to the process having started (asynq keeps no
// job record).
package workerbench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/aigw/aigw/bench/internal/stats"
	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/events"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/mongoconn"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/internal/registry"
	"github.com/aigw/aigw/worker/agent"
)

// Config is the workload.
type Config struct {
	MongoURI   string
	RedisAddrs []string
	Jobs       int // no-op jobs per run
	Workers    int // agents (2)
	Slots      int // slots per agent (8); asynq gets Workers×Slots concurrency
	// Noop is the no-op program's command line (see BuildNoop).
	Noop []string
	// ServeNoop is the warm no-op program's (see BuildNoop), run by RunAigwWarm.
	ServeNoop []string
	// Timeout bounds one run (job creation excluded).
	Timeout time.Duration
}

// Result is one run's figures.
type Result struct {
	System     string
	Jobs       int
	Elapsed    time.Duration
	JobsPerSec float64
	// Dispatch overhead: taken from the queue → process started.
	P50, P99 time.Duration
	// The same without the time waiting on MongoDB (aigw only).
	ExclStoreP50, ExclStoreP99 time.Duration
	// StoreP50 is the median MongoDB part of the dispatch (aigw only).
	StoreP50 time.Duration
	// MongoServer is what answered buildInfo (aigw only).
	MongoServer string
}

// noopMain is the no-op algorithm: it prints an empty JSON object.
const noopMain = `package main

import "os"

func main() { _, _ = os.Stdout.WriteString("{}\n") }
`

// serveNoopMain is the warm no-op algorithm: it speaks the serve runtime's
// protocol (docs/serve-protocol.md) and answers every job with {}.
const serveNoopMain = `package main

import (
	"bufio"
	"encoding/json"
	"os"
)

func main() {
	out := bufio.NewWriter(os.Stdout)
	_, _ = out.WriteString("{\"type\":\"ready\"}\n")
	_ = out.Flush()
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	for in.Scan() {
		var m struct{ Type, ID string }
		if json.Unmarshal(in.Bytes(), &m) != nil || m.Type != "run" {
			continue
		}
		b, _ := json.Marshal(map[string]any{"type": "done", "id": m.ID, "output": map[string]any{}})
		_, _ = out.Write(append(b, '\n'))
		_ = out.Flush()
	}
}
`

// BuildNoop builds the no-op program and the warm no-op program into dir
// and returns their command lines; without a Go toolchain the no-op falls
// back to /bin/sh -c 'echo {}' and the warm one to none (the third result
// says what they are).
func BuildNoop(ctx context.Context, dir string) (noop, serve []string, what string, err error) {
	bin, err := buildGo(ctx, dir, "aigw-noop", noopMain)
	if err != nil {
		slog.Warn("building the no-op program failed: using /bin/sh", "err", err)
		return []string{"/bin/sh", "-c", "echo {}"}, nil, "/bin/sh -c 'echo {}'", nil
	}
	sbin, err := buildGo(ctx, dir, "aigw-serve-noop", serveNoopMain)
	if err != nil {
		slog.Warn("building the warm no-op program failed: no warm rows", "err", err)
		return []string{bin}, nil, "a static Go binary printing {}", nil
	}
	return []string{bin}, []string{sbin}, "a static Go binary printing {}; warm: one answering {} to every job", nil
}

// buildGo builds a one-file Go program into dir/name.
func buildGo(ctx context.Context, dir, name, main string) (string, error) {
	src := filepath.Join(dir, name+"-src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module "+name+"\n\ngo 1.21\n"), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(main), 0o644); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, name)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	return bin, nil
}

// samples collects dispatch times.
type samples struct {
	mu          sync.Mutex
	total, excl []time.Duration
	store       []time.Duration
}

func (s *samples) add(total, store time.Duration) {
	s.mu.Lock()
	s.total = append(s.total, total)
	s.excl = append(s.excl, total-store)
	s.store = append(s.store, store)
	s.mu.Unlock()
}

// MongoServer names the server behind uri (e.g. "FerretDB v2.1.0").
func MongoServer(ctx context.Context, uri string) string {
	client, err := mongoconn.Open(ctx, mongoconn.Options{URI: uri})
	if err != nil {
		return "unknown"
	}
	defer func() { _ = client.Disconnect(context.WithoutCancel(ctx)) }()
	var info map[string]any
	if err := client.Database("admin").RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		return "unknown"
	}
	if fv, ok := info["ferretdbVersion"]; ok {
		return strings.TrimSuffix(fmt.Sprint("FerretDB ", fv), " unknown")
	}
	return fmt.Sprint("MongoDB ", info["version"])
}

// RunAigw creates cfg.Jobs no-op jobs in a fresh database, starts cfg.Workers
// agents of cfg.Slots slots on a fresh pool, enqueues the jobs and waits until
// every one succeeded. Jobs/s runs from the enqueue to the last outcome.
func RunAigw(ctx context.Context, cfg Config) (Result, error) {
	return runAigw(ctx, cfg, algorithm.Runtime{Type: algorithm.Exec, Command: cfg.Noop}, 0)
}

// RunAigwWarm is RunAigw with the warm no-op program (cfg.ServeNoop) on the
// serve runtime: each agent keeps cfg.Slots processes ready (min_warm), and
// 2×Workers×Slots warm-up jobs run before the timed ones, so that every timed
// job finds a ready process. Its dispatch overhead runs from the delivery
// coming out of the queue to the run message being written to the process.
func RunAigwWarm(ctx context.Context, cfg Config) (Result, error) {
	if len(cfg.ServeNoop) == 0 {
		return Result{System: "aigw"}, errors.New("no warm no-op program (BuildNoop could not build it)")
	}
	return runAigw(ctx, cfg, algorithm.Runtime{Type: algorithm.Serve, Command: cfg.ServeNoop, MinWarm: cfg.Slots},
		2*cfg.Workers*cfg.Slots)
}

func runAigw(ctx context.Context, cfg Config, rt algorithm.Runtime, warmup int) (res Result, err error) {
	// The worker runs programs from its bin directory only: the one the
	// program was built in, naming it by its base name.
	binDir := filepath.Dir(rt.Command[0])
	rt.Command = append([]string{filepath.Base(rt.Command[0])}, rt.Command[1:]...)
	res = Result{System: "aigw", Jobs: cfg.Jobs, MongoServer: MongoServer(ctx, cfg.MongoURI)}
	run := fmt.Sprintf("workerbench%d", time.Now().UnixNano())
	st, closeStores, err := openStores(ctx, cfg, run)
	defer closeStores()
	if err != nil {
		return res, err
	}
	db, rdb, q, jobs, algos := st.db, st.rdb, st.q, st.jobs, st.algos
	retries := 0
	if _, _, err := algos.Put(ctx, algorithm.Definition{Name: "noop", Version: "1.0.0", Pool: run,
		Runtime: rt, MaxRetries: &retries, TimeoutMS: 60000}); err != nil {
		return res, err
	}

	// The records first (as the router writes them), outside the timed part,
	// and their queue entries as the router makes them (queue.MessageOf).
	total := warmup + cfg.Jobs
	msgs := make([]queue.Message, total)
	var next atomic.Int64
	var cwg sync.WaitGroup
	var cerr error
	var cmu sync.Mutex
	created := time.Now()
	for range 8 {
		cwg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= total || ctx.Err() != nil {
					return
				}
				j, _, err := jobs.Create(ctx, job.Job{Tenant: "bench", Algorithm: "noop", Version: "1.0.0", Pool: run,
					Input: json.RawMessage(`{}`)})
				if err != nil {
					cmu.Lock()
					cerr = errors.Join(cerr, err)
					cmu.Unlock()
					return
				}
				msgs[i] = queue.MessageOf(j)
			}
		})
	}
	cwg.Wait()
	if cerr != nil {
		return res, fmt.Errorf("create jobs: %w", cerr)
	}
	slog.Info("jobs created", "jobs", total, "in", time.Since(created).Round(time.Millisecond))

	// The agents.
	smp := &samples{}
	var done, failed, claimed atomic.Int64
	var timed atomic.Bool
	timed.Store(warmup == 0)
	warm, allDone := make(chan struct{}), make(chan struct{})
	onFinish := func(id, outcome string) {
		if outcome != "succeeded" {
			failed.Add(1)
			slog.Warn("job did not succeed", "job_id", id, "outcome", outcome)
		}
		switch done.Add(1) {
		case int64(warmup):
			close(warm)
		case int64(total):
			close(allDone)
		}
	}
	tmp, err := os.MkdirTemp("", "aigw-workerbench-")
	if err != nil {
		return res, err
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	actx, stopAgents := context.WithCancel(context.WithoutCancel(ctx))
	var awg sync.WaitGroup
	defer func() {
		stopAgents()
		awg.Wait()
	}()
	for w := range cfg.Workers {
		a, err := agent.New(agent.Config{
			Pool: run, Node: fmt.Sprintf("%s-w%d", run, w+1), Slots: cfg.Slots, AdvertiseAddr: "127.0.0.1",
			AlgorithmsDir: tmp, BinDir: binDir, WorkDir: tmp,
			Heartbeat: 2 * time.Second, Lease: 30 * time.Second, ShutdownGrace: 10 * time.Second, KillGrace: 2 * time.Second,
			RetryBase: time.Second, RetryMax: 5 * time.Second, GangTimeout: 30 * time.Second,
			OutputLimit: 1 << 20, LogTail: 64 << 10, ArtifactLimit: 1 << 20,
		}, agent.Deps{
			Redis: rdb, Queue: q, Jobs: jobs, Algorithms: algorithm.NewCache(algos, 2*time.Second), Events: events.New(rdb, events.Config{}),
			Registry: registry.New(rdb), Artifacts: agent.NewArtifactStore(db, 1<<20),
			OnDispatch: func(d agent.Dispatch) {
				if !timed.Load() {
					return
				}
				smp.add(d.Started.Sub(d.Taken), d.Store)
				if d.Claimed {
					claimed.Add(1)
				}
			},
			OnFinish: onFinish,
		}, nil, "bench")
		if err != nil {
			return res, err
		}
		awg.Go(func() {
			if err := a.Run(actx); err != nil {
				slog.Warn("agent stopped", "err", err)
			}
		})
	}

	if warmup > 0 {
		if _, err := q.EnqueueBatch(ctx, msgs[:warmup]); err != nil {
			return res, err
		}
		if err := wait(ctx, warm, cfg.Timeout, func() string { return fmt.Sprintf("%d of %d warm-up jobs done", done.Load(), warmup) }); err != nil {
			return res, err
		}
		if n := failed.Load(); n > 0 {
			return res, fmt.Errorf("%d of %d warm-up jobs did not succeed", n, warmup)
		}
		timed.Store(true)
	}
	// Enqueue everything at once, as a burst of submits would.
	start := time.Now()
	for batch := range slices.Chunk(msgs[warmup:], 1000) {
		if _, err := q.EnqueueBatch(ctx, batch); err != nil {
			return res, err
		}
	}
	if err := wait(ctx, allDone, cfg.Timeout, func() string { return fmt.Sprintf("%d of %d jobs done", done.Load()-int64(warmup), cfg.Jobs) }); err != nil {
		return res, err
	}
	res.Elapsed = time.Since(start)
	if n := failed.Load(); n > 0 {
		return res, fmt.Errorf("%d of %d jobs did not succeed", n, cfg.Jobs)
	}
	// The records agree (the database holds this run's jobs only).
	if counts, err := jobs.Counts(ctx, ""); err == nil {
		for _, c := range counts {
			if c.State != job.Succeeded && c.N > 0 {
				return res, fmt.Errorf("%d job records are %s after the run", c.N, c.State)
			}
		}
	}
	slog.Info("dispatches", "claimed_in_one_update", claimed.Load(), "of", cfg.Jobs, "runtime", rt.Type)
	res.JobsPerSec = float64(cfg.Jobs) / res.Elapsed.Seconds()
	smp.mu.Lock()
	defer smp.mu.Unlock()
	res.P50, res.P99 = stats.Quantile(smp.total, 0.50), stats.Quantile(smp.total, 0.99)
	res.ExclStoreP50, res.ExclStoreP99 = stats.Quantile(smp.excl, 0.50), stats.Quantile(smp.excl, 0.99)
	res.StoreP50 = stats.Quantile(smp.store, 0.50)
	return res, nil
}

// wait waits for done, reporting progress every 10 s, until timeout.
func wait(ctx context.Context, done <-chan struct{}, timeout time.Duration, progress func() string) error {
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	deadline := time.After(timeout)
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return nil
		case <-tick.C:
			slog.Info("waiting", "progress", progress())
		case <-deadline:
			return fmt.Errorf("not done after %s: %s", timeout, progress())
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// RunAsynq runs the same no-op process per task from an asynq server with
// Workers×Slots concurrency on the same Redis Cluster. Its dispatch overhead is
// from the handler being called to the process having started; jobs/s runs
// from the enqueue of the first task to the last process's exit.
func RunAsynq(ctx context.Context, cfg Config) (Result, error) {
	res := Result{System: "asynq", Jobs: cfg.Jobs}
	opt := asynq.RedisClusterClientOpt{Addrs: cfg.RedisAddrs}
	client := asynq.NewClient(opt)
	defer func() { _ = client.Close() }()
	inspector := asynq.NewInspector(opt)
	defer func() { _ = inspector.Close() }()
	qname := fmt.Sprintf("workerbench%d", time.Now().UnixNano())
	defer func() { _ = inspector.DeleteQueue(qname, true) }()

	// The tasks first, outside the timed part (the aigw run creates its
	// records first too); the server starts afterwards.
	for i := 0; i < cfg.Jobs; i += 100 {
		var wg sync.WaitGroup
		errs := make([]error, min(100, cfg.Jobs-i))
		for k := range errs {
			wg.Go(func() {
				_, errs[k] = client.EnqueueContext(ctx, asynq.NewTask("noop", []byte(`{}`)), asynq.Queue(qname), asynq.MaxRetry(0))
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return res, err
		}
	}
	smp := &samples{}
	var done, failed atomic.Int64
	allDone := make(chan struct{})
	srv := asynq.NewServer(opt, asynq.Config{
		Concurrency: cfg.Workers * cfg.Slots, Queues: map[string]int{qname: 1},
		LogLevel: asynq.ErrorLevel, TaskCheckInterval: 10 * time.Millisecond,
	})
	start := time.Now()
	err := srv.Start(asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		taken := time.Now()
		err := runNoop(ctx, cfg.Noop, t.Payload(), func() { smp.add(time.Since(taken), 0) })
		if err != nil {
			failed.Add(1)
		}
		if done.Add(1) == int64(cfg.Jobs) {
			close(allDone)
		}
		return err
	}))
	if err != nil {
		return res, err
	}
	defer srv.Shutdown()
	if err := wait(ctx, allDone, cfg.Timeout, func() string { return fmt.Sprintf("%d of %d tasks done", done.Load(), cfg.Jobs) }); err != nil {
		return res, err
	}
	res.Elapsed = time.Since(start)
	if n := failed.Load(); n > 0 {
		return res, fmt.Errorf("%d of %d tasks failed", n, cfg.Jobs)
	}
	res.JobsPerSec = float64(cfg.Jobs) / res.Elapsed.Seconds()
	smp.mu.Lock()
	defer smp.mu.Unlock()
	res.P50, res.P99 = stats.Quantile(smp.total, 0.50), stats.Quantile(smp.total, 0.99)
	return res, nil
}

// runNoop runs the no-op program with input on stdin, calls started once it
// runs, and checks that it printed JSON.
func runNoop(ctx context.Context, command []string, input []byte, started func()) error {
	cmd := exec.CommandContext(ctx, command[0], command[1:]...)
	cmd.Stdin = strings.NewReader(string(input))
	var out strings.Builder
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		return err
	}
	started()
	if err := cmd.Wait(); err != nil {
		return err
	}
	if !json.Valid([]byte(strings.TrimSpace(out.String()))) {
		return fmt.Errorf("no-op printed %q", out.String())
	}
	return nil
}
