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
	apispec.CheckRoutes(t, "orchestrator", "the orchestrator", served)
}

// TestOpenAPISchemasMatchTheViews: the document's schema of the webhook
// secret answer has exactly its JSON fields.
func TestOpenAPISchemasMatchTheViews(t *testing.T) {
	apispec.CheckSchema(t, "WebhookSecret", secretResponse{})
}
