// Package orchestrator is the orchestrator function: pipelines API, webhook
// delivery, reaper and reconciler. Its periodic work runs on POST /tick (driven
// by a cron, with the admin token) and, when AIGW_ORCHESTRATOR_INTERVAL is set,
// on an internal ticker; a Redis lock keeps two replicas from ticking at once.
package orchestrator

import (
	"net/netip"
	"time"

	"github.com/aigw/aigw/internal/egress"
	"github.com/aigw/aigw/internal/envconf"
	"github.com/aigw/aigw/internal/fnserve"
	"github.com/aigw/aigw/internal/objstore"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/internal/redisconn"
)

// Config is the orchestrator's configuration.
type Config struct {
	Serve fnserve.Config

	// Interval runs a tick every Interval when > 0 (AIGW_ORCHESTRATOR_INTERVAL, default 0: off).
	Interval time.Duration
	// WebhookTimeout bounds one webhook request (AIGW_WEBHOOK_TIMEOUT, default 10s).
	WebhookTimeout time.Duration
	// WebhookMaxAge is how long a webhook is retried (AIGW_WEBHOOK_MAX_AGE, default 24h).
	WebhookMaxAge time.Duration
	// WebhookAllowedNets are the non-public networks webhooks may reach
	// (AIGW_WEBHOOK_ALLOWED_NETS: CIDRs or IPs; default none, public addresses only).
	WebhookAllowedNets []netip.Prefix
	// ReaperGrace is added to a job's execution timeout before it counts as lost (AIGW_REAPER_GRACE, default 30s).
	ReaperGrace time.Duration
	// Retention: AIGW_RETENTION (default 720h; 0 keeps finished jobs' data for
	// ever) and AIGW_RETENTION_TENANTS (tenant=duration pairs).
	Retention Retention
	// UploadGrace is how long an upload no job referenced is kept after its
	// upload URL expired (AIGW_UPLOAD_GRACE, default 24h); referenced ones
	// are kept for their tenant's retention after the last reference.
	UploadGrace time.Duration
	// S3 is the object store whose artifacts the purge deletes (AIGW_S3_*).
	S3 objstore.Config
	// ReconcileAge is how long a queued job may be missing from its stream before it
	// is enqueued again (AIGW_RECONCILE_AGE, default 5s).
	ReconcileAge time.Duration

	// JWKSURL, Issuer, Audience verify tokens: AIGW_JWKS_URL (default: the auth
	// function behind the local gateway), AIGW_ISSUER (aigw), AIGW_AUDIENCE
	// (aigw-api), as for the router.
	JWKSURL, Issuer, Audience string
	MongoDB                   string // AIGW_MONGO_DB, default "aigw"
	// Queue is the queue's shared configuration (AIGW_QUEUE_SHARDS).
	Queue queue.Config

	// From secrets (aigw-redis-addrs, aigw-redis-password, aigw-mongo-uri,
	// aigw-admin-token), else AIGW_REDIS_ADDRS, AIGW_REDIS_PASSWORD, AIGW_MONGO_URI,
	// AIGW_ADMIN_TOKEN.
	RedisAddrs    []string
	RedisPassword string
	MongoURI      string
	AdminToken    string
}

// ReadConfig reads Config through getenv (and the secrets directory it names);
// bad values are errors, all of them joined.
func ReadConfig(getenv func(string) string) (Config, error) {
	r := envconf.FromGetenv(getenv)
	c := Read(r)
	return c, r.Err()
}

// Read reads Config through r (errors stay in r).
func Read(r *envconf.Reader) Config {
	c := Config{Serve: fnserve.Read(r)}
	c.JWKSURL, c.Issuer, c.Audience = r.Verifier()
	c.MongoURI = r.MongoURI(true)
	c.MongoDB = r.MongoDB()
	c.RedisAddrs = r.RedisAddrs(true, redisconn.ParseAddrs)
	c.RedisPassword = r.RedisPassword()
	c.AdminToken = r.RequiredSecret(envconf.SecretAdminToken, envconf.EnvAdminToken)
	c.Queue = queue.ConfigFromEnv(r)
	c.WebhookAllowedNets = envconf.ParseNamed(r, egress.AllowedNetsEnv, nil, egress.ParseAllowedNets)
	c.Interval = r.Duration("AIGW_ORCHESTRATOR_INTERVAL", 0, 0, 0)
	c.WebhookTimeout = r.Duration("AIGW_WEBHOOK_TIMEOUT", 10*time.Second, envconf.Positive, 0)
	c.WebhookMaxAge = r.Duration("AIGW_WEBHOOK_MAX_AGE", 24*time.Hour, envconf.Positive, 0)
	c.ReaperGrace = r.Duration("AIGW_REAPER_GRACE", 30*time.Second, 0, 0)
	c.ReconcileAge = r.Duration("AIGW_RECONCILE_AGE", 5*time.Second, 0, 0)
	c.Retention.Default = r.Duration("AIGW_RETENTION", 30*24*time.Hour, 0, 0)
	c.Retention.Tenants = envconf.Parse(r, "AIGW_RETENTION_TENANTS", nil, ParseRetentions)
	c.UploadGrace = r.Duration("AIGW_UPLOAD_GRACE", 24*time.Hour, 0, 0)
	c.S3 = objstore.ReadConfig(r)
	return c
}
