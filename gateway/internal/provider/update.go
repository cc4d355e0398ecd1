package provider

import (
	"net/http"

	"github.com/openfaas/faas-provider/types"

	"github.com/aigw/aigw/internal/web"
)

// MakeUpdateHandler serves PUT /system/functions: 404 for an unknown function
// (faas-cli then deploys it with POST), 202 once the new replicas serve.
func MakeUpdateHandler(d Deps) http.HandlerFunc {
	return web.HandleNegotiated(d.Log, func(w http.ResponseWriter, r *http.Request) error {
		var fd types.FunctionDeployment
		if err := decode(w, r, &fd); err != nil {
			return err
		}
		if err := d.Functions.Update(r.Context(), fd); err != nil {
			return toHTTP(err)
		}
		w.WriteHeader(http.StatusAccepted)
		return nil
	})
}
