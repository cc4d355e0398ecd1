package router

import (
	"net/http"

	"github.com/aigw/aigw/internal/auth"
)

// operator reports whether the request carries an operator token (the auth
// function's POST /admin/token: tenant auth.OperatorTenant with the operator
// scope). An operator reads and acts on every tenant's jobs, as the console's
// admin does; a tenant's token never names auth.OperatorTenant.
func operator(r *http.Request) bool {
	c, ok := auth.FromContext(r.Context())
	return ok && c.Tenant == auth.OperatorTenant && c.HasScope(auth.ScopeAlgorithmsAdmin)
}
