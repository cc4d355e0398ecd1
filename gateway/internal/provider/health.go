package provider

import (
	"io"
	"net/http"
)

// MakeHealthHandler serves GET /healthz.
func MakeHealthHandler() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "OK")
	}
}
