package executorbench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/aigw/aigw/functions/executors"
	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/apispec"
	"github.com/aigw/aigw/internal/events"
	"github.com/aigw/aigw/internal/executorapi"
	"github.com/aigw/aigw/internal/jobstore"
	"github.com/aigw/aigw/internal/mongoconn"
	"github.com/aigw/aigw/internal/objstore"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/internal/redisconn"
	"github.com/aigw/aigw/internal/registry"
	"github.com/aigw/aigw/worker/agent"
)

// StackConfig is what a Stack runs on.
type StackConfig struct {
	MongoURI   string
	RedisAddrs []string
	// Objects, when set, stores uploads and artifacts (the executor API
	// serves the uploads to the executors that hold their jobs).
	Objects *objstore.Store
	// Lease is the executors' lease (default 10s).
	Lease time.Duration
	Log   *slog.Logger
}

// Stack is the job stores of one run (a database of its own, the Redis
// Cluster) with the executors function served over HTTP on loopback, as
// the gateway serves it (under /function/executors), and the agents and
// joined workers started on it.
type Stack struct {
	DB     *mongo.Database
	Redis  redis.UniversalClient
	Queue  *queue.Queue
	Jobs   *jobstore.Store
	Algos  *algorithm.Store
	Events *events.Stream
	// URL is the executor API's base; Admin its client with the admin token.
	URL   string
	Admin *executorapi.Client
	Svc   *executors.Service

	log     *slog.Logger
	closers []func()
	stop    context.CancelFunc
	bg      context.Context
	done    []chan struct{}
}

const adminToken = "executorbench-admin-token"

// Open starts a Stack in database name (dropped by Close).
func Open(ctx context.Context, name string, cfg StackConfig) (s *Stack, err error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 10 * time.Second
	}
	s = &Stack{log: cfg.Log}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	mc, err := mongoconn.Open(ctx, mongoconn.Options{URI: cfg.MongoURI})
	if err != nil {
		return s, err
	}
	s.DB = mc.Database(name)
	s.closers = append(s.closers, func() {
		_ = s.DB.Drop(context.Background())
		_ = mc.Disconnect(context.Background())
	})
	rdb, err := redisconn.Open(ctx, redisconn.Options{Addrs: cfg.RedisAddrs})
	if err != nil {
		return s, err
	}
	s.Redis = rdb
	s.closers = append(s.closers, func() { _ = rdb.Close() })
	s.Queue = queue.New(rdb, queue.Config{})
	if s.Jobs, err = jobstore.New(ctx, s.DB, jobstore.Options{}); err != nil {
		return s, err
	}
	s.Algos = algorithm.NewStore(s.DB)
	s.Events = events.New(rdb, events.Config{})
	s.Svc, err = executors.New(ctx, executors.Deps{DB: s.DB, Redis: rdb, Jobs: s.Jobs, AdminToken: adminToken,
		Objects: cfg.Objects, Lease: cfg.Lease, Log: cfg.Log})
	if err != nil {
		return s, err
	}
	s.bg, s.stop = context.WithCancel(context.WithoutCancel(ctx))
	swept := make(chan struct{})
	go func() { defer close(swept); s.Svc.Run(s.bg) }()
	s.done = append(s.done, swept)
	mux := http.NewServeMux()
	prefix := apispec.FunctionPrefix("executors")
	mux.Handle(prefix+"/", http.StripPrefix(prefix, s.Svc.Handler()))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return s, err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	s.closers = append(s.closers, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	s.URL = "http://" + ln.Addr().String() + prefix
	s.Admin = executorapi.NewClient(s.URL, adminToken, nil)
	return s, nil
}

// Joined starts a joined worker (aigw-worker --join) of pool named name
// with cfg's slots and directories; it runs until Close.
func (s *Stack) Joined(ctx context.Context, pool, name string, cfg agent.Config, d agent.JoinDeps) (*agent.Joined, error) {
	cr, err := s.Admin.Create(ctx, pool, name)
	if err != nil {
		return nil, err
	}
	cfg.Node = name
	if d.Log == nil {
		d.Log = s.log
	}
	w := agent.NewJoined(cfg, executorapi.NewClient(s.URL, cr.Token, nil), nil, "bench", d)
	done := make(chan struct{})
	s.done = append(s.done, done)
	go func() {
		defer close(done)
		if err := w.Run(s.bg); err != nil && !errors.Is(err, context.Canceled) {
			s.log.Warn("joined worker stopped", "name", name, "err", err)
		}
	}()
	return w, nil
}

// Agent starts an agent of cfg.Pool on the stack's stores; it runs until
// Close.
func (s *Stack) Agent(cfg agent.Config, d agent.Deps) (*agent.Agent, error) {
	d.Redis, d.Queue, d.Jobs, d.Events = s.Redis, s.Queue, s.Jobs, s.Events
	d.Algorithms = algorithm.NewCache(s.Algos, 2*time.Second)
	d.Registry = registry.New(s.Redis)
	if d.Artifacts == nil {
		d.Artifacts = agent.NewArtifactStore(s.DB, 1<<20)
	}
	if d.Log == nil {
		d.Log = s.log
	}
	a, err := agent.New(cfg, d, nil, "bench")
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	s.done = append(s.done, done)
	go func() {
		defer close(done)
		if err := a.Run(s.bg); err != nil {
			s.log.Warn("agent stopped", "node", cfg.Node, "err", err)
		}
	}()
	return a, nil
}

// WorkerConfig is a worker configuration for a bench: slots, the bin
// directory the algorithms' programs are in, a work directory.
func WorkerConfig(pool, node string, slots int, binDir, workDir string) agent.Config {
	return agent.Config{
		Pool: pool, Node: node, Slots: slots, AdvertiseAddr: "127.0.0.1",
		AlgorithmsDir: workDir, BinDir: binDir, WorkDir: workDir,
		Heartbeat: 2 * time.Second, Lease: 30 * time.Second, ShutdownGrace: 10 * time.Second, KillGrace: 2 * time.Second,
		RetryBase: time.Second, RetryMax: 5 * time.Second, GangTimeout: 30 * time.Second,
		OutputLimit: 1 << 20, LogTail: 64 << 10, ArtifactLimit: 1 << 20,
	}
}

// Purge empties the queues of pools.
func (s *Stack) Purge(pools ...string) {
	for _, p := range pools {
		_ = s.Queue.Purge(context.Background(), p)
		_ = registry.New(s.Redis).RemovePool(context.Background(), p)
	}
}

// Close stops the workers (their runs are handed back), the function and
// its server, and drops the database.
func (s *Stack) Close() {
	if s.stop != nil {
		s.stop()
	}
	for _, d := range s.done {
		select {
		case <-d:
		case <-time.After(15 * time.Second):
			s.log.Warn("a worker did not stop within 15s")
		}
	}
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
}

// String names the stack's API.
func (s *Stack) String() string { return fmt.Sprintf("executors at %s", s.URL) }
