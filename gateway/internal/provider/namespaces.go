package provider

import (
	"net/http"

	"github.com/aigw/aigw/gateway/internal/procs"
	"github.com/aigw/aigw/internal/web"
)

// MakeNamespacesHandler serves GET /system/namespaces: the gateway's one namespace.
func MakeNamespacesHandler(d Deps) http.HandlerFunc {
	return web.HandleNegotiated(d.Log, func(w http.ResponseWriter, r *http.Request) error {
		return writeJSON(w, http.StatusOK, []string{procs.Namespace})
	})
}
