package auth

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/aigw/aigw/internal/web"
)

// Tombstones says when a tenant was deleted (nil: never); quota.Cache is one.
type Tombstones interface {
	DeletedAt(ctx context.Context, tenant string) (*time.Time, error)
}

// Live refuses, after Middleware, a token that its tenant's deletion voided:
// one issued (iat, in whole seconds) no later than the second the tenant
// was deleted → 401, like any invalid token; when ts cannot say, the
// error's status (503 for a store outage). With ts nil it lets all through.
func Live(ts Tombstones, log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if ts == nil {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, ok := FromContext(r.Context())
			if !ok {
				next.ServeHTTP(w, r)
				return
			}
			at, err := ts.DeletedAt(r.Context(), c.Tenant)
			if err != nil {
				web.WriteError(w, r, log, err)
				return
			}
			if at != nil && (c.IssuedAt == nil || !c.IssuedAt.After(at.Truncate(time.Second))) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="aigw", error="invalid_token", error_description="the tenant was deleted"`)
				web.WriteError(w, r, log, web.Unauthorized("tenant %s was deleted at %s: tokens issued before then are refused", c.Tenant, at.UTC().Format(time.RFC3339)))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}
