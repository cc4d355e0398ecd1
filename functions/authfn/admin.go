package authfn

import (
	"errors"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/aigw/aigw/functions/authfn/clients"
	jwtauth "github.com/aigw/aigw/internal/auth"
	"github.com/aigw/aigw/internal/web"
)

// maxAdminBody bounds admin request bodies.
const maxAdminBody = 16 << 10

// clientView is a client as the admin API shows it: never its secret hash.
type clientView struct {
	ClientID  string     `json:"client_id"`
	Name      string     `json:"name"`
	Tenant    string     `json:"tenant"`
	Scopes    []string   `json:"scopes"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

func viewOf(c clients.Client) clientView {
	return clientView{ClientID: c.ID, Name: c.Name, Tenant: c.Tenant, Scopes: c.Scopes, CreatedAt: c.CreatedAt, RevokedAt: c.RevokedAt}
}

// storeError maps client store errors to API errors; an outage is left to
// web.Handle (503 with Retry-After).
func storeError(err error) error {
	var ve *clients.ValidationError
	switch {
	case errors.As(err, &ve):
		return &web.Error{Status: http.StatusUnprocessableEntity, Code: "invalid_field", Message: ve.Error()}
	case errors.Is(err, clients.ErrNotFound):
		return web.NotFound("no such client")
	}
	return err
}

func makeCreateClientHandler(d Deps) web.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var req struct {
			Name   string   `json:"name"`
			Tenant string   `json:"tenant"`
			Scopes []string `json:"scopes"`
		}
		if err := web.DecodeJSON(w, r, maxAdminBody, &req); err != nil {
			return err
		}
		c, secret, err := d.Clients.Create(r.Context(), clients.Spec{Name: req.Name, Tenant: req.Tenant, Scopes: req.Scopes})
		if err != nil {
			return storeError(err)
		}
		d.Log.InfoContext(r.Context(), "client created", "client_id", c.ID, "tenant", c.Tenant, "scopes", c.Scopes)
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Location", "/admin/clients/"+c.ID)
		web.WriteJSON(w, http.StatusCreated, struct {
			clientView
			ClientSecret string `json:"client_secret"`
		}{viewOf(c), secret})
		return nil
	}
}

func makeListClientsHandler(d Deps) web.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		cs, err := d.Clients.List(r.Context(), r.URL.Query().Get("tenant"))
		if err != nil {
			return storeError(err)
		}
		views := make([]clientView, len(cs))
		for i, c := range cs {
			views[i] = viewOf(c)
		}
		web.WriteJSON(w, http.StatusOK, struct {
			Clients []clientView `json:"clients"`
		}{views})
		return nil
	}
}

func makeGetClientHandler(d Deps) web.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		c, err := d.Clients.Get(r.Context(), chi.URLParam(r, "id"))
		if err != nil {
			return storeError(err)
		}
		web.WriteJSON(w, http.StatusOK, viewOf(c))
		return nil
	}
}

func makeRevokeClientHandler(d Deps) web.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		id := chi.URLParam(r, "id")
		if err := d.Clients.Revoke(r.Context(), id); err != nil {
			return storeError(err)
		}
		d.Log.InfoContext(r.Context(), "client revoked", "client_id", id)
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

// OperatorSubject is the sub claim of operator tokens.
const OperatorSubject = "operator"

// OperatorTokenScopes are the scopes of an operator token: the operator scopes
// and the clients' (an operator reads and acts on every tenant's jobs).
func OperatorTokenScopes() []string {
	return append(jwtauth.OperatorScopes(), jwtauth.ClientScopes()...)
}

// makeOperatorTokenHandler serves POST /admin/token: a short-lived access token
// with OperatorTokenScopes, in jwtauth.OperatorTenant, for the holder of the
// admin token (never for an operator token: it does not renew itself). It is
// the only way to get the operator scopes: no API client may hold them, so a
// tenant's credential never chooses what runs on the workers.
func makeOperatorTokenHandler(d Deps) web.HandlerFunc {
	key := d.Keys[0]
	return func(w http.ResponseWriter, r *http.Request) error {
		resp, err := signToken(d, key, OperatorSubject, jwtauth.OperatorTenant, OperatorTokenScopes())
		if err != nil {
			return err
		}
		d.Log.InfoContext(r.Context(), "operator token issued", "scope", resp.Scope, "kid", key.ID)
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Pragma", "no-cache")
		web.WriteJSON(w, http.StatusOK, resp)
		return nil
	}
}
