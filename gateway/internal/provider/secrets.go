package provider

import (
	"fmt"
	"net/http"

	"github.com/openfaas/faas-provider/types"

	"github.com/aigw/aigw/gateway/internal/fnregistry"
	"github.com/aigw/aigw/gateway/internal/procs"
	"github.com/aigw/aigw/internal/web"
)

// MakeSecretsHandler serves /system/secrets: GET lists names (never values),
// POST creates (409 if it exists), PUT updates (404 if missing), DELETE removes.
// Values are kept on disk with 0600 permissions; a function gets the secrets
// it names as files in its own directory ($AIGW_SECRETS_DIR) when deployed.
func MakeSecretsHandler(d Deps) http.HandlerFunc {
	return web.HandleNegotiated(d.Log, func(w http.ResponseWriter, r *http.Request) error {
		if r.Method == http.MethodGet {
			if err := fnregistry.ValidNamespace(r.URL.Query().Get("namespace")); err != nil {
				return toHTTP(err)
			}
			names, err := d.Secrets.List()
			if err != nil {
				return err
			}
			out := make([]types.Secret, 0, len(names))
			for _, n := range names {
				out = append(out, types.Secret{Name: n, Namespace: procs.Namespace})
			}
			return writeJSON(w, http.StatusOK, out)
		}
		var s types.Secret
		if err := decode(w, r, &s); err != nil {
			return err
		}
		if err := fnregistry.ValidNamespace(s.Namespace); err != nil {
			return toHTTP(err)
		}
		value := s.RawValue
		if len(value) == 0 {
			value = []byte(s.Value)
		}
		switch r.Method {
		case http.MethodPost:
			if err := d.Secrets.Put(s.Name, value, true); err != nil {
				return toHTTP(err)
			}
			w.WriteHeader(http.StatusCreated)
		case http.MethodPut:
			if err := d.Secrets.Put(s.Name, value, false); err != nil {
				return toHTTP(err)
			}
			w.WriteHeader(http.StatusOK)
		case http.MethodDelete:
			if err := d.Secrets.Delete(s.Name); err != nil {
				return toHTTP(err)
			}
			w.WriteHeader(http.StatusOK)
		default:
			return web.New(http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed", r.Method), nil)
		}
		return nil
	})
}
