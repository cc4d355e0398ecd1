package provider

import (
	"net/http"

	"github.com/openfaas/faas-provider/types"

	"github.com/aigw/aigw/internal/web"
)

// MakeDeployHandler serves POST /system/functions. It answers 202 once the
// replicas are healthy; an existing function is updated (deploying a stack
// twice is safe). A function that does not become healthy within the ready
// timeout is stopped and reported with 502 and the reason.
func MakeDeployHandler(d Deps) http.HandlerFunc {
	return web.HandleNegotiated(d.Log, func(w http.ResponseWriter, r *http.Request) error {
		var fd types.FunctionDeployment
		if err := decode(w, r, &fd); err != nil {
			return err
		}
		if err := d.Functions.Deploy(r.Context(), fd); err != nil {
			return toHTTP(err)
		}
		w.WriteHeader(http.StatusAccepted)
		return nil
	})
}
