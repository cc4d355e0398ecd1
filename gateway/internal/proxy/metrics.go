package proxy

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the invocation metrics, named as the OpenFaaS gateway names them.
type Metrics struct {
	// Invocations is gateway_function_invocation_total{function_name, code}.
	Invocations *prometheus.CounterVec
	// Seconds is gateway_functions_seconds{function_name, code}.
	Seconds *prometheus.HistogramVec
}

// NewMetrics registers the metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Invocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_function_invocation_total",
			Help: "Function invocations by function and status code.",
		}, []string{"function_name", "code"}),
		Seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gateway_functions_seconds",
			Help:    "Function invocation time taken.",
			Buckets: prometheus.DefBuckets,
		}, []string{"function_name", "code"}),
	}
	reg.MustRegister(m.Invocations, m.Seconds)
	return m
}
