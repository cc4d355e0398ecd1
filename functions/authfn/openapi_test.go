package authfn_test

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/aigw/aigw/functions/authfn"
	"github.com/aigw/aigw/functions/authfn/clients"
	"github.com/aigw/aigw/internal/apispec"
	jwtauth "github.com/aigw/aigw/internal/auth"
)

// TestOpenAPIDocumentCoversEveryRoute: every route the auth function
// registers is an operation of the OpenAPI document (for the auth function),
// and every auth operation of the document is registered.
func TestOpenAPIDocumentCoversEveryRoute(t *testing.T) {
	t.Parallel()
	h, err := authfn.NewHandler(authfn.Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Clients: &clients.Store{},
		Keys: []jwtauth.Key{newKey(t)}, AdminToken: adminToken, Config: authfn.Config{Issuer: "i", Audience: "a", TokenTTL: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	var served []string
	err = chi.Walk(h.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if route != "/" {
			route = strings.TrimSuffix(route, "/") // chi's walk names a subrouter's route /admin/clients/
		}
		if route != apispec.HealthPath {
			served = append(served, method+" "+route)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	apispec.CheckRoutes(t, "auth", "the auth function", served)
}
