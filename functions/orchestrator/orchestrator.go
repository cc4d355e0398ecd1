package orchestrator

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/auth"
	"github.com/aigw/aigw/internal/egress"
	"github.com/aigw/aigw/internal/events"
	"github.com/aigw/aigw/internal/fairq"
	"github.com/aigw/aigw/internal/fnserve"
	"github.com/aigw/aigw/internal/jobstore"
	"github.com/aigw/aigw/internal/mongoconn"
	"github.com/aigw/aigw/internal/objstore"
	"github.com/aigw/aigw/internal/pipeline"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/internal/quota"
	"github.com/aigw/aigw/internal/readiness"
	"github.com/aigw/aigw/internal/redisconn"
	"github.com/aigw/aigw/internal/registry"
	"github.com/aigw/aigw/internal/submit"
	"github.com/aigw/aigw/internal/uploads"
	"github.com/aigw/aigw/internal/web"
	"github.com/aigw/aigw/internal/webhook"
)

// Deps is what New builds a Service from.
type Deps struct {
	DB         *mongo.Database
	Redis      redis.UniversalClient
	Verifier   *auth.Verifier
	AdminToken string
	// Webhook tunes delivery (Timeout, MaxAge, backoff).
	Webhook      webhook.Config
	ReaperGrace  time.Duration
	ReconcileAge time.Duration
	// TickTimeout bounds one tick (default 2m).
	TickTimeout time.Duration
	// LeaseTTL is the TTL of the tick's lease, renewed every LeaseTTL/3 while
	// a tick works (default 10s): a holder that died blocks ticks this long.
	LeaseTTL time.Duration
	// LockKey is the tick lease's Redis key (default LockKey; tests isolate theirs).
	LockKey string
	// Queue configures the job queue; it must match the router's and workers' (shards).
	Queue queue.Config
	// Retention is how long finished jobs keep their data (zero: for ever);
	// Objects, when set, is the object store their artifacts are purged from.
	Retention Retention
	Objects   *objstore.Store
	// UploadGrace is how long an upload no job referenced is kept after its
	// upload URL expired.
	UploadGrace time.Duration
	Log         *slog.Logger
}

// Service is the orchestrator function.
type Service struct {
	db         *mongo.Database
	rdb        redis.UniversalClient
	ticker     *Ticker
	webhooks   *webhook.Store
	pipelines  *pipeline.Store
	engine     *pipeline.Engine
	algorithms *algorithm.Store
	verifier   *auth.Verifier
	// quotas holds tenants' quotas and deletions (a deleted tenant's old
	// tokens are refused), following the routers' announcements once
	// FollowQuotaChanges runs.
	quotas     *quota.Cache
	adminToken string
	log        *slog.Logger
	metrics    *Metrics
	// ticking counts the RunTicker loops, which Open's close waits for.
	ticking sync.WaitGroup
}

// New builds a Service on open connections and creates its indexes.
func New(ctx context.Context, d Deps) (*Service, error) {
	if d.AdminToken == "" {
		return nil, errors.New("orchestrator: an admin token is required")
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.LockKey == "" {
		d.LockKey = LockKey
	}
	if d.TickTimeout <= 0 {
		d.TickTimeout = 2 * time.Minute
	}
	if d.LeaseTTL <= 0 {
		d.LeaseTTL = 10 * time.Second
	}
	jobs, err := jobstore.New(ctx, d.DB, jobstore.Options{})
	if err != nil {
		return nil, err
	}
	hooks := webhook.NewStore(d.DB)
	if err := hooks.EnsureIndexes(ctx); err != nil {
		return nil, err
	}
	pipes := pipeline.NewStore(d.DB)
	if err := pipes.EnsureIndexes(ctx); err != nil {
		return nil, err
	}
	ups := uploads.New(d.DB)
	if err := ups.EnsureIndexes(ctx); err != nil {
		return nil, err
	}
	algos := algorithm.NewStore(d.DB)
	q := queue.New(d.Redis, d.Queue)
	ev := events.New(d.Redis, events.Config{})
	quotas, err := quota.NewStore(ctx, d.DB)
	if err != nil {
		return nil, err
	}
	qcache := quota.NewCache(quotas, 0)
	fair := fairq.New(d.Redis, q, fairq.Config{Policy: qcache.FairPolicy, Log: d.Log})
	sub := submit.New(submit.Config{Jobs: jobs, Algorithms: algos, Queue: q, Events: ev, Log: d.Log, Webhooks: d.Webhook.Guard, Fair: fair})
	if d.Webhook.Log == nil {
		d.Webhook.Log = d.Log
	}
	workers := registry.New(d.Redis)
	s := &Service{
		db: d.DB, rdb: d.Redis, webhooks: hooks, pipelines: pipes, algorithms: algos,
		engine: pipeline.NewEngine(pipes, sub, jobs, d.Log), verifier: d.Verifier, quotas: qcache,
		adminToken: d.AdminToken, log: d.Log, metrics: newMetrics(jobs, q, workers),
	}
	s.ticker = &Ticker{
		lease:     lease{rdb: d.Redis, key: d.LockKey, ttl: d.LeaseTTL},
		timeout:   d.TickTimeout,
		jobs:      jobs,
		deliverer: webhook.NewDeliverer(hooks, d.Webhook),
		reaper: &Reaper{Scan: jobs, Jobs: jobs, Events: ev,
			Workers: workers, Algorithms: algos, Grace: d.ReaperGrace, Now: time.Now, Log: d.Log, Fair: fair, cursors: &cursors{}},
		reconciler: &Reconciler{Jobs: jobs, Queue: q, Age: d.ReconcileAge, Now: time.Now, Log: d.Log, Fair: fair, cursors: &cursors{}},
		purger: &Purger{Jobs: jobs, Objects: d.Objects, GridFS: d.DB.GridFSBucket(options.GridFSBucket().SetName("artifacts")),
			Uploads: ups, Retention: d.Retention, UploadGrace: d.UploadGrace, Now: time.Now, Log: d.Log},
		pipelines: s.engine,
		log:       d.Log,
		metrics:   s.metrics,
	}
	return s, nil
}

// Handler routes the function's endpoints:
//
//	GET  /_/health
//	POST /tick                                        admin token
//	GET  /admin/tenants/{tenant}/webhook-secret       admin token
//	POST /admin/tenants/{tenant}/webhook-secret       admin token: rotate
//	GET  /v1/pipelines                                jobs:read
//	GET  /v1/pipelines/{name}                         jobs:read
//	PUT  /v1/pipelines/{name}                         jobs:write
//	POST /v1/pipelines/{name}/runs                    jobs:write
//	GET  /v1/pipelines/{name}/runs/{id}               jobs:read
//	POST /v1/pipelines/{name}/runs/{id}/cancel        jobs:write
//
// The admin token is sent as `Authorization: Bearer <aigw-admin-token>`.
func (s *Service) Handler() http.Handler {
	h, _ := s.handler()
	return h
}

// handler returns the function's routes and their patterns ("METHOD /path",
// which the OpenAPI document's test compares with internal/apispec).
func (s *Service) handler() (http.Handler, []string) {
	var patterns []string
	mux := http.NewServeMux()
	register := func(m *http.ServeMux, pattern string, h http.Handler) {
		m.Handle(pattern, h)
		patterns = append(patterns, pattern)
	}
	register(mux, "GET /_/health", fnserve.Health(s.ready))
	register(mux, "POST /tick", requireAdmin(s.adminToken, nil, s.log, s.handleTick))
	register(mux, "GET /admin/tenants/{tenant}/webhook-secret", requireAdmin(s.adminToken, s.verifier, s.log, s.handleGetSecret))
	register(mux, "POST /admin/tenants/{tenant}/webhook-secret", requireAdmin(s.adminToken, s.verifier, s.log, s.handleRotateSecret))

	api := http.NewServeMux()
	route := func(pattern, scope string, h web.HandlerFunc) {
		register(api, pattern, auth.Require(scope)(handle(s.log, h)))
	}
	route("GET /v1/pipelines", auth.ScopeJobsRead, s.handleListPipelines)
	route("GET /v1/pipelines/{name}", auth.ScopeJobsRead, s.handleGetPipeline)
	route("PUT /v1/pipelines/{name}", auth.ScopeJobsWrite, s.handlePutPipeline)
	route("POST /v1/pipelines/{name}/runs", auth.ScopeJobsWrite, s.handleStartRun)
	route("GET /v1/pipelines/{name}/runs/{id}", auth.ScopeJobsRead, s.handleGetRun)
	route("POST /v1/pipelines/{name}/runs/{id}/cancel", auth.ScopeJobsWrite, s.handleCancelRun)
	mux.Handle("/v1/", auth.Middleware(s.verifier, s.log)(auth.Live(s.quotas, s.log)(api)))
	return mux, patterns
}

// ready pings MongoDB and Redis (the health check).
func (s *Service) ready(ctx context.Context) error {
	return readiness.Stores(ctx, 2*time.Second, s.db, s.rdb)
}

// Metrics are the orchestrator's metrics; serve Metrics().Registry at
// fnserve.MetricsPath (fnserve.Config.Metrics).
func (s *Service) Metrics() *Metrics { return s.metrics }

// Tick runs the periodic work once (see Ticker.Tick).
func (s *Service) Tick(ctx context.Context) (Summary, error) { return s.ticker.Tick(ctx) }

// RunTicker ticks every interval until ctx ends; a tick in progress then
// stops and releases its lease.
func (s *Service) RunTicker(ctx context.Context, interval time.Duration) {
	s.ticking.Add(1)
	defer s.ticking.Done()
	s.ticker.Run(ctx, interval)
}

// FollowQuotaChanges makes the service's quota cache forget each tenant a
// router announces (a quota change, a deletion) at once, until ctx ends.
func (s *Service) FollowQuotaChanges(ctx context.Context) {
	s.quotas.KeepFollowing(ctx, s.rdb, s.log)
}

// Open connects to MongoDB and Redis as cfg says and builds the Service; close
// waits for the RunTicker loops to end (their context must be done: a tick
// ended by shutdown releases its lease first), then releases the connections.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (svc *Service, close func(), err error) {
	v, err := auth.NewVerifier(auth.VerifierConfig{JWKSURL: cfg.JWKSURL, Issuer: cfg.Issuer, Audience: cfg.Audience})
	if err != nil {
		return nil, nil, err
	}
	mc, err := mongoconn.Open(ctx, mongoconn.Options{URI: cfg.MongoURI})
	if err != nil {
		return nil, nil, err
	}
	rdb, err := redisconn.Open(ctx, redisconn.Options{Addrs: cfg.RedisAddrs, Password: cfg.RedisPassword})
	if err != nil {
		_ = mc.Disconnect(context.WithoutCancel(ctx))
		return nil, nil, err
	}
	closeConns := func() {
		_ = rdb.Close()
		_ = mc.Disconnect(context.Background())
	}
	var objects *objstore.Store
	if cfg.S3.Enabled() {
		if objects, err = objstore.New(cfg.S3); err != nil {
			closeConns()
			return nil, nil, err
		}
	}
	svc, err = New(ctx, Deps{
		DB: mc.Database(cfg.MongoDB), Redis: rdb, Verifier: v, AdminToken: cfg.AdminToken,
		Webhook: webhook.Config{Timeout: cfg.WebhookTimeout, MaxAge: cfg.WebhookMaxAge,
			Guard: egress.NewGuard(cfg.WebhookAllowedNets)},
		ReaperGrace: cfg.ReaperGrace, ReconcileAge: cfg.ReconcileAge, Queue: cfg.Queue, Log: log,
		Retention: cfg.Retention, Objects: objects, UploadGrace: cfg.UploadGrace,
	})
	if err != nil {
		closeConns()
		return nil, nil, err
	}
	return svc, func() {
		svc.ticking.Wait()
		closeConns()
	}, nil
}
