// Package httpmetrics counts and times HTTP requests for Prometheus, by route
// pattern (never the raw path, so ids do not become series) and status code.
// Every function gets it through fnserve; the gateway wraps its mux with it.
//
//	aigw_http_requests_total{method, route, code}        counter
//	aigw_http_request_duration_seconds{method, route}    histogram
//	aigw_http_requests_in_flight                          gauge
//
// The route is the pattern that matched: chi's route pattern ("/v1/jobs/{id}")
// for chi routers, the http.ServeMux pattern without its method and host
// ("/v1/pipelines/{name}") for the standard mux, "none" when nothing matched.
package httpmetrics

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metric names, shared with the dashboards and alert rules in monitoring/.
const (
	RequestsTotal   = "aigw_http_requests_total"
	RequestDuration = "aigw_http_request_duration_seconds"
	InFlight        = "aigw_http_requests_in_flight"
)

// NoRoute is the route label of requests no pattern matched.
const NoRoute = "none"

// Buckets are the latency histogram's upper bounds in seconds: API calls take
// milliseconds, `Prefer: wait` calls and event streams up to minutes.
var Buckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300}

// Metrics are the HTTP instruments of one server.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
	// series caches the label handles per method, route and code (a bounded
	// set: routes are patterns, methods and codes few).
	series sync.Map // seriesKey → *series
}

type seriesKey struct {
	method, route string
	code          int
}

type series struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// routeContexts recycles the chi route contexts the middleware hands to the
// routers, as chi's own Mux does.
var routeContexts = sync.Pool{New: func() any { return chi.NewRouteContext() }}

// New registers the HTTP instruments with reg; on a registry that has them
// already (a second server of the same process) it shares them.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: RequestsTotal, Help: "HTTP requests served, by method, route pattern and status code.",
		}, []string{"method", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: RequestDuration, Help: "Time to serve an HTTP request (to the end of its body), by method and route pattern.",
			Buckets: Buckets,
		}, []string{"method", "route"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: InFlight, Help: "HTTP requests being served.",
		}),
	}
	m.requests = register(reg, m.requests)
	m.duration = register(reg, m.duration)
	m.inFlight = register(reg, m.inFlight)
	return m
}

// register registers c with reg, or returns the collector reg has already.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}

// NewRegistry is a registry with the Go and process collectors, what every
// aigw binary exports besides its own metrics.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Handler serves reg in the Prometheus text format.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

// Middleware counts and times the requests next serves.
func (m *Metrics) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		m.inFlight.Inc()
		defer m.inFlight.Dec()
		// A chi router given a route context fills it in instead of its own,
		// so the pattern is readable here once it has served.
		ctx := r.Context()
		rctx := chi.RouteContext(ctx)
		if rctx == nil {
			rctx = routeContexts.Get().(*chi.Context)
			rctx.Reset()
			defer routeContexts.Put(rctx)
			ctx = context.WithValue(ctx, chi.RouteCtxKey, rctx)
		}
		r = r.WithContext(ctx) // a copy: the pattern read below is its own
		r.Pattern = ""
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			// A handler that panics (http.ErrAbortHandler included) answered
			// what it wrote, or a 500 the server sends by closing.
			p := recover()
			if p != nil && sw.status == 0 {
				sw.status = http.StatusInternalServerError
			}
			defer func() {
				if p != nil {
					panic(p)
				}
			}()
			// The standard mux sets r.Pattern on the request it is given.
			route := rctx.RoutePattern()
			if route == "" {
				route = stdPattern(r.Pattern)
			}
			s := m.seriesOf(seriesKey{methodLabel(r.Method), route, sw.code()})
			s.requests.Inc()
			s.duration.Observe(time.Since(start).Seconds())
		}()
		next.ServeHTTP(sw, r)
	})
}

func (m *Metrics) seriesOf(k seriesKey) *series {
	if v, ok := m.series.Load(k); ok {
		return v.(*series)
	}
	v, _ := m.series.LoadOrStore(k, &series{
		requests: m.requests.WithLabelValues(k.method, k.route, strconv.Itoa(k.code)),
		duration: m.duration.WithLabelValues(k.method, k.route),
	})
	return v.(*series)
}

// stdPattern is an http.ServeMux pattern without its method and host.
func stdPattern(p string) string {
	if p == "" {
		return NoRoute
	}
	if _, path, ok := strings.Cut(p, " "); ok {
		p = strings.TrimLeft(path, " \t")
	}
	if i := strings.IndexByte(p, '/'); i > 0 {
		p = p[i:] // host-qualified pattern
	}
	return p
}

// methodLabel keeps the method label's values few.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "OTHER"
}

// statusWriter remembers the status code. Unwrap lets http.ResponseController
// reach the connection (flushes of event streams, deadlines); Flush serves
// callers that assert http.Flusher.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 && code >= 200 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Flush() {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	_ = http.NewResponseController(s.ResponseWriter).Flush()
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// code is the status sent: 200 when the handler wrote nothing.
func (s *statusWriter) code() int {
	if s.status == 0 {
		return http.StatusOK
	}
	return s.status
}
