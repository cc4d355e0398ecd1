package httpmetrics_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/aigw/aigw/internal/httpmetrics"
)

// The middleware's cost on a chi route and a ServeMux route, beside the bare
// handler: go test -bench . -benchmem ./internal/httpmetrics/
func BenchmarkMiddleware(b *testing.B) {
	ok := func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }
	cr := chi.NewRouter()
	cr.Route("/v1", func(r chi.Router) { r.Get("/jobs/{id}", ok) })
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/jobs/{id}", ok)
	for _, c := range []struct {
		name string
		h    http.Handler
	}{
		{"chi/bare", cr},
		{"chi/metrics", httpmetrics.New(httpmetrics.NewRegistry()).Middleware(cr)},
		{"servemux/bare", mux},
		{"servemux/metrics", httpmetrics.New(httpmetrics.NewRegistry()).Middleware(mux)},
	} {
		b.Run(c.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, "/v1/jobs/01J000000000000000000000", nil)
			b.ReportAllocs()
			for b.Loop() {
				c.h.ServeHTTP(httptest.NewRecorder(), req)
			}
		})
	}
}
