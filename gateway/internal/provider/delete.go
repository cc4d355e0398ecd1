package provider

import (
	"net/http"

	"github.com/openfaas/faas-provider/types"

	"github.com/aigw/aigw/gateway/internal/fnregistry"
	"github.com/aigw/aigw/internal/web"
)

// MakeDeleteHandler serves DELETE /system/functions.
func MakeDeleteHandler(d Deps) http.HandlerFunc {
	return web.HandleNegotiated(d.Log, func(w http.ResponseWriter, r *http.Request) error {
		var req types.DeleteFunctionRequest
		if err := decode(w, r, &req); err != nil {
			return err
		}
		if err := fnregistry.ValidNamespace(req.Namespace); err != nil {
			return toHTTP(err)
		}
		if err := fnregistry.ValidName(req.FunctionName); err != nil {
			return toHTTP(err)
		}
		if err := d.Functions.Delete(r.Context(), req.FunctionName); err != nil {
			return toHTTP(err)
		}
		w.WriteHeader(http.StatusAccepted)
		return nil
	})
}
