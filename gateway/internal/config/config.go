// Package config reads the gateway's settings from the environment through an
// injectable getenv, so tests pass a map. A bad value is an error, never a
// silent default.
package config

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/aigw/aigw/internal/egress"
	"github.com/aigw/aigw/internal/envconf"
	"github.com/aigw/aigw/internal/logging"
	"github.com/aigw/aigw/internal/redisconn"
)

// Config is every setting of aigw-gateway.
type Config struct {
	// Addr is the listen address, host:port (AIGW_GATEWAY_ADDR, default 127.0.0.1:8080).
	Addr string
	// BinDir holds the executables that images resolve to (AIGW_GATEWAY_BIN_DIR, default ./bin).
	BinDir string
	// StateDir holds secrets, per-function secret dirs and deployments.json
	// (AIGW_GATEWAY_STATE_DIR, default .aigw/gateway).
	StateDir string
	// SecretsDir holds basic-auth-user and basic-auth-password
	// (AIGW_GATEWAY_SECRETS_DIR, default <StateDir>/auth); generated when missing.
	SecretsDir string
	// RedisAddrs are the Redis Cluster seeds for /async-function (AIGW_REDIS_ADDRS);
	// empty disables async invocation.
	RedisAddrs    []string
	RedisPassword string // AIGW_REDIS_PASSWORD

	ReadTimeout     time.Duration // AIGW_GATEWAY_READ_TIMEOUT, default 60s
	WriteTimeout    time.Duration // AIGW_GATEWAY_WRITE_TIMEOUT, default 0 (none: streams)
	UpstreamTimeout time.Duration // AIGW_GATEWAY_UPSTREAM_TIMEOUT, default 5m
	ReadyTimeout    time.Duration // AIGW_GATEWAY_READY_TIMEOUT, default 30s
	StopGrace       time.Duration // AIGW_GATEWAY_STOP_GRACE, default 10s

	// Health checks of ready replicas: every HealthCheckPeriod
	// (AIGW_GATEWAY_HEALTH_CHECK_PERIOD, default 2s), each within
	// HealthCheckTimeout (AIGW_GATEWAY_HEALTH_CHECK_TIMEOUT, default 5s);
	// HealthFailureThreshold failures in a row (AIGW_GATEWAY_HEALTH_FAILURE_THRESHOLD,
	// default 3) take a replica out of the rotation (non-200) or restart it
	// (no answer).
	HealthCheckPeriod      time.Duration
	HealthCheckTimeout     time.Duration
	HealthFailureThreshold int

	// AsyncMaxBody is the largest async request body kept in Redis
	// (AIGW_GATEWAY_ASYNC_MAX_BODY, bytes, default 10 MiB).
	AsyncMaxBody int64
	// AsyncMaxAttempts bounds invocation attempts of one async call
	// (AIGW_GATEWAY_ASYNC_MAX_ATTEMPTS, default 5).
	AsyncMaxAttempts int
	// AsyncConsumer names this gateway in the consumer group
	// (AIGW_GATEWAY_ASYNC_CONSUMER, default gw-<host>-<port>); a restarted
	// gateway with the same name resumes its own pending calls at once.
	AsyncConsumer string
	// WebhookAllowedNets are the non-public networks an async call's
	// X-Callback-Url may reach (AIGW_WEBHOOK_ALLOWED_NETS: CIDRs or IPs, as
	// for the router and orchestrator; default none, public addresses only).
	WebhookAllowedNets []netip.Prefix

	LogLevel slog.Level // AIGW_LOG_LEVEL: debug, info, warn, error (default info)
}

// Load reads the configuration through getenv (os.Getenv in main); every bad
// value is reported, joined.
func Load(getenv func(string) string) (Config, error) {
	r := envconf.FromGetenv(getenv)
	c := Read(r)
	if err := r.Err(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Read reads the configuration through r (errors stay in r).
func Read(r *envconf.Reader) Config {
	c := Config{
		Addr: envconf.Parse(r, "AIGW_GATEWAY_ADDR", "127.0.0.1:8080", func(v string) (string, error) {
			_, port, err := net.SplitHostPort(v)
			if err != nil {
				return "", fmt.Errorf("want host:port: %w", err)
			}
			if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
				return "", fmt.Errorf("bad port %q", port)
			}
			return v, nil
		}),
		BinDir:   r.String("AIGW_GATEWAY_BIN_DIR", "bin"),
		StateDir: r.String("AIGW_GATEWAY_STATE_DIR", ".aigw/gateway"),
	}
	host, port, _ := net.SplitHostPort(c.Addr)
	c.SecretsDir = r.String("AIGW_GATEWAY_SECRETS_DIR", c.StateDir+"/auth")
	c.RedisAddrs = r.RedisAddrs(false, redisconn.ParseAddrs)
	c.RedisPassword = r.RedisPassword()
	c.ReadTimeout = r.Duration("AIGW_GATEWAY_READ_TIMEOUT", 60*time.Second, 0, 0)
	c.WriteTimeout = r.Duration("AIGW_GATEWAY_WRITE_TIMEOUT", 0, 0, 0)
	c.UpstreamTimeout = r.Duration("AIGW_GATEWAY_UPSTREAM_TIMEOUT", 5*time.Minute, envconf.Positive, 0)
	c.ReadyTimeout = r.Duration("AIGW_GATEWAY_READY_TIMEOUT", 30*time.Second, envconf.Positive, 0)
	c.StopGrace = r.Duration("AIGW_GATEWAY_STOP_GRACE", 10*time.Second, envconf.Positive, 0)
	c.HealthCheckPeriod = r.Duration("AIGW_GATEWAY_HEALTH_CHECK_PERIOD", 2*time.Second, envconf.Positive, 0)
	c.HealthCheckTimeout = r.Duration("AIGW_GATEWAY_HEALTH_CHECK_TIMEOUT", 5*time.Second, envconf.Positive, 0)
	c.HealthFailureThreshold = r.Int("AIGW_GATEWAY_HEALTH_FAILURE_THRESHOLD", 3, 1, 0)
	c.AsyncMaxBody = r.Int64("AIGW_GATEWAY_ASYNC_MAX_BODY", 10<<20, 1, 0)
	c.AsyncMaxAttempts = r.Int("AIGW_GATEWAY_ASYNC_MAX_ATTEMPTS", 5, 1, 0)
	c.AsyncConsumer = r.String("AIGW_GATEWAY_ASYNC_CONSUMER", "gw-"+strings.NewReplacer(".", "-", ":", "-").Replace(host)+"-"+port)
	c.WebhookAllowedNets = envconf.ParseNamed(r, egress.AllowedNetsEnv, nil, egress.ParseAllowedNets)
	c.LogLevel = logging.ReadLevel(r)
	return c
}
