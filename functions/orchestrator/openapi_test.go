package orchestrator

import (
	"slices"
	"strings"
	"testing"

	"github.com/aigw/aigw/internal/apispec"
)

// internalRoutes are served but are not the public API.
var internalRoutes = []string{"GET " + apispec.HealthPath}

// TestOpenAPIDocumentCoversEveryRoute: every route the orchestrator registers
// is an operation of the OpenAPI document (for the orchestrator function), and
// every orchestrator operation of the document is registered.
func TestOpenAPIDocumentCoversEveryRoute(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, patterns := b.svc.handler()
	var served []string
	for _, p := range patterns {
		p = strings.Join(strings.Fields(p), " ")
		if !slices.Contains(internalRoutes, p) {
			served = append(served, p)
		}
	}
	routes, err := apispec.FunctionRoutes("orchestrator")
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, r := range routes {
		documented = append(documented, r.Method+" "+r.Path)
	}
	for _, s := range served {
		if !slices.Contains(documented, s) {
			t.Errorf("the orchestrator serves %s, which internal/apispec/openapi.json does not document", s)
		}
	}
	for _, d := range documented {
		if !slices.Contains(served, d) {
			t.Errorf("internal/apispec/openapi.json documents %s, which the orchestrator does not serve", d)
		}
	}
}

// TestOpenAPISchemasMatchTheViews: the document's schema of the webhook
// secret answer has exactly its JSON fields.
func TestOpenAPISchemasMatchTheViews(t *testing.T) {
	apispec.CheckSchema(t, "WebhookSecret", secretResponse{})
}
