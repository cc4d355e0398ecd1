package auth

import (
	"net/http"

	"github.com/aigw/aigw/internal/web"
)

// Tenant returns the tenant of the request's verified token (put there by
// Middleware). A request without one, or whose token names no tenant (which
// the Verifier refuses as an invalid token), is 401: every function answers
// these cases the same way.
func Tenant(r *http.Request) (string, error) {
	c, ok := FromContext(r.Context())
	if !ok {
		return "", web.Unauthorized("send an access token: Authorization: Bearer <token>")
	}
	if c.Tenant == "" {
		return "", web.Unauthorized("the access token names no tenant; ask for a token of a client with a tenant")
	}
	return c.Tenant, nil
}
