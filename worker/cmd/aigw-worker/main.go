// Command aigw-worker is the GPU worker agent of aigw: a daemon per node that
// takes its pool's jobs from Redis and runs them (see worker/agent).
//
//	aigw-worker              run the daemon (configured by AIGW_* variables)
//	aigw-worker version      print the version
//	aigw-worker register [dir]  store the definitions under dir (default
//	                         $AIGW_ALGORITHMS_DIR) in MongoDB
//	aigw-worker --join URL --token T  serve the token's pool through the
//	                         executor API at URL (no Redis or MongoDB)
package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/egress"
	"github.com/aigw/aigw/internal/events"
	"github.com/aigw/aigw/internal/jobstore"
	"github.com/aigw/aigw/internal/logging"
	"github.com/aigw/aigw/internal/mongoconn"
	"github.com/aigw/aigw/internal/objstore"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/internal/quota"
	"github.com/aigw/aigw/internal/redisconn"
	"github.com/aigw/aigw/internal/registry"
	"github.com/aigw/aigw/worker/agent"
	"github.com/aigw/aigw/worker/internal/artifacts"
	"github.com/aigw/aigw/worker/internal/assetcache"
	"github.com/aigw/aigw/worker/internal/config"
	"github.com/aigw/aigw/worker/internal/gpu"
	"github.com/aigw/aigw/worker/internal/inputs"
	"github.com/aigw/aigw/worker/internal/metrics"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	log, err := logging.New(os.Stderr, os.Getenv, "aigw-worker", version)
	if err != nil {
		fmt.Fprintln(os.Stderr, "aigw-worker:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	switch {
	case len(os.Args) > 1 && os.Args[1] == "version":
		fmt.Println(version)
	case len(os.Args) > 1 && os.Args[1] == "register":
		err = register(ctx, os.Args[2:], log)
	case isJoin(os.Args[1:]):
		err = join(ctx, os.Args[1:], log, os.Stderr)
	case len(os.Args) > 1:
		err = fmt.Errorf("unknown command %q (want version, register [dir], --join URL --token T, or none to run the worker)", os.Args[1])
	default:
		err = daemon(ctx, log)
	}
	if err != nil {
		log.Error("aigw-worker failed", "err", err)
		os.Exit(1)
	}
}

func register(ctx context.Context, args []string, log *slog.Logger) error {
	cfg, err := config.LoadRegister(os.LookupEnv)
	if err != nil {
		return err
	}
	dir := cfg.AlgorithmsDir
	if len(args) > 0 {
		dir = args[0]
	}
	defs, err := algorithm.LoadDir(dir)
	if err != nil {
		return err
	}
	client, err := mongoconn.Open(ctx, mongoconn.Options{URI: cfg.MongoURI})
	if err != nil {
		return err
	}
	defer func() { _ = client.Disconnect(context.WithoutCancel(ctx)) }()
	store := algorithm.NewStore(client.Database(cfg.MongoDB))
	for _, d := range defs {
		_, created, err := store.Put(ctx, *d)
		if err != nil {
			return fmt.Errorf("register %s: %w", d.ID(), err)
		}
		log.Info("algorithm registered", "algorithm", d.Name, "algorithm_version", d.Version, "pool", d.Pool, "created", created)
	}
	return nil
}

func daemon(ctx context.Context, log *slog.Logger) error {
	cfg, err := config.Load(os.LookupEnv, os.Hostname)
	if err != nil {
		return err
	}
	gpus, err := gpu.Discover(ctx, cfg.NvidiaSMI)
	if err != nil {
		log.Warn("GPU discovery failed: running CPU-only", "err", err)
		gpus = nil
	}
	rdb, err := redisconn.Open(ctx, redisconn.Options{Addrs: cfg.RedisAddrs, Password: cfg.RedisPassword})
	if err != nil {
		return err
	}
	defer rdb.Close()
	client, err := mongoconn.Open(ctx, mongoconn.Options{URI: cfg.MongoURI})
	if err != nil {
		return err
	}
	defer func() { _ = client.Disconnect(context.Background()) }()
	db := client.Database(cfg.MongoDB)
	// MongoDB may still be starting (or failing over): try a few times.
	var jobs *jobstore.Store
	for try := 1; ; try++ {
		if jobs, err = jobstore.New(ctx, db, jobstore.Options{}); err == nil || try == 5 || ctx.Err() != nil {
			break
		}
		log.Warn("job store not ready; retrying", "err", err, "try", try)
		time.Sleep(time.Duration(try) * time.Second)
	}
	if err != nil {
		return err
	}
	quotas, err := quota.NewStore(ctx, db)
	if err != nil {
		return err
	}
	m := metrics.New()
	defs := algorithm.NewCache(algorithm.NewStore(db), 2*time.Second)
	arts, obj, err := artifactStore(ctx, cfg, db, log)
	if err != nil {
		return err
	}
	arts.Defs = defs
	fetcher := &inputs.Fetcher{Store: obj, HTTP: egress.NewGuard(cfg.URLAllowedNets).Client()}
	cache, err := assetCache(cfg, m)
	if err != nil {
		return err
	}
	a, err := agent.New(cfg, agent.Deps{
		Redis: rdb, Queue: queue.New(rdb, cfg.Queue), Jobs: jobs,
		Algorithms: defs, Events: events.New(rdb, events.Config{}),
		Registry: registry.New(rdb), Artifacts: arts, Inputs: fetcher, Assets: cache, Metrics: m, Log: log,
		Quotas: &quota.Gate{Cache: quota.NewCache(quotas, 5*time.Second), Running: quota.NewRunning(rdb)},
	}, gpus, version)
	if err != nil {
		return err
	}
	if cfg.MetricsAddr != "" {
		mctx, stopMetrics := context.WithCancel(context.WithoutCancel(ctx))
		defer stopMetrics()
		go func() {
			if err := metrics.Serve(mctx, cfg.MetricsAddr, m.Handler(a.Healthy)); err != nil {
				log.Error("metrics server failed", "addr", cfg.MetricsAddr, "err", err)
			}
		}()
	}
	log.Info("worker starting", "slots", a.Slots(), "gpus", len(gpus), "metrics_addr", cfg.MetricsAddr)
	start := time.Now()
	err = a.Run(ctx)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Info("worker stopped", "uptime", time.Since(start).Round(time.Second).String())
	return nil
}

// assetCache opens the worker's asset cache (AIGW_CACHE_DIR, else
// aigw-assets in the work directory; AIGW_CACHE_BYTES) and registers its
// metrics with m: the agent's and the joined worker's alike.
func assetCache(cfg config.Config, m *metrics.Metrics) (*assetcache.Cache, error) {
	dir := cfg.CacheDir
	if dir == "" {
		dir = filepath.Join(cmp.Or(cfg.WorkDir, os.TempDir()), "aigw-assets")
	}
	cache, err := assetcache.New(dir, cfg.CacheBytes, &http.Client{Transport: http.DefaultTransport})
	if err != nil {
		return nil, fmt.Errorf("asset cache: %w", err)
	}
	m.Registry.MustRegister(cache.Collectors()...)
	return cache, nil
}

// artifactStore is the object store when one is configured (its bucket
// created if missing; a store that does not answer yet is only a warning:
// artifacts are retried), else MongoDB GridFS.
func artifactStore(ctx context.Context, cfg config.Config, db *mongo.Database, log *slog.Logger) (*artifacts.Store, *objstore.Store, error) {
	if !cfg.S3.Enabled() {
		log.Info("artifacts go to MongoDB GridFS (no AIGW_S3_ENDPOINT)")
		return artifacts.New(db, cfg.ArtifactLimit), nil, nil
	}
	obj, err := objstore.New(cfg.S3)
	if err != nil {
		return nil, nil, err
	}
	bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := obj.EnsureBucket(bctx); err != nil {
		if !objstore.IsUnavailable(err) {
			return nil, nil, err
		}
		log.Warn("object store unavailable at start; artifacts will be retried", "endpoint", cfg.S3.Endpoint, "err", err)
	}
	arts := artifacts.NewObjects(obj, cfg.ArtifactLimit)
	arts.RetryFor = cfg.ArtifactRetry
	if arts.RetryFor == 0 {
		arts.RetryFor = -1
	}
	arts.Log = log
	log.Info("artifacts go to the object store", "endpoint", cfg.S3.Endpoint, "bucket", cfg.S3.Bucket)
	return arts, obj, nil
}
