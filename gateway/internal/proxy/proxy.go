// Package proxy forwards /function/{name}/… to a function's ready replicas:
// round-robin, another replica when one refuses the connection, X-Forwarded-*
// headers (X-Forwarded-Prefix: /function/{name} among them), streaming
// responses passed through unbuffered, invocations counted.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"path"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aigw/aigw/gateway/internal/fnregistry"
	"github.com/aigw/aigw/gateway/internal/procs"
	"github.com/aigw/aigw/internal/fnserve"
	"github.com/aigw/aigw/internal/web"
)

// Functions finds a deployed function.
type Functions interface {
	Lookup(name string) (*fnregistry.Function, bool)
}

var (
	// ErrUnknownFunction: no function of that name is deployed.
	ErrUnknownFunction = errors.New("function not found")
	// ErrNoReplica: the function has no ready replica.
	ErrNoReplica = errors.New("no ready replica")
)

// Proxy forwards requests to functions.
type Proxy struct {
	fns       Functions
	timeout   time.Duration
	metrics   *Metrics
	log       *slog.Logger
	transport *http.Transport
	rp        *httputil.ReverseProxy
	// series caches the metrics' label handles per function and status code:
	// WithLabelValues hashes the labels and takes a lock on every call.
	series sync.Map // seriesKey → *series
}

type seriesKey struct {
	name   string
	status int
}

type series struct {
	invocations prometheus.Counter
	seconds     prometheus.Observer
}

// bufferPool lends ReverseProxy its copy buffers; without one it allocates
// 32 KiB per response, most of what a proxied request allocates.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }

// HeaderForwardedPrefix tells a function the path under which the gateway
// serves it (/function/{name}), as Traefik and Spring name it.
const HeaderForwardedPrefix = "X-Forwarded-Prefix"

type fnKey struct{}

// New returns a proxy; timeout bounds each invocation, start to end of the response.
func New(fns Functions, timeout time.Duration, metrics *Metrics, log *slog.Logger) *Proxy {
	p := &Proxy{
		fns: fns, timeout: timeout, metrics: metrics, log: log,
		transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        1024,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     90 * time.Second,
		},
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = "replica" // the transport picks the replica
			pr.Out.Host = ""
			pr.SetXForwarded()
			// The path the client used up to the function's own paths, so a
			// function can write Location headers the client can follow.
			pr.Out.Header.Set(HeaderForwardedPrefix, "/function/"+pr.In.PathValue("name"))
		},
		Transport:     roundTripper{p},
		FlushInterval: 0, // event streams and unsized bodies still flush at once (httputil)
		BufferPool:    &bufferPool{},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			web.WriteNegotiated(w, r, log, upstreamError(r.Context(), r.Context().Value(fnKey{}).(*fnregistry.Function).Name(), err))
		},
	}
	return p
}

// Close closes idle connections to replicas.
func (p *Proxy) Close() { p.transport.CloseIdleConnections() }

// SplitName takes "name" or "name.openfaas-fn" (go-sdk appends the namespace).
func SplitName(s string) (string, error) {
	name, ns, found := strings.Cut(s, ".")
	if found {
		if err := fnregistry.ValidNamespace(ns); err != nil {
			return "", err
		}
	}
	return name, nil
}

// ServeHTTP serves /function/{name}/{path...}.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	name, err := SplitName(r.PathValue("name"))
	if err != nil {
		web.WriteNegotiated(w, r, p.log, web.New(http.StatusNotFound, err.Error(), nil))
		return
	}
	f, ok := p.fns.Lookup(name)
	if !ok {
		p.observeUncached(name, http.StatusNotFound, start)
		web.WriteNegotiated(w, r, p.log, web.New(http.StatusNotFound, fmt.Sprintf("function %s not found", name), nil))
		return
	}
	if internalPath("/" + r.PathValue("path")) {
		p.observe(name, http.StatusNotFound, start)
		web.WriteNegotiated(w, r, p.log, web.New(http.StatusNotFound, fmt.Sprintf("%s of function %s is not served through the gateway", fnserve.MetricsPath, name), nil))
		return
	}
	ctx, cancel := context.WithTimeout(context.WithValue(r.Context(), fnKey{}, f), p.timeout)
	defer cancel()
	// A shallow copy with its own URL: ReverseProxy clones the request (its
	// headers included) itself, so a deep r.Clone here would copy them twice.
	out := r.WithContext(ctx)
	u := *r.URL
	u.Path, u.RawPath = "/"+r.PathValue("path"), rawRest(r.URL.EscapedPath(), r.PathValue("name"))
	out.URL = &u
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	p.rp.ServeHTTP(rec, out)
	f.CountInvocation()
	p.observe(name, rec.status, start)
}

// rawRest is the escaped form of the path after /function/{name}, so an
// escaped slash (%2F) in a segment reaches the function as sent; "" when
// escaped is not of that form (the URL then escapes Path itself).
func rawRest(escaped, name string) string {
	rest, ok := strings.CutPrefix(escaped, "/function/"+name)
	if !ok || !strings.HasPrefix(rest, "/") {
		return ""
	}
	return rest
}

// internalPath says whether a function's path is for its operators only: the
// metrics every function serves (fnserve.MetricsPath), which Prometheus
// scrapes from the replicas themselves (GET /system/metrics-targets).
func internalPath(p string) bool {
	return path.Clean(p) == fnserve.MetricsPath
}

// observe counts an invocation of a deployed function (its label handles are
// cached; names come from the registry, so the cache stays bounded).
func (p *Proxy) observe(name string, status int, start time.Time) {
	key := seriesKey{name, status}
	v, ok := p.series.Load(key)
	if !ok {
		fn, code := name+"."+procs.Namespace, strconv.Itoa(status)
		v, _ = p.series.LoadOrStore(key, &series{
			invocations: p.metrics.Invocations.WithLabelValues(fn, code),
			seconds:     p.metrics.Seconds.WithLabelValues(fn, code),
		})
	}
	s := v.(*series)
	s.invocations.Inc()
	s.seconds.Observe(time.Since(start).Seconds())
}

// observeUncached counts a call to a name that is not deployed (any name a
// client sends: not worth a cache entry).
func (p *Proxy) observeUncached(name string, status int, start time.Time) {
	fn, code := name+"."+procs.Namespace, strconv.Itoa(status)
	p.metrics.Invocations.WithLabelValues(fn, code).Inc()
	p.metrics.Seconds.WithLabelValues(fn, code).Observe(time.Since(start).Seconds())
}

// Invoke sends req to function name and returns the response (the caller
// closes its body). req.URL's path and query are kept; its host is ignored.
// Async calls and cron use it.
func (p *Proxy) Invoke(ctx context.Context, name string, req *http.Request) (*http.Response, error) {
	start := time.Now()
	f, ok := p.fns.Lookup(name)
	if !ok {
		p.observeUncached(name, http.StatusNotFound, start)
		return nil, fmt.Errorf("%w: %s", ErrUnknownFunction, name)
	}
	if internalPath(req.URL.Path) {
		p.observe(name, http.StatusNotFound, start)
		return nil, fmt.Errorf("%w: %s of %s is not served through the gateway", ErrUnknownFunction, fnserve.MetricsPath, name)
	}
	ctx, cancel := context.WithTimeout(context.WithValue(ctx, fnKey{}, f), p.timeout)
	out := req.Clone(ctx)
	out.URL.Scheme, out.URL.Host, out.Host = "http", "replica", ""
	out.Header.Set(HeaderForwardedPrefix, "/function/"+name)
	res, err := roundTripper{p}.RoundTrip(out)
	f.CountInvocation()
	if err != nil {
		cancel()
		p.observe(name, upstreamError(ctx, name, err).Status, start)
		return nil, err
	}
	p.observe(name, res.StatusCode, start)
	res.Body = &cancelBody{ReadCloser: res.Body, cancel: cancel}
	return res, nil
}

func upstreamError(ctx context.Context, name string, err error) *web.Error {
	switch {
	case errors.Is(err, ErrNoReplica):
		return web.New(http.StatusServiceUnavailable, fmt.Sprintf("function %s has no ready replica", name), err)
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return web.New(http.StatusGatewayTimeout, fmt.Sprintf("function %s timed out", name), err)
	default:
		return web.New(http.StatusBadGateway, fmt.Sprintf("function %s failed", name), err)
	}
}

// roundTripper picks a ready replica and moves on to another when one refuses
// the connection (it crashed and is not yet marked down).
type roundTripper struct{ p *Proxy }

func (rt roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	f := req.Context().Value(fnKey{}).(*fnregistry.Function)
	if req.Body != nil && req.Body != http.NoBody {
		// The transport closes the body on a failed dial; keep it for the next replica.
		req.Body = io.NopCloser(req.Body)
	}
	var skip map[*procs.Replica]bool
	for {
		rep, ok := f.Group().Pick(skip)
		if !ok {
			return nil, ErrNoReplica
		}
		req.URL.Host = rep.Addr()
		res, err := rt.p.transport.RoundTrip(req)
		if err == nil {
			res.Body = &releaseBody{ReadCloser: res.Body, rep: rep}
			return res, nil
		}
		rep.Release()
		if req.Context().Err() != nil || !retryOnAnother(req, err) {
			return nil, err
		}
		if skip == nil {
			skip = map[*procs.Replica]bool{}
		}
		skip[rep] = true
	}
}

// retryOnAnother says whether a failed request may go to another replica: when
// the connection was refused (nothing was sent), or when an idempotent request
// without a body lost its connection before any response (its replica died),
// as nginx's proxy_next_upstream does.
func retryOnAnother(req *http.Request, err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	idempotent := req.Method == http.MethodGet || req.Method == http.MethodHead || req.Method == http.MethodOptions
	noBody := req.Body == nil || req.Body == http.NoBody
	return idempotent && noBody && (errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF))
}

// releaseBody ends the replica's in-flight count when the response is done,
// so a drain waits for streamed responses too.
type releaseBody struct {
	io.ReadCloser
	rep  *procs.Replica
	once sync.Once
}

func (b *releaseBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.rep.Release)
	return err
}

type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// statusRecorder keeps the status for the metrics; Unwrap lets ReverseProxy
// flush through it.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
