package executors

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/auth"
	"github.com/aigw/aigw/internal/events"
	"github.com/aigw/aigw/internal/executorapi"
	"github.com/aigw/aigw/internal/fairq"
	"github.com/aigw/aigw/internal/fnserve"
	"github.com/aigw/aigw/internal/jobstore"
	"github.com/aigw/aigw/internal/lifecycle"
	"github.com/aigw/aigw/internal/mongoconn"
	"github.com/aigw/aigw/internal/objstore"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/internal/quota"
	"github.com/aigw/aigw/internal/readiness"
	"github.com/aigw/aigw/internal/redisconn"
	"github.com/aigw/aigw/internal/registry"
	"github.com/aigw/aigw/internal/web"
)

// Deps is what New builds a Service from.
type Deps struct {
	DB         *mongo.Database
	Redis      redis.UniversalClient
	AdminToken string
	// Verifier, when set, lets operator tokens (as well as the admin token)
	// call the admin endpoints: the console's operator holds one.
	Verifier *auth.Verifier
	Queue    queue.Config
	// Jobs is the job store (nil: New opens one on DB; tests share theirs).
	Jobs *jobstore.Store
	// Objects stores artifacts (nil: uploads answer 501).
	Objects *objstore.Store
	// Lease, Poll, OutputLimit, ArtifactLimit, Backoff: see Config (zero: defaults).
	Lease         time.Duration
	Poll          time.Duration
	OutputLimit   int64
	ArtifactLimit int64
	Backoff       lifecycle.Backoff
	// MaxBlocking bounds the claims waiting on Redis at once (default 32):
	// a blocking take holds a Redis connection for up to a second, so the
	// other long polls look without blocking, every half second, and a
	// thousand open polls hold goroutines, not connections.
	MaxBlocking int
	// QuotaCacheTTL is how long the tenants' max_running quotas of a pool
	// are kept before they are read again (default 5s).
	QuotaCacheTTL time.Duration
	Log           *slog.Logger
}

// Service is the executors function.
type Service struct {
	d          Deps
	db         *mongo.Database
	rdb        redis.UniversalClient
	creds      *Credentials
	jobs       *jobstore.Store
	algorithms algorithm.Source
	queue      *queue.Queue
	events     *events.Stream
	registry   *registry.Registry
	lc         *lifecycle.Lifecycle
	quotas     *quota.Gate
	log        *slog.Logger

	blockers chan struct{} // one token per claim blocking on Redis

	mu    sync.Mutex
	execs map[string]*executor // by credential id
}

// New builds a Service on open connections.
func New(ctx context.Context, d Deps) (*Service, error) {
	if d.AdminToken == "" {
		return nil, errors.New("executors: an admin token is required")
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Lease <= 0 {
		d.Lease = 15 * time.Second
	}
	if d.Poll <= 0 {
		d.Poll = 25 * time.Second
	}
	if d.OutputLimit <= 0 {
		d.OutputLimit = 1 << 20
	}
	if d.ArtifactLimit <= 0 {
		d.ArtifactLimit = 100 << 20
	}
	if d.MaxBlocking <= 0 {
		d.MaxBlocking = 32
	}
	if d.Backoff.Base <= 0 {
		d.Backoff = lifecycle.Backoff{Base: time.Second, Max: 5 * time.Minute}
	}
	jobs := d.Jobs
	if jobs == nil {
		var err error
		if jobs, err = jobstore.New(ctx, d.DB, jobstore.Options{}); err != nil {
			return nil, err
		}
	}
	quotas, err := quota.NewStore(ctx, d.DB)
	if err != nil {
		return nil, err
	}
	ev := events.New(d.Redis, events.Config{})
	s := &Service{
		quotas: &quota.Gate{Cache: quota.NewCache(quotas, d.QuotaCacheTTL), Running: quota.NewRunning(d.Redis)},
		d:      d, db: d.DB, rdb: d.Redis, creds: NewCredentials(d.DB), jobs: jobs,
		algorithms: algorithm.NewCache(algorithm.NewStore(d.DB), 2*time.Second), queue: queue.New(d.Redis, d.Queue), events: ev,
		registry: registry.New(d.Redis), log: d.Log,
		lc: lifecycle.New(jobs, ev, d.Log, d.Backoff).
			OnEnd(fairq.New(d.Redis, queue.New(d.Redis, d.Queue), fairq.Config{Log: d.Log}).Ended),
		execs:    map[string]*executor{},
		blockers: make(chan struct{}, d.MaxBlocking),
	}
	return s, nil
}

// Handler routes the function's endpoints (see package executorapi).
func (s *Service) Handler() http.Handler {
	h, _ := s.handler()
	return h
}

func (s *Service) handler() (http.Handler, []string) {
	var patterns []string
	mux := http.NewServeMux()
	register := func(pattern string, h http.Handler) {
		mux.Handle(pattern, h)
		patterns = append(patterns, pattern)
	}
	register("GET /_/health", fnserve.Health(s.ready))
	register("GET /admin/executors", s.admin(s.handleList))
	register("POST /admin/executors", s.admin(s.handleCreate))
	register("DELETE /admin/executors/{id}", s.admin(s.handleRevoke))
	register("POST /v1/executor/register", s.executor(s.handleRegister))
	register("POST /v1/executor/claim", s.executor(s.handleClaim))
	register("POST /v1/executor/heartbeat", s.executor(s.handleHeartbeat))
	register("POST /v1/executor/jobs/{id}/events", s.executor(s.handleEvent))
	register("PUT /v1/executor/jobs/{id}/artifacts/{name}", s.executor(s.handleArtifact))
	register("GET /v1/executor/jobs/{id}/files/{upload}", s.executor(s.handleFile))
	register("POST /v1/executor/jobs/{id}/finish", s.executor(s.handleFinish))
	return mux, patterns
}

// ready pings MongoDB and Redis (the health check).
func (s *Service) ready(ctx context.Context) error {
	return readiness.Stores(ctx, 2*time.Second, s.db, s.rdb)
}

// admin lets a request through only with the admin token or, with a
// Verifier, an operator token.
func (s *Service) admin(next web.HandlerFunc) http.Handler {
	return web.Handle(s.log, func(w http.ResponseWriter, r *http.Request) error {
		if !auth.AdminOrOperator(r, s.d.AdminToken, s.d.Verifier) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="aigw-admin"`)
			return web.Unauthorized("send the admin token: Authorization: Bearer <aigw-admin-token>")
		}
		return next(w, r)
	})
}

// execHandler is a handler of an authenticated executor.
type execHandler func(w http.ResponseWriter, r *http.Request, x *executor) error

// executor authenticates the executor's token on every call (a revoked
// credential is refused at its next call) and passes its state on.
func (s *Service) executor(next execHandler) http.Handler {
	return web.Handle(s.log, func(w http.ResponseWriter, r *http.Request) error {
		token, ok := auth.BearerToken(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="aigw-executor"`)
			return web.Unauthorized("send the executor token: Authorization: Bearer <token>")
		}
		x, err := s.authenticate(r.Context(), token)
		if errors.Is(err, ErrUnauthorized) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="aigw-executor"`)
			return web.Unauthorized("unknown or revoked executor token")
		}
		if err != nil {
			return web.Unavailable(web.RetryAfter, err)
		}
		x.seen(remoteAddr(r))
		return next(w, r, x)
	})
}

// remoteAddr is the caller's address: the first X-Forwarded-For hop (the
// gateway forwards it), else the connection's.
func remoteAddr(r *http.Request) string {
	if f := r.Header.Get("X-Forwarded-For"); f != "" {
		first, _, _ := strings.Cut(f, ",")
		return strings.TrimSpace(first)
	}
	return r.RemoteAddr
}

// Run hands back the jobs of executors whose lease ran out and renews the
// queue leases of the others, until ctx ends.
func (s *Service) Run(ctx context.Context) {
	every := min(s.d.Lease/4, time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.sweep(ctx)
		}
	}
}

// Open connects to MongoDB and Redis as cfg says and builds the Service.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Service, func(), error) {
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
	v, err := auth.NewVerifier(auth.VerifierConfig{JWKSURL: cfg.JWKSURL, Issuer: cfg.Issuer, Audience: cfg.Audience})
	if err != nil {
		closeConns()
		return nil, nil, err
	}
	d := Deps{DB: mc.Database(cfg.MongoDB), Redis: rdb, AdminToken: cfg.AdminToken, Verifier: v, Queue: cfg.Queue,
		Lease: cfg.Lease, Poll: cfg.Poll, OutputLimit: cfg.OutputLimit, ArtifactLimit: cfg.ArtifactLimit,
		Backoff: lifecycle.Backoff{Base: cfg.RetryBase, Max: cfg.RetryMax}, Log: log}
	if cfg.S3.Enabled() {
		if d.Objects, err = objstore.New(cfg.S3); err != nil {
			closeConns()
			return nil, nil, err
		}
	}
	svc, err := New(ctx, d)
	if err != nil {
		closeConns()
		return nil, nil, err
	}
	return svc, closeConns, nil
}

// lease answers carry the lease period.
func (s *Service) leaseMS() int64 { return executorapi.Ms(s.d.Lease) }
