package provider

import (
	"fmt"
	"net/http"

	"github.com/openfaas/faas-provider/types"

	"github.com/aigw/aigw/gateway/internal/fnregistry"
	"github.com/aigw/aigw/internal/web"
)

// MakeScaleHandler serves POST /system/scale-function/{name}.
func MakeScaleHandler(d Deps) http.HandlerFunc {
	return web.HandleNegotiated(d.Log, func(w http.ResponseWriter, r *http.Request) error {
		name := r.PathValue("name")
		var req types.ScaleServiceRequest
		if err := decode(w, r, &req); err != nil {
			return err
		}
		if req.ServiceName != "" && req.ServiceName != name {
			return web.New(http.StatusBadRequest, fmt.Sprintf("serviceName %q does not match the path's %q", req.ServiceName, name), nil)
		}
		if err := fnregistry.ValidNamespace(req.Namespace); err != nil {
			return toHTTP(err)
		}
		if req.Replicas > fnregistry.MaxReplicas {
			return web.New(http.StatusBadRequest, fmt.Sprintf("replicas %d: at most %d", req.Replicas, fnregistry.MaxReplicas), nil)
		}
		if err := d.Functions.Scale(r.Context(), name, int(req.Replicas)); err != nil {
			return toHTTP(err)
		}
		w.WriteHeader(http.StatusAccepted)
		return nil
	})
}
