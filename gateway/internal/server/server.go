// Package server assembles the gateway: provider API, function proxy, async
// queue, cron scheduler and metrics on one HTTP server it controls, and stops
// them, functions included, on shutdown.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	robfig "github.com/robfig/cron/v3"

	"github.com/aigw/aigw/gateway/internal/async"
	"github.com/aigw/aigw/gateway/internal/config"
	"github.com/aigw/aigw/gateway/internal/cron"
	"github.com/aigw/aigw/gateway/internal/fnregistry"
	"github.com/aigw/aigw/gateway/internal/procs"
	"github.com/aigw/aigw/gateway/internal/provider"
	"github.com/aigw/aigw/gateway/internal/proxy"
	"github.com/aigw/aigw/gateway/internal/secrets"
	"github.com/aigw/aigw/internal/egress"
	"github.com/aigw/aigw/internal/httpmetrics"
	"github.com/aigw/aigw/internal/redisconn"
	"github.com/aigw/aigw/internal/web"
)

// Options are what the environment does not configure.
type Options struct {
	Version string
	SHA     string
	Logger  *slog.Logger
	// Async overrides the async queue's options (Consumer, MaxBody,
	// MaxAttempts and the Callbacks guard come from the config when zero).
	Async async.Options
	// Procs overrides the supervisor's options (StopGrace and the health
	// checks from the config).
	Procs procs.Options
	Cron  []robfig.Option
}

// Gateway is one running gateway.
type Gateway struct {
	cfg   config.Config
	log   *slog.Logger
	reg   *fnregistry.Registry
	proxy *proxy.Proxy
	queue *async.Queue
	rdb   redis.UniversalClient
	cron  *cron.Scheduler
	srv   *http.Server
	ln    net.Listener

	bgCtx    context.Context
	bgCancel context.CancelFunc
	bg       sync.WaitGroup
	stopOnce sync.Once
}

// New builds a gateway from cfg; Start serves it.
func New(ctx context.Context, cfg config.Config, opts Options) (*Gateway, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	generated, err := provider.EnsureCredentials(cfg.SecretsDir)
	if err != nil {
		return nil, err
	}
	if generated {
		log.Warn("generated basic-auth credentials for /system/*", "dir", cfg.SecretsDir,
			"user_file", filepath.Join(cfg.SecretsDir, provider.UserFile), "password_file", filepath.Join(cfg.SecretsDir, provider.PasswordFile))
	}
	creds, err := provider.ReadCredentials(cfg.SecretsDir)
	if err != nil {
		return nil, err
	}
	store, err := secrets.Open(filepath.Join(cfg.StateDir, "secrets"))
	if err != nil {
		return nil, err
	}
	g := &Gateway{cfg: cfg, log: log}
	g.bgCtx, g.bgCancel = context.WithCancel(context.WithoutCancel(ctx))

	po := opts.Procs
	if po.StopGrace == 0 {
		po.StopGrace = cfg.StopGrace
	}
	if po.CheckPeriod == 0 {
		po.CheckPeriod = cfg.HealthCheckPeriod
	}
	if po.CheckTimeout == 0 {
		po.CheckTimeout = cfg.HealthCheckTimeout
	}
	if po.FailureThreshold == 0 {
		po.FailureThreshold = cfg.HealthFailureThreshold
	}
	po.Logger = log
	g.reg, err = fnregistry.New(fnregistry.Options{
		BinDir: cfg.BinDir, StateDir: cfg.StateDir, ReadyTimeout: cfg.ReadyTimeout,
		DrainTimeout: cfg.UpstreamTimeout, Procs: po, Secrets: store, Logger: log,
		OnChange: func() { g.cron.Sync(g.reg.List()) },
	})
	if err != nil {
		return nil, err
	}
	promReg := httpmetrics.NewRegistry()
	g.proxy = proxy.New(g.reg, cfg.UpstreamTimeout, proxy.NewMetrics(promReg), log)
	g.cron = cron.New(g.bgCtx, g.proxy, store, log, opts.Cron...)

	var asyncHandler http.Handler = web.HandleNegotiated(log, func(w http.ResponseWriter, r *http.Request) error {
		return web.New(http.StatusServiceUnavailable, "async invocation is off: this gateway has no Redis (set AIGW_REDIS_ADDRS)", nil)
	})
	if len(cfg.RedisAddrs) > 0 {
		g.rdb, err = redisconn.Open(ctx, redisconn.Options{Addrs: cfg.RedisAddrs, Password: cfg.RedisPassword})
		if err != nil {
			return nil, fmt.Errorf("async queue: %w", err)
		}
		ao := opts.Async
		if ao.Consumer == "" {
			ao.Consumer = cfg.AsyncConsumer
		}
		if ao.MaxBody == 0 {
			ao.MaxBody = cfg.AsyncMaxBody
		}
		if ao.MaxAttempts == 0 {
			ao.MaxAttempts = cfg.AsyncMaxAttempts
		}
		if ao.Callbacks == nil {
			ao.Callbacks = egress.NewGuard(cfg.WebhookAllowedNets)
		}
		ao.Logger = log
		g.queue = async.New(g.rdb, g.proxy, g.reg, ao)
		if err := g.queue.Init(ctx); err != nil {
			_ = g.rdb.Close()
			return nil, err
		}
		asyncHandler = g.queue
	}

	mux := http.NewServeMux()
	deps := provider.Deps{Functions: g.reg, Secrets: store, Version: opts.Version, SHA: opts.SHA, Log: log}
	provider.Mount(mux, provider.Handlers(deps, g.proxy.ServeHTTP), creds, asyncHandler,
		httpmetrics.Handler(promReg), provider.MakeMetricsTargetsHandler(deps))
	g.srv = &http.Server{
		Handler:           httpmetrics.New(promReg).Middleware(mux),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return g, nil
}

// Start listens on the configured address, serves, starts the schedule, and
// in the background brings back the persisted functions, then starts the async
// workers.
func (g *Gateway) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", g.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s (AIGW_GATEWAY_ADDR): %w", g.cfg.Addr, err)
	}
	g.ln = ln
	g.bg.Go(func() {
		if err := g.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			g.log.Error("serving", "err", err)
		}
	})
	g.cron.Start()
	g.bg.Go(func() {
		if err := g.reg.Restore(g.bgCtx); err != nil {
			g.log.Error("restoring functions", "err", err)
		}
		// Pending calls may be for restored functions: serve them only now.
		if g.queue != nil {
			g.queue.Run(g.bgCtx)
		}
	})
	g.log.Info("gateway listening", "addr", ln.Addr().String(), "bin_dir", g.cfg.BinDir, "state_dir", g.cfg.StateDir, "async", g.queue != nil)
	return nil
}

// Addr is the address the gateway listens on.
func (g *Gateway) Addr() string { return g.ln.Addr().String() }

// Registry is the gateway's functions.
func (g *Gateway) Registry() *fnregistry.Registry { return g.reg }

// Queue is the async queue, nil without Redis.
func (g *Gateway) Queue() *async.Queue { return g.queue }

// Shutdown stops accepting requests, lets those in flight finish (until ctx
// ends), stops the async workers (their calls stay pending in Redis) and the
// schedule, and stops every function. It may be called more than once.
func (g *Gateway) Shutdown(ctx context.Context) error {
	var err error
	g.stopOnce.Do(func() {
		g.cron.Stop()
		if g.ln != nil {
			if err = g.srv.Shutdown(ctx); err != nil {
				_ = g.srv.Close()
			}
		}
		g.bgCancel()
		g.bg.Wait()
		g.reg.Close(context.WithoutCancel(ctx), time.Second)
		g.proxy.Close()
		if g.rdb != nil {
			_ = g.rdb.Close()
		}
		g.log.Info("gateway stopped")
	})
	return err
}
