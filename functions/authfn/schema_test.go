package authfn

import (
	"testing"

	"github.com/aigw/aigw/internal/apispec"
)

// TestOpenAPISchemasMatchTheViews: the document's schemas of the auth
// function's answers have exactly their JSON fields.
func TestOpenAPISchemasMatchTheViews(t *testing.T) {
	apispec.CheckSchema(t, "Token", tokenResponse{})
	apispec.CheckSchema(t, "Client", clientView{})
	apispec.CheckSchema(t, "CreatedClient", clientView{}, "client_secret")
}
