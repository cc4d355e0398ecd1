// Package config reads the gateway's settings from the environment through an
// injectable getenv, so tests pass a map. A bad value is an error, never a
// silent default.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/aigw/aigw/internal/egress"
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

// Load reads the configuration through getenv (os.Getenv in main).
func Load(getenv func(string) string) (Config, error) {
	c := Config{
		Addr:                   "127.0.0.1:8080",
		BinDir:                 "bin",
		StateDir:               ".aigw/gateway",
		ReadTimeout:            60 * time.Second,
		UpstreamTimeout:        5 * time.Minute,
		ReadyTimeout:           30 * time.Second,
		StopGrace:              10 * time.Second,
		HealthCheckPeriod:      2 * time.Second,
		HealthCheckTimeout:     5 * time.Second,
		HealthFailureThreshold: 3,
		AsyncMaxBody:           10 << 20,
		AsyncMaxAttempts:       5,
		LogLevel:               slog.LevelInfo,
	}
	var errs []error
	str := func(key string, dst *string) {
		if v := strings.TrimSpace(getenv(key)); v != "" {
			*dst = v
		}
	}
	dur := func(key string, dst *time.Duration, allowZero bool) {
		v := strings.TrimSpace(getenv(key))
		if v == "" {
			return
		}
		d, err := time.ParseDuration(v)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s=%q: want a duration such as 30s: %w", key, v, err))
		case d < 0 || (d == 0 && !allowZero):
			errs = append(errs, fmt.Errorf("%s=%q: must be positive", key, v))
		default:
			*dst = d
		}
	}
	integer := func(key string, dst *int64, min int64) {
		v := strings.TrimSpace(getenv(key))
		if v == "" {
			return
		}
		n, err := strconv.ParseInt(v, 10, 64)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s=%q: want an integer: %w", key, v, err))
		case n < min:
			errs = append(errs, fmt.Errorf("%s=%q: must be at least %d", key, v, min))
		default:
			*dst = n
		}
	}

	str("AIGW_GATEWAY_ADDR", &c.Addr)
	if host, port, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("AIGW_GATEWAY_ADDR=%q: want host:port: %w", c.Addr, err))
	} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		errs = append(errs, fmt.Errorf("AIGW_GATEWAY_ADDR=%q: bad port %q", c.Addr, port))
	} else if c.AsyncConsumer == "" {
		c.AsyncConsumer = "gw-" + strings.NewReplacer(".", "-", ":", "-").Replace(host) + "-" + port
	}
	str("AIGW_GATEWAY_BIN_DIR", &c.BinDir)
	str("AIGW_GATEWAY_STATE_DIR", &c.StateDir)
	c.SecretsDir = c.StateDir + "/auth"
	str("AIGW_GATEWAY_SECRETS_DIR", &c.SecretsDir)
	if v := strings.TrimSpace(getenv("AIGW_REDIS_ADDRS")); v != "" {
		addrs, err := redisconn.ParseAddrs(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("AIGW_REDIS_ADDRS: %w", err))
		}
		c.RedisAddrs = addrs
	}
	c.RedisPassword = getenv("AIGW_REDIS_PASSWORD")
	dur("AIGW_GATEWAY_READ_TIMEOUT", &c.ReadTimeout, true)
	dur("AIGW_GATEWAY_WRITE_TIMEOUT", &c.WriteTimeout, true)
	dur("AIGW_GATEWAY_UPSTREAM_TIMEOUT", &c.UpstreamTimeout, false)
	dur("AIGW_GATEWAY_READY_TIMEOUT", &c.ReadyTimeout, false)
	dur("AIGW_GATEWAY_STOP_GRACE", &c.StopGrace, false)
	dur("AIGW_GATEWAY_HEALTH_CHECK_PERIOD", &c.HealthCheckPeriod, false)
	dur("AIGW_GATEWAY_HEALTH_CHECK_TIMEOUT", &c.HealthCheckTimeout, false)
	threshold := int64(c.HealthFailureThreshold)
	integer("AIGW_GATEWAY_HEALTH_FAILURE_THRESHOLD", &threshold, 1)
	c.HealthFailureThreshold = int(threshold)
	integer("AIGW_GATEWAY_ASYNC_MAX_BODY", &c.AsyncMaxBody, 1)
	attempts := int64(c.AsyncMaxAttempts)
	integer("AIGW_GATEWAY_ASYNC_MAX_ATTEMPTS", &attempts, 1)
	c.AsyncMaxAttempts = int(attempts)
	str("AIGW_GATEWAY_ASYNC_CONSUMER", &c.AsyncConsumer)
	if nets, err := egress.ParseAllowedNets(getenv(egress.AllowedNetsEnv)); err != nil {
		errs = append(errs, err)
	} else {
		c.WebhookAllowedNets = nets
	}
	if v := strings.TrimSpace(getenv("AIGW_LOG_LEVEL")); v != "" {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			errs = append(errs, fmt.Errorf("AIGW_LOG_LEVEL=%q: want debug, info, warn or error", v))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	return c, nil
}
