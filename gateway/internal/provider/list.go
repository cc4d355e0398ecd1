package provider

import (
	"net/http"

	"github.com/aigw/aigw/gateway/internal/fnregistry"
	"github.com/aigw/aigw/internal/web"
)

// MakeListHandler serves GET /system/functions.
func MakeListHandler(d Deps) http.HandlerFunc {
	return web.HandleNegotiated(d.Log, func(w http.ResponseWriter, r *http.Request) error {
		if err := fnregistry.ValidNamespace(r.URL.Query().Get("namespace")); err != nil {
			return toHTTP(err)
		}
		return writeJSON(w, http.StatusOK, d.Functions.List())
	})
}
