// Package orchestrator is the orchestrator function: pipelines API, webhook
// delivery, reaper and reconciler. Its periodic work runs on POST /tick (driven
// by a cron, with the admin token) and, when AIGW_ORCHESTRATOR_INTERVAL is set,
// on an internal ticker; a Redis lock keeps two replicas from ticking at once.
package orchestrator

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/aigw/aigw/internal/egress"
	"github.com/aigw/aigw/internal/fnserve"
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
	// ReconcileAge is how long a queued job may be missing from its stream before it
	// is enqueued again (AIGW_RECONCILE_AGE, default 5s).
	ReconcileAge time.Duration

	JWKSURL, Issuer, Audience string // AIGW_JWKS_URL, AIGW_ISSUER, AIGW_AUDIENCE
	MongoDB                   string // AIGW_MONGO_DB, default "aigw"

	// From secrets (aigw-redis-addrs, aigw-redis-password, aigw-mongo-uri,
	// aigw-admin-token), else AIGW_REDIS_ADDRS, AIGW_REDIS_PASSWORD, AIGW_MONGO_URI,
	// AIGW_ADMIN_TOKEN.
	RedisAddrs    []string
	RedisPassword string
	MongoURI      string
	AdminToken    string
}

// ReadConfig reads Config through getenv (and the secrets directory it names);
// bad values are errors.
func ReadConfig(getenv func(string) string) (Config, error) {
	serve, err := fnserve.ReadConfig(getenv)
	if err != nil {
		return Config{}, err
	}
	c := Config{Serve: serve, MongoDB: "aigw", JWKSURL: getenv("AIGW_JWKS_URL"),
		Issuer: getenv("AIGW_ISSUER"), Audience: getenv("AIGW_AUDIENCE")}
	if v := getenv("AIGW_MONGO_DB"); v != "" {
		c.MongoDB = v
	}
	var errs []error
	if c.WebhookAllowedNets, err = egress.ParseAllowedNets(getenv(egress.AllowedNetsEnv)); err != nil {
		errs = append(errs, err)
	}
	durations := []struct {
		name string
		dst  *time.Duration
		def  time.Duration
		zero bool // 0 allowed
	}{
		{"AIGW_ORCHESTRATOR_INTERVAL", &c.Interval, 0, true},
		{"AIGW_WEBHOOK_TIMEOUT", &c.WebhookTimeout, 10 * time.Second, false},
		{"AIGW_WEBHOOK_MAX_AGE", &c.WebhookMaxAge, 24 * time.Hour, false},
		{"AIGW_REAPER_GRACE", &c.ReaperGrace, 30 * time.Second, true},
		{"AIGW_RECONCILE_AGE", &c.ReconcileAge, 5 * time.Second, true},
	}
	for _, d := range durations {
		*d.dst = d.def
		v := getenv(d.name)
		if v == "" {
			continue
		}
		n, err := time.ParseDuration(v)
		if err != nil || n < 0 || (n == 0 && !d.zero) {
			errs = append(errs, fmt.Errorf("%s=%q: want a positive duration such as %s", d.name, v, d.def))
			continue
		}
		*d.dst = n
	}
	secret := func(name, env string, required bool) string {
		v, err := serve.OptionalSecret(name, getenv(env))
		if err != nil {
			errs = append(errs, err)
		} else if v == "" && required {
			errs = append(errs, fmt.Errorf("missing secret %s (file in %s) or %s", name, serve.SecretsDir, env))
		}
		return v
	}
	addrs := secret("aigw-redis-addrs", "AIGW_REDIS_ADDRS", true)
	c.RedisPassword = secret("aigw-redis-password", "AIGW_REDIS_PASSWORD", false)
	c.MongoURI = secret("aigw-mongo-uri", "AIGW_MONGO_URI", true)
	c.AdminToken = secret("aigw-admin-token", "AIGW_ADMIN_TOKEN", true)
	if addrs != "" {
		if c.RedisAddrs, err = redisconn.ParseAddrs(addrs); err != nil {
			errs = append(errs, fmt.Errorf("redis addresses: %w", err))
		}
	}
	if c.JWKSURL == "" {
		errs = append(errs, errors.New("AIGW_JWKS_URL is required (the auth function's /.well-known/jwks.json)"))
	}
	if c.Issuer == "" || c.Audience == "" {
		errs = append(errs, errors.New("AIGW_ISSUER and AIGW_AUDIENCE are required (as the auth function issues tokens)"))
	}
	return c, errors.Join(errs...)
}
