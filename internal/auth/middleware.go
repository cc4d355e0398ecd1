package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/aigw/aigw/internal/web"
)

// jwksRetryAfter is the Retry-After sent when the key set cannot be fetched.
const jwksRetryAfter = 5 * time.Second

// Middleware authenticates each request by its `Authorization: Bearer` token
// and puts the token's claims in the request context (see FromContext). A
// request with no or an invalid token gets 401 with a WWW-Authenticate header
// (RFC 6750 §3) and the API's error shape; 503 when the key set cannot be
// fetched.
func Middleware(v *Verifier, log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			token, ok := BearerToken(r)
			if !ok {
				w.Header().Set("WWW-Authenticate", `Bearer realm="aigw", error="invalid_token", error_description="no bearer token"`)
				web.WriteError(w, r, log, web.Unauthorized("send an access token: Authorization: Bearer <token> (get one from POST /oauth/token)"))
				return
			}
			claims, err := v.Verify(r.Context(), token)
			switch {
			case errors.Is(err, ErrJWKSUnavailable):
				web.WriteError(w, r, log, web.Unavailable(jwksRetryAfter, err))
				return
			case err != nil:
				w.Header().Set("WWW-Authenticate", `Bearer realm="aigw", error="invalid_token", error_description="the access token is invalid or expired"`)
				if log != nil {
					log.InfoContext(r.Context(), "token rejected", "method", r.Method, "path", r.URL.Path, "err", err)
				}
				web.WriteError(w, r, log, web.Unauthorized("the access token is invalid or expired; get a new one from POST /oauth/token"))
				return
			}
			next.ServeHTTP(w, r.WithContext(WithClaims(r.Context(), claims)))
		})
	}
}

// Require answers 403 "forbidden", naming the missing scope, unless the
// request's token (see Middleware) grants scope; 401 when there is no token.
func Require(scope string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, ok := FromContext(r.Context())
			if !ok {
				w.Header().Set("WWW-Authenticate", `Bearer realm="aigw"`)
				web.WriteError(w, r, nil, web.Unauthorized("send an access token: Authorization: Bearer <token>"))
				return
			}
			if !c.HasScope(scope) {
				w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="aigw", error="insufficient_scope", scope=%q`, scope))
				web.WriteError(w, r, nil, web.Forbidden("the access token lacks the scope %q", scope))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// BearerToken returns the token of an `Authorization: Bearer <token>` header;
// the scheme is case-insensitive (RFC 7235 §2.1).
func BearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// AdminOrOperator reports whether r carries the admin token (compared in
// constant time, as digests, so that its length does not leak either) or,
// when v is not nil, an operator token (OperatorTenant with
// ScopeAlgorithmsAdmin) that v verifies: the console's operator holds one,
// never the admin token.
func AdminOrOperator(r *http.Request, adminToken string, v *Verifier) bool {
	got, ok := BearerToken(r)
	if !ok {
		return false
	}
	sum, want := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(adminToken))
	if adminToken != "" && subtle.ConstantTimeCompare(sum[:], want[:]) == 1 {
		return true
	}
	if v == nil || strings.Count(got, ".") != 2 {
		return false
	}
	c, err := v.Verify(r.Context(), got)
	return err == nil && c.Tenant == OperatorTenant && c.HasScope(ScopeAlgorithmsAdmin)
}
