package router

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/aigw/aigw/internal/apispec"
	"github.com/aigw/aigw/internal/registry"
)

// internalRoutes are served but are not the public API.
var internalRoutes = []string{"GET " + apispec.HealthPath}

// TestOpenAPIDocumentCoversEveryRoute: every route the router registers is an
// operation of the OpenAPI document (for the router function), and every
// router operation of the document is registered.
func TestOpenAPIDocumentCoversEveryRoute(t *testing.T) {
	var served []string
	err := chi.Walk(New(Deps{}).(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		route = strings.ReplaceAll(route, "/*/", "/")
		if !slices.Contains(internalRoutes, method+" "+route) {
			served = append(served, method+" "+route)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	apispec.CheckRoutes(t, "router", "the router", served)
}

// TestOpenAPIDocumentServedWithoutToken: GET /v1/openapi.json needs no token.
func TestOpenAPIDocumentServedWithoutToken(t *testing.T) {
	t.Parallel()
	e := setup(t, testConfig())
	r := e.want(t, e.do(t, "GET", "/v1/openapi.json", "", ""), http.StatusOK)
	if r.header.Get("Content-Type") != "application/json" || string(r.body) != string(apispec.JSON()) {
		t.Fatalf("document %s: %.100s", r.header.Get("Content-Type"), r.body)
	}
}

// TestOpenAPISchemasMatchTheViews: the document's schemas of the router's
// own views have exactly their JSON fields.
func TestOpenAPISchemasMatchTheViews(t *testing.T) {
	for name, v := range map[string]any{
		"Algorithm":        algorithmView{},
		"Pool":             poolView{},
		"TenantPool":       tenantPoolView{},
		"Worker":           workerView{},
		"WorkerGPU":        gpuView{},
		"WorkerAssetCache": registry.AssetCache{},
		"Queue":            queueView{},
		"Counts":           counts{},
		"DeadLetter":       deadLetterView{},
	} {
		apispec.CheckSchema(t, name, v)
	}
}
