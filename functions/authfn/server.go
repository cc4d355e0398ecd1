package authfn

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/aigw/aigw/functions/authfn/clients"
	jwtauth "github.com/aigw/aigw/internal/auth"
	"github.com/aigw/aigw/internal/fnserve"
	"github.com/aigw/aigw/internal/web"
)

// ClientStore is what the handlers need of the client store.
type ClientStore interface {
	Create(ctx context.Context, spec clients.Spec) (clients.Client, string, error)
	Get(ctx context.Context, id string) (clients.Client, error)
	List(ctx context.Context, tenant string) ([]clients.Client, error)
	Revoke(ctx context.Context, id string) error
}

// Deps are the handler's dependencies.
type Deps struct {
	Log     *slog.Logger
	Config  Config
	Clients ClientStore
	// Keys sign tokens (the first) and are published in the JWK set (all).
	Keys       []jwtauth.Key
	AdminToken string
	// Ready decides the health check (e.g. a MongoDB ping); nil means always ready.
	Ready func(context.Context) error
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// NewHandler returns the function's routes.
func NewHandler(d Deps) (http.Handler, error) {
	if d.Log == nil || d.Clients == nil {
		return nil, errors.New("auth: Log and Clients are required")
	}
	if len(d.Keys) == 0 {
		return nil, errors.New("auth: no signing key")
	}
	if len(d.AdminToken) < MinAdminTokenLen {
		return nil, errors.New("auth: the admin token is too short")
	}
	if d.Config.Issuer == "" || d.Config.Audience == "" || d.Config.TokenTTL <= 0 {
		return nil, errors.New("auth: Config needs Issuer, Audience and TokenTTL (use ReadConfig)")
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	jwks, err := jwtauth.JWKS(d.Keys...)
	if err != nil {
		return nil, err
	}
	r := chi.NewRouter()
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		web.WriteError(w, r, d.Log, web.NotFound("no route %s %s", r.Method, r.URL.Path))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		web.WriteError(w, r, d.Log, web.MethodNotAllowed(r))
	})
	r.Get("/_/health", fnserve.Health(d.Ready))
	r.Get("/.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(jwks)
	})
	r.Method(http.MethodPost, "/oauth/token", makeTokenHandler(d))
	operators, err := jwtauth.NewVerifier(jwtauth.VerifierConfig{JWKS: jwks, Issuer: d.Config.Issuer, Audience: d.Config.Audience, Now: d.Now})
	if err != nil {
		return nil, err
	}
	r.Route("/admin", func(r chi.Router) {
		// The clients: the admin token, or an operator token from it (the console's admin).
		r.With(requireAdmin(d.Log, d.AdminToken, operators)).Route("/clients", func(r chi.Router) {
			r.Method(http.MethodPost, "/", web.Handle(d.Log, makeCreateClientHandler(d)))
			r.Method(http.MethodGet, "/", web.Handle(d.Log, makeListClientsHandler(d)))
			r.Method(http.MethodGet, "/{id}", web.Handle(d.Log, makeGetClientHandler(d)))
			r.Method(http.MethodDelete, "/{id}", web.Handle(d.Log, makeRevokeClientHandler(d)))
		})
		// An operator token: the admin token only, so no token renews itself.
		r.With(requireAdmin(d.Log, d.AdminToken, nil)).Method(http.MethodPost, "/token", web.Handle(d.Log, makeOperatorTokenHandler(d)))
	})
	return r, nil
}

// requireAdmin answers 401 unless the request carries `Authorization: Bearer
// <admin token>` or, when operators is not nil, an operator token
// (jwtauth.AdminOrOperator).
func requireAdmin(log *slog.Logger, token string, operators *jwtauth.Verifier) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !jwtauth.AdminOrOperator(r, token, operators) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="aigw-admin"`)
				web.WriteError(w, r, log, web.Unauthorized("admin endpoints need Authorization: Bearer <admin token> (the %s secret) or an operator token", SecretAdminToken))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}
