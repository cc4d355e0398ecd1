// Package fnserve serves one aigw function under the OpenFaaS function
// contract: HTTP on $PORT (default 8080), GET /_/health, graceful shutdown on
// SIGTERM, secrets read from files in the OpenFaaS secrets directory. Every
// function also serves its Prometheus metrics at GET /_/metrics, HTTP requests
// by route and status included (package httpmetrics).
package fnserve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aigw/aigw/internal/envconf"
	"github.com/aigw/aigw/internal/httpmetrics"
)

// DefaultSecretsDir is where OpenFaaS mounts a function's secrets.
const DefaultSecretsDir = "/var/openfaas/secrets"

// MetricsPath is where every function serves its Prometheus metrics. The
// gateway does not proxy it (/function/NAME/_/metrics is a 404): Prometheus
// scrapes the replicas themselves.
const MetricsPath = "/_/metrics"

// Config is what every function reads from its environment.
type Config struct {
	// Addr is the listen address: ":"+$PORT, or $AIGW_LISTEN_ADDR when set.
	Addr string
	// SecretsDir is $AIGW_SECRETS_DIR, default /var/openfaas/secrets.
	SecretsDir string
	// ShutdownGrace bounds draining on SIGTERM ($AIGW_SHUTDOWN_GRACE, default 10s).
	ShutdownGrace time.Duration
	// Metrics is the registry served at MetricsPath, with the HTTP metrics
	// added to it; nil: a new one with the Go and process collectors. A
	// function with metrics of its own registers them here.
	Metrics *prometheus.Registry
}

// Read reads Config through r (errors stay in r) and points r's secrets at
// the function's secrets directory.
func Read(r *envconf.Reader) Config {
	c := Config{Addr: ":8080"}
	if p := envconf.Parse(r, "PORT", 0, func(v string) (int, error) {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 65535 {
			return 0, errors.New("want a port number 1-65535")
		}
		return n, nil
	}); p != 0 {
		c.Addr = ":" + strconv.Itoa(p)
	}
	c.Addr = envconf.Parse(r, "AIGW_LISTEN_ADDR", c.Addr, func(v string) (string, error) {
		if _, _, err := net.SplitHostPort(v); err != nil {
			return "", fmt.Errorf("want host:port: %v", err)
		}
		return v, nil
	})
	c.SecretsDir = r.String("AIGW_SECRETS_DIR", DefaultSecretsDir)
	c.ShutdownGrace = r.Duration("AIGW_SHUTDOWN_GRACE", 10*time.Second, 0, 0)
	r.SetSecretsDir(c.SecretsDir)
	return c
}

// Secret reads the secret name from the secrets directory, trimmed of
// surrounding white space. A missing secret is an error naming the file.
func (c Config) Secret(name string) (string, error) {
	if name == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
		return "", fmt.Errorf("invalid secret name %q", name)
	}
	b, err := os.ReadFile(filepath.Join(c.SecretsDir, name))
	if err != nil {
		return "", fmt.Errorf("secret %s: %w (set AIGW_SECRETS_DIR or create the OpenFaaS secret)", name, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// OptionalSecret is Secret, but a missing file yields def.
func (c Config) OptionalSecret(name, def string) (string, error) {
	v, err := c.Secret(name)
	if errors.Is(err, os.ErrNotExist) {
		return def, nil
	}
	return v, err
}

// Health answers the function's health check; ready, when not nil, decides 200
// or 503 (e.g. a ping of the function's backing servers).
func Health(ready func(context.Context) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if ready != nil {
			if err := ready(r.Context()); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprintf(w, "not ready: %v\n", err)
				return
			}
		}
		fmt.Fprintln(w, "ok")
	}
}

// Serve serves h on c.Addr until ctx ends (e.g. signal.NotifyContext on
// SIGTERM), then drains in-flight requests for up to c.ShutdownGrace. h must
// route GET /_/health (see Health).
func Serve(ctx context.Context, log *slog.Logger, c Config, h http.Handler) error {
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", c.Addr, err)
	}
	return ServeListener(ctx, log, c, ln, h)
}

// WithMetrics serves reg at MetricsPath and counts and times the requests h
// serves (httpmetrics); reg nil: a new registry (httpmetrics.NewRegistry).
func WithMetrics(reg *prometheus.Registry, h http.Handler) http.Handler {
	if reg == nil {
		reg = httpmetrics.NewRegistry()
	}
	metrics := httpmetrics.Handler(reg)
	counted := httpmetrics.New(reg).Middleware(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != MetricsPath {
			counted.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		metrics.ServeHTTP(w, r)
	})
}

// ServeListener is Serve on an open listener (tests listen on 127.0.0.1:0).
func ServeListener(ctx context.Context, log *slog.Logger, c Config, ln net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           WithMetrics(c.Metrics, h),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("serving", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "grace", c.ShutdownGrace)
	sctx, cancel := context.WithTimeout(context.Background(), c.ShutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
