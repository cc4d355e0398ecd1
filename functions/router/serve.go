package router

import (
	"context"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/aigw/aigw/functions/authfn/clients"
	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/auth"
	"github.com/aigw/aigw/internal/egress"
	"github.com/aigw/aigw/internal/events"
	"github.com/aigw/aigw/internal/fairq"
	"github.com/aigw/aigw/internal/fnserve"
	"github.com/aigw/aigw/internal/inputfiles"
	"github.com/aigw/aigw/internal/jobstore"
	"github.com/aigw/aigw/internal/mongoconn"
	"github.com/aigw/aigw/internal/objstore"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/internal/quota"
	"github.com/aigw/aigw/internal/ratelimit"
	"github.com/aigw/aigw/internal/readiness"
	"github.com/aigw/aigw/internal/redisconn"
	"github.com/aigw/aigw/internal/registry"
	"github.com/aigw/aigw/internal/submit"
	"github.com/aigw/aigw/internal/uploads"
	"github.com/aigw/aigw/internal/webhook"
)

// Serve runs the router function until ctx ends.
func Serve(ctx context.Context, log *slog.Logger, getenv func(string) string) error {
	cfg, err := ReadConfig(getenv)
	if err != nil {
		return err
	}
	mc, err := mongoconn.Open(ctx, mongoconn.Options{URI: cfg.MongoURI})
	if err != nil {
		return err
	}
	defer func() { _ = mc.Disconnect(context.WithoutCancel(ctx)) }()
	rdb, err := redisconn.Open(ctx, redisconn.Options{Addrs: cfg.RedisAddrs, Password: cfg.RedisPassword})
	if err != nil {
		return err
	}
	defer func() { _ = rdb.Close() }()
	v, err := auth.NewVerifier(cfg.Auth)
	if err != nil {
		return err
	}
	db := mc.Database(cfg.MongoDB)
	jobs, err := jobstore.New(ctx, db, jobstore.Options{})
	if err != nil {
		return err
	}
	d, err := Build(db, jobs, rdb, v, cfg, log)
	if err != nil {
		return err
	}
	if t, ok := d.Tombstones.(tombstones); ok {
		go t.KeepFollowing(ctx, t.rdb, log)
	}
	return fnserve.Serve(ctx, log, cfg.Fn, New(d))
}

// tombstones is the quota cache with the Redis Cluster that carries its
// announcements (quota.Cache.Changed and Follow).
type tombstones struct {
	*quota.Cache
	rdb redis.UniversalClient
}

func (t tombstones) Changed(ctx context.Context, tenant string) error {
	return t.Cache.Changed(ctx, t.rdb, tenant)
}

// Build wires the API's dependencies on open clients and the job store.
func Build(db *mongo.Database, jobs *jobstore.Store, rdb redis.UniversalClient, v *auth.Verifier, cfg Config, log *slog.Logger) (Deps, error) {
	algos := algorithm.NewStore(db)
	q := queue.New(rdb, cfg.Queue)
	ev := events.New(rdb, events.Config{})
	ups := uploads.New(db)
	ictx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	quotas, err := quota.NewStore(ictx, db)
	if err != nil {
		return Deps{}, err
	}
	apiClients, err := clients.NewStore(ictx, db, nil)
	if err != nil {
		return Deps{}, err
	}
	qcache := quota.NewCache(quotas, cfg.QuotaCacheTTL)
	fair := fairq.New(rdb, q, fairq.Config{Policy: qcache.FairPolicy, Log: log})
	d := Deps{
		Verifier: v, Jobs: jobs, Catalog: algos, Events: ev, Pools: registry.New(rdb), Queue: q, DeadLetters: q,
		Deliveries: webhook.NewStore(db), Log: log, Options: cfg.Options,
		Service: submit.New(submit.Config{Jobs: jobs, Algorithms: algos, Queue: q, Events: ev, Log: log,
			Webhooks: egress.NewGuard(cfg.WebhookAllowedNets),
			Files:    &inputfiles.Resolver{Uploads: ups, URLs: egress.NewGuard(cfg.WebhookAllowedNets)},
			Admit:    quota.NewAdmission(qcache, jobs, cfg.QuotaCacheTTL).Admit,
			Fair:     fair}),
		Quotas:     quotas,
		Clients:    apiClients,
		Tombstones: tombstones{qcache, rdb},
		Fair:       fair,
		Uploads:    ups,
		Ready:      func(ctx context.Context) error { return readiness.Stores(ctx, time.Second, db, rdb) },
	}
	if cfg.S3.Enabled() {
		obj, err := objstore.New(cfg.S3)
		if err != nil {
			return Deps{}, err
		}
		d.Files = obj
	}
	if cfg.RateLimit.Rate > 0 {
		l, err := ratelimit.New(rdb, cfg.RateLimit)
		if err != nil {
			return Deps{}, err
		}
		d.Limiter = l
	}
	return d, nil
}
