package provider

import (
	"net/http"
	"sort"

	"github.com/aigw/aigw/internal/web"
)

// Annotations by which a function asks to be scraped, as Prometheus'
// Kubernetes pod annotations say it (OpenFaaS copies a function's annotations
// to its pods, so the same stack.yml serves both).
const (
	AnnotationScrape = "prometheus.io.scrape" // "true" to be scraped
	AnnotationPath   = "prometheus.io.path"   // metrics path, default /metrics
)

// Target is one group of Prometheus' HTTP service discovery
// (https://prometheus.io/docs/prometheus/latest/http_sd/).
type Target struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// MakeMetricsTargetsHandler serves GET /system/metrics-targets: every running
// replica of every function annotated prometheus.io.scrape=true, for a
// Prometheus' http_sd_configs. Replicas listen on ports of their own that
// change when they restart; Prometheus scrapes each one, not a random one
// through /function/NAME. Labels: service (the function), replica,
// __metrics_path__ (prometheus.io.path).
func MakeMetricsTargetsHandler(d Deps) http.HandlerFunc {
	return web.HandleNegotiated(d.Log, func(w http.ResponseWriter, r *http.Request) error {
		out := []Target{}
		for _, st := range d.Functions.List() {
			if st.Annotations == nil || (*st.Annotations)[AnnotationScrape] != "true" {
				continue
			}
			path := (*st.Annotations)[AnnotationPath]
			if path == "" {
				path = "/metrics"
			}
			f, ok := d.Functions.Lookup(st.Name)
			if !ok {
				continue
			}
			for _, rep := range f.Group().Replicas() {
				addr := rep.Addr()
				if addr == "" {
					continue // not started yet
				}
				out = append(out, Target{Targets: []string{addr}, Labels: map[string]string{
					"service": st.Name, "replica": rep.ID, "__metrics_path__": path,
				}})
			}
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Targets[0] < out[j].Targets[0] })
		return writeJSON(w, http.StatusOK, out)
	})
}
