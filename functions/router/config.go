package router

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aigw/aigw/internal/auth"
	"github.com/aigw/aigw/internal/egress"
	"github.com/aigw/aigw/internal/fnserve"
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
	// RedisPassword the optional secret aigw-redis-password.
	RedisAddrs    []string
	RedisPassword string
	// RateLimit is per tenant: AIGW_RATE_LIMIT_RPS (default 50; 0 turns rate
	// limiting off) and AIGW_RATE_LIMIT_BURST (default 2×RPS).
	RateLimit ratelimit.Limit
	// WebhookAllowedNets are the non-public networks a job's webhook may name
	// (AIGW_WEBHOOK_ALLOWED_NETS: CIDRs or IPs; default none, public addresses only).
	WebhookAllowedNets []netip.Prefix
	// Options: AIGW_MAX_WAIT (60s), AIGW_BODY_LIMIT (bytes, 1048576),
	// AIGW_SSE_HEARTBEAT (15s), AIGW_PUBLIC_URL.
	Options
}

// Defaults of ReadConfig.
const (
	DefaultJWKSURL  = "http://127.0.0.1:8080/function/auth/.well-known/jwks.json"
	DefaultIssuer   = "aigw"
	DefaultAudience = "aigw-api"
	DefaultMongoDB  = "aigw"
	DefaultRPS      = 50
)

// ReadConfig reads Config through getenv and the function's secrets; a bad
// value is an error naming the variable.
func ReadConfig(getenv func(string) string) (Config, error) {
	fn, err := fnserve.ReadConfig(getenv)
	if err != nil {
		return Config{}, err
	}
	c := Config{
		Fn: fn,
		Auth: auth.VerifierConfig{
			JWKSURL:  or(getenv("AIGW_JWKS_URL"), DefaultJWKSURL),
			Issuer:   or(getenv("AIGW_ISSUER"), DefaultIssuer),
			Audience: or(getenv("AIGW_AUDIENCE"), DefaultAudience),
		},
		MongoDB: or(getenv("AIGW_MONGO_DB"), DefaultMongoDB),
		Options: Options{MaxWait: 60 * time.Second, BodyLimit: 1 << 20, Heartbeat: 15 * time.Second},
	}
	if u, err := url.Parse(c.Auth.JWKSURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return c, fmt.Errorf("AIGW_JWKS_URL=%q: want an http(s) URL", c.Auth.JWKSURL)
	}
	if c.MongoURI, err = fn.OptionalSecret("aigw-mongo-uri", getenv("AIGW_MONGO_URI")); err != nil {
		return c, err
	}
	if !strings.HasPrefix(c.MongoURI, "mongodb://") && !strings.HasPrefix(c.MongoURI, "mongodb+srv://") {
		return c, errors.New("MongoDB URI: create the secret aigw-mongo-uri or set AIGW_MONGO_URI to a mongodb:// URI")
	}
	addrs, err := fn.OptionalSecret("aigw-redis-addrs", getenv("AIGW_REDIS_ADDRS"))
	if err != nil {
		return c, err
	}
	if c.RedisAddrs, err = redisconn.ParseAddrs(addrs); err != nil {
		return c, fmt.Errorf("redis addresses (secret aigw-redis-addrs or AIGW_REDIS_ADDRS): %w", err)
	}
	if c.RedisPassword, err = fn.OptionalSecret("aigw-redis-password", ""); err != nil {
		return c, err
	}
	if c.MaxWait, err = duration(getenv, "AIGW_MAX_WAIT", c.MaxWait, time.Second); err != nil {
		return c, err
	}
	if c.Heartbeat, err = duration(getenv, "AIGW_SSE_HEARTBEAT", c.Heartbeat, time.Second); err != nil {
		return c, err
	}
	if v := getenv("AIGW_BODY_LIMIT"); v != "" {
		if c.BodyLimit, err = strconv.ParseInt(v, 10, 64); err != nil || c.BodyLimit < 1024 {
			return c, fmt.Errorf("AIGW_BODY_LIMIT=%q: want a number of bytes, at least 1024", v)
		}
	}
	if v := getenv("AIGW_PUBLIC_URL"); v != "" {
		u, err := url.Parse(v)
		absURL := err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.RawQuery == "" && u.Fragment == ""
		if !absURL && !plainPath(v) {
			return c, fmt.Errorf("AIGW_PUBLIC_URL=%q: want an http(s) base URL such as https://api.example.com/function/router, or a path such as /function/router", v)
		}
		c.PublicURL = strings.TrimSuffix(v, "/")
	}
	if c.WebhookAllowedNets, err = egress.ParseAllowedNets(getenv(egress.AllowedNetsEnv)); err != nil {
		return c, err
	}
	rps := float64(DefaultRPS)
	if v := getenv("AIGW_RATE_LIMIT_RPS"); v != "" {
		if rps, err = strconv.ParseFloat(v, 64); err != nil || rps < 0 || rps > 1e6 {
			return c, fmt.Errorf("AIGW_RATE_LIMIT_RPS=%q: want requests per second per tenant (0: no limit)", v)
		}
	}
	c.RateLimit = ratelimit.Limit{Rate: rps, Burst: max(1, int(2*rps))}
	if v := getenv("AIGW_RATE_LIMIT_BURST"); v != "" {
		if c.RateLimit.Burst, err = strconv.Atoi(v); err != nil || c.RateLimit.Burst < 1 {
			return c, fmt.Errorf("AIGW_RATE_LIMIT_BURST=%q: want a whole number ≥ 1", v)
		}
	}
	return c, nil
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// duration reads a Go duration of at least least.
func duration(getenv func(string) string, name string, def, least time.Duration) (time.Duration, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < least {
		return 0, fmt.Errorf("%s=%q: want a duration of at least %s, such as 30s", name, v, least)
	}
	return d, nil
}
