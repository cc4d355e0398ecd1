// Package router is the public REST API of aigw (the router function): the
// algorithm catalog and jobs under /v1, one file per resource, wired in New.
//
// Every /v1 route needs a bearer token (auth.Middleware) carrying the route's
// scope (auth.Require); a tenant sees only its own jobs (another tenant's job
// is a 404). Requests are rate limited per tenant by a token bucket in Redis.
// The handlers keep nothing in memory: MongoDB holds the records, Redis the
// queues and event streams.
package router

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/apispec"
	"github.com/aigw/aigw/internal/auth"
	"github.com/aigw/aigw/internal/events"
	"github.com/aigw/aigw/internal/fairq"
	"github.com/aigw/aigw/internal/fnserve"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/jobstore"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/internal/ratelimit"
	"github.com/aigw/aigw/internal/registry"
	"github.com/aigw/aigw/internal/submit"
	"github.com/aigw/aigw/internal/webhook"
)

// Jobs reads job records (jobstore.Store).
type Jobs interface {
	Get(ctx context.Context, tenant, id string) (*job.Job, error)
	GetByID(ctx context.Context, id string) (*job.Job, error)
	List(ctx context.Context, f jobstore.Filter) (jobstore.Page, error)
	ActiveCounts(ctx context.Context, tenant string) (map[string]jobstore.PoolCount, error)
	Usage(ctx context.Context, q jobstore.UsageQuery) ([]jobstore.UsageRow, error)
}

// JobService submits, cancels and retries jobs (submit.Service).
type JobService interface {
	Submit(ctx context.Context, req submit.Request) (*job.Job, bool, error)
	Cancel(ctx context.Context, tenant, id string) (*job.Job, error)
	Retry(ctx context.Context, tenant, id string) (*job.Job, error)
	Redrive(ctx context.Context, id string) (*job.Job, error)
	DeleteTenant(ctx context.Context, tenant, reason string) (submit.TenantDeletion, error)
}

// Catalog stores algorithm definitions (algorithm.Store).
type Catalog interface {
	Put(ctx context.Context, d algorithm.Definition) (*algorithm.Definition, bool, error)
	Get(ctx context.Context, name, version string) (*algorithm.Definition, error)
	Versions(ctx context.Context, name string) ([]algorithm.Definition, error)
	List(ctx context.Context) ([]algorithm.Definition, error)
}

// Events reads job event streams (events.Stream).
type Events interface {
	Read(ctx context.Context, jobID, after string, count int64, block time.Duration) ([]events.Event, error)
	ReadResume(ctx context.Context, jobID, after string, count int64) ([]events.Event, *events.Gap, error)
}

// Pools lists pools and their workers (registry.Registry).
type Pools interface {
	Pools(ctx context.Context) ([]string, error)
	Workers(ctx context.Context, pool string) ([]registry.Worker, error)
	AddPool(ctx context.Context, pool string) error
	ForgetIfEmpty(ctx context.Context, pool string) (bool, error)
}

// QueueStats reports a pool's queue (queue.Queue).
type QueueStats interface {
	Stats(ctx context.Context, pool string) (queue.PoolStats, error)
}

// Deliveries is the webhook delivery log (webhook.Store).
type Deliveries interface {
	Deliveries(ctx context.Context, tenant, jobID string) ([]webhook.Delivery, error)
}

// Limiter admits requests per key (ratelimit.Limiter).
type Limiter interface {
	Allow(ctx context.Context, key string) (ratelimit.Result, error)
}

// Options tunes the API; zero values take the defaults noted.
type Options struct {
	// MaxWait caps a submit's `Prefer: wait=N` (default 60s).
	MaxWait time.Duration
	// BodyLimit caps request bodies (default 1 MiB).
	BodyLimit int64
	// Heartbeat is the interval of the `: ping` comment on an idle event
	// stream (default 15s).
	Heartbeat time.Duration
	// PublicURL is the API's external base, an http(s) URL (e.g.
	// https://api.example.com/function/router) or an absolute path (e.g.
	// /function/router), used for Location headers; empty: the request's
	// X-Forwarded-Prefix, if any, followed by the path.
	PublicURL string
	// ArtifactURLTTL is how long an artifact's presigned URL works (default
	// 15 minutes).
	ArtifactURLTTL time.Duration
	// UploadLimit is the most bytes one upload may have (default 5 GiB);
	// UploadLimits are tenants' own limits over it.
	UploadLimit  int64
	UploadLimits map[string]int64
	// UploadURLTTL is how long an upload URL works (default 1 hour).
	UploadURLTTL time.Duration
}

func (o *Options) defaults() {
	if o.MaxWait <= 0 {
		o.MaxWait = 60 * time.Second
	}
	if o.BodyLimit <= 0 {
		o.BodyLimit = 1 << 20
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = 15 * time.Second
	}
	if o.ArtifactURLTTL <= 0 {
		o.ArtifactURLTTL = 15 * time.Minute
	}
	if o.UploadLimit <= 0 {
		o.UploadLimit = MaxUploadSize
	}
	if o.UploadURLTTL <= 0 {
		o.UploadURLTTL = time.Hour
	}
}

// Deps are what the API is built on.
type Deps struct {
	Verifier   *auth.Verifier
	Jobs       Jobs
	Service    JobService
	Catalog    Catalog
	Events     Events
	Pools      Pools
	Queue      QueueStats
	Deliveries Deliveries
	// DeadLetters serves the operator's dead-letter routes.
	DeadLetters DeadLetters
	// Limiter, when not nil, rate limits each tenant.
	Limiter Limiter
	// Files, when not nil, is the object store: artifacts get presigned
	// download URLs, and uploads presigned upload URLs.
	Files Files
	// Quotas stores tenants' quotas (the operator's quota routes).
	Quotas Quotas
	// Clients revokes a deleted tenant's API clients.
	Clients Clients
	// Tombstones, when set, voids a deleted tenant's tokens.
	Tombstones Tombstones
	// Fair, when set, is the pools' fair-share admission: weights set through
	// the quota routes reach it at once, and a waiting job's queue position
	// and start estimate come from it.
	Fair *fairq.Fair
	// Uploads records uploads (POST /v1/uploads).
	Uploads Uploads
	// Ready checks the backing servers for GET /_/health.
	Ready func(context.Context) error
	Log   *slog.Logger
	Options
}

// api holds the handlers' dependencies.
type api struct {
	Deps
	log *slog.Logger
}

// New returns the router function's HTTP handler: /v1 and /_/health.
func New(d Deps) http.Handler {
	d.Options.defaults()
	log := d.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &api{Deps: d, log: log}
	r := chi.NewRouter()
	r.NotFound(a.handle(notFound).ServeHTTP)
	r.MethodNotAllowed(a.handle(methodNotAllowed).ServeHTTP)
	r.Method(http.MethodGet, "/_/health", fnserve.Health(d.Ready))
	// The OpenAPI document is public: no token, no rate limit.
	r.Method(http.MethodGet, "/v1/openapi.json", apispec.Handler())
	r.Route("/v1", func(r chi.Router) {
		r.Use(auth.Middleware(d.Verifier, log), auth.Live(d.Tombstones, log), a.rateLimit)
		read, write, admin := auth.Require(auth.ScopeJobsRead), auth.Require(auth.ScopeJobsWrite), auth.Require(auth.ScopeAlgorithmsAdmin)
		r.With(read).Method(http.MethodGet, "/algorithms", a.handle(a.listAlgorithms))
		r.With(read).Method(http.MethodGet, "/algorithms/{name}", a.handle(a.getAlgorithm))
		r.With(admin).Method(http.MethodPut, "/algorithms/{name}", a.handle(a.putAlgorithm))
		r.With(write).Method(http.MethodPost, "/algorithms/{name}/jobs", a.handle(a.submitJob))
		r.With(write).Method(http.MethodPost, "/uploads", a.handle(a.createUpload))
		r.With(read).Method(http.MethodGet, "/jobs", a.handle(a.listJobs))
		r.With(read).Method(http.MethodGet, "/jobs/{id}", a.handle(a.getJob))
		r.With(write).Method(http.MethodPost, "/jobs/{id}/cancel", a.handle(a.cancelJob))
		r.With(write).Method(http.MethodPost, "/jobs/{id}/retry", a.handle(a.retryJob))
		r.With(read).Method(http.MethodGet, "/jobs/{id}/events", a.handle(a.jobEvents))
		r.With(read).Method(http.MethodGet, "/jobs/{id}/deliveries", a.handle(a.jobDeliveries))
		r.With(write).Method(http.MethodPost, "/jobs/{id}/deliveries/{delivery}/redeliver", a.handle(a.redeliverWebhook))
		r.With(read).Method(http.MethodGet, "/pools", a.handle(a.listPools))
		r.With(read).Method(http.MethodGet, "/usage", a.handle(a.getUsage))
		r.With(admin).Method(http.MethodGet, "/admin/tenants/{tenant}/quotas", a.handle(a.getQuotas))
		r.With(admin).Method(http.MethodPut, "/admin/tenants/{tenant}/quotas", a.handle(a.putQuotas))
		r.With(admin).Method(http.MethodDelete, "/admin/tenants/{tenant}", a.handle(a.deleteTenant))
		r.With(admin).Method(http.MethodGet, "/admin/pools/{pool}/dead-letters", a.handle(a.listDeadLetters))
		r.With(admin).Method(http.MethodPost, "/admin/pools/{pool}/dead-letters/redrive", a.handle(a.redriveAll))
		r.With(admin).Method(http.MethodPost, "/admin/pools/{pool}/dead-letters/{id}/redrive", a.handle(a.redriveDeadLetter))
	})
	return r
}

// handle adapts a handler that returns errors, translating the errors of the
// stores and services into API errors.
func (a *api) handle(h func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return webHandle(a.log, h)
}
