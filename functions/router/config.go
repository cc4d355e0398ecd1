package router

import (
	"errors"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/aigw/aigw/internal/auth"
	"github.com/aigw/aigw/internal/egress"
	"github.com/aigw/aigw/internal/envconf"
	"github.com/aigw/aigw/internal/fnserve"
	"github.com/aigw/aigw/internal/objstore"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/internal/ratelimit"
	"github.com/aigw/aigw/internal/redisconn"
)

// Config is the router function's configuration, read by ReadConfig.
type Config struct {
	Fn fnserve.Config
	// Auth verifies tokens: AIGW_JWKS_URL (default: the auth function behind
	// the local gateway), AIGW_ISSUER (aigw), AIGW_AUDIENCE (aigw-api).
	Auth auth.VerifierConfig
	// MongoURI is the secret aigw-mongo-uri, else $AIGW_MONGO_URI; MongoDB the
	// database ($AIGW_MONGO_DB, default aigw).
	MongoURI, MongoDB string
	// RedisAddrs is the secret aigw-redis-addrs, else $AIGW_REDIS_ADDRS;
	// RedisPassword the optional secret aigw-redis-password, else
	// $AIGW_REDIS_PASSWORD.
	RedisAddrs    []string
	RedisPassword string
	// Queue is the queue's shared configuration (AIGW_QUEUE_SHARDS).
	Queue queue.Config
	// RateLimit is per tenant: AIGW_RATE_LIMIT_RPS (default 50; 0 turns rate
	// limiting off) and AIGW_RATE_LIMIT_BURST (default 2×RPS).
	RateLimit ratelimit.Limit
	// WebhookAllowedNets are the non-public networks a job's webhook may name
	// (AIGW_WEBHOOK_ALLOWED_NETS: CIDRs or IPs; default none, public addresses only).
	WebhookAllowedNets []netip.Prefix
	// S3 is the object store artifacts are downloaded from (AIGW_S3_*, each
	// from its secret aigw-s3-* first); without an endpoint, artifacts have
	// no URL.
	S3 objstore.Config
	// QuotaCacheTTL is how long the router keeps a tenant's quotas and its
	// GPU use within a quota's window before reading them again
	// (AIGW_QUOTA_CACHE_TTL, default 5s).
	QuotaCacheTTL time.Duration
	// Options: AIGW_MAX_WAIT (60s), AIGW_BODY_LIMIT (bytes, 1048576),
	// AIGW_SSE_HEARTBEAT (15s), AIGW_PUBLIC_URL, AIGW_ARTIFACT_URL_TTL (15m).
	Options
}

// Defaults of ReadConfig.
const (
	DefaultJWKSURL  = envconf.DefaultJWKSURL
	DefaultIssuer   = envconf.DefaultIssuer
	DefaultAudience = envconf.DefaultAudience
	DefaultMongoDB  = envconf.DefaultMongoDB
	DefaultRPS      = 50
)

// ReadConfig reads Config through getenv and the function's secrets; a bad
// value is an error naming the variable (all of them, joined).
func ReadConfig(getenv func(string) string) (Config, error) {
	r := envconf.FromGetenv(getenv)
	c := Read(r)
	return c, r.Err()
}

// Read reads Config through r (errors stay in r).
func Read(r *envconf.Reader) Config {
	c := Config{Fn: fnserve.Read(r)}
	c.Auth.JWKSURL, c.Auth.Issuer, c.Auth.Audience = r.Verifier()
	c.MongoURI = r.MongoURI(true)
	c.MongoDB = r.MongoDB()
	c.RedisAddrs = r.RedisAddrs(true, redisconn.ParseAddrs)
	c.RedisPassword = r.RedisPassword()
	c.Queue = queue.ConfigFromEnv(r)
	c.MaxWait = r.Duration("AIGW_MAX_WAIT", 60*time.Second, time.Second, 0)
	c.Heartbeat = r.Duration("AIGW_SSE_HEARTBEAT", 15*time.Second, time.Second, 0)
	c.BodyLimit = r.Int64("AIGW_BODY_LIMIT", 1<<20, 1024, 0)
	c.PublicURL = envconf.Parse(r, "AIGW_PUBLIC_URL", "", func(v string) (string, error) {
		u, err := url.Parse(v)
		absURL := err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.RawQuery == "" && u.Fragment == ""
		if !absURL && !plainPath(v) {
			return "", errors.New("want an http(s) base URL such as https://api.example.com/function/router, or a path such as /function/router")
		}
		return strings.TrimSuffix(v, "/"), nil
	})
	c.WebhookAllowedNets = envconf.ParseNamed(r, egress.AllowedNetsEnv, nil, egress.ParseAllowedNets)
	c.S3 = objstore.ReadConfig(r)
	// SigV4 presigned URLs live at most 7 days.
	c.ArtifactURLTTL = r.Duration("AIGW_ARTIFACT_URL_TTL", 15*time.Minute, time.Second, 7*24*time.Hour)
	c.UploadLimit = envconf.Parse(r, "AIGW_UPLOAD_LIMIT", int64(MaxUploadSize), parseSize)
	c.UploadLimits = envconf.Parse(r, "AIGW_UPLOAD_LIMITS", nil, parseUploadLimits)
	c.UploadURLTTL = r.Duration("AIGW_UPLOAD_URL_TTL", time.Hour, time.Second, 7*24*time.Hour)
	rps := r.Float("AIGW_RATE_LIMIT_RPS", DefaultRPS, 0, 1e6)
	c.QuotaCacheTTL = r.Duration("AIGW_QUOTA_CACHE_TTL", 5*time.Second, time.Millisecond, time.Hour)
	c.RateLimit = ratelimit.Limit{Rate: rps, Burst: r.Int("AIGW_RATE_LIMIT_BURST", max(1, int(2*rps)), 1, 0)}
	return c
}
