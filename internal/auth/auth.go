// Package auth verifies and issues aigw's access tokens: short-lived JWTs
// (RFC 9068 style) signed with EdDSA (Ed25519) or RS256, each naming its key
// with a `kid` header, published as a JWK set by the auth function.
//
// Every function and the gateway verify tokens locally with a Verifier, which
// caches the JWK set and refreshes it when a token names an unknown key, and
// protect routes with Middleware and Require.
package auth

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// Scopes of access tokens.
const (
	// ScopeJobsWrite allows submitting, canceling and retrying jobs.
	ScopeJobsWrite = "jobs:write"
	// ScopeJobsRead allows reading jobs, their events and the catalog.
	ScopeJobsRead = "jobs:read"
	// ScopeAlgorithmsAdmin allows registering and updating algorithms, that is
	// choosing what runs on the workers. It is an operator scope: the auth
	// function puts it only in operator tokens (POST /admin/token, which takes
	// the admin token) and never grants it to an API client.
	ScopeAlgorithmsAdmin = "algorithms:admin"
)

// OperatorTenant is the tenant claim of operator tokens. No API client can
// belong to it (a client's tenant starts with a letter or digit).
const OperatorTenant = "_operator"

// Scopes returns every known scope.
func Scopes() []string {
	return []string{ScopeJobsWrite, ScopeJobsRead, ScopeAlgorithmsAdmin}
}

// ClientScopes returns the scopes an API client may hold: those of Scopes
// that are not OperatorScopes.
func ClientScopes() []string { return []string{ScopeJobsWrite, ScopeJobsRead} }

// OperatorScopes returns the scopes only operator tokens carry.
func OperatorScopes() []string { return []string{ScopeAlgorithmsAdmin} }

// KnownScope reports whether s is one of Scopes.
func KnownScope(s string) bool { return slices.Contains(Scopes(), s) }

// OperatorScope reports whether s is one of OperatorScopes.
func OperatorScope(s string) bool { return slices.Contains(OperatorScopes(), s) }

var (
	// ErrInvalidToken is matched by every error about the token itself.
	ErrInvalidToken = errors.New("invalid token")
	// ErrJWKSUnavailable is matched when the keys needed to verify a token
	// cannot be fetched; the token may be fine, so this is not the caller's fault.
	ErrJWKSUnavailable = errors.New("JWKS unavailable")
)

// Claims are the claims of an aigw access token.
type Claims struct {
	jwt.RegisteredClaims
	// Tenant owns every job the token's holder creates or sees.
	Tenant string `json:"tenant"`
	// Scope is the space-separated list of granted scopes (RFC 9068 §2.2.3).
	Scope string `json:"scope"`
}

// HasScope reports whether the token grants scope s.
func (c *Claims) HasScope(s string) bool {
	if c == nil || s == "" {
		return false
	}
	return slices.Contains(strings.Fields(c.Scope), s)
}

// Scopes returns the granted scopes.
func (c *Claims) Scopes() []string {
	if c == nil {
		return nil
	}
	return strings.Fields(c.Scope)
}

type ctxKey struct{}

// WithClaims returns ctx carrying c.
func WithClaims(ctx context.Context, c *Claims) context.Context {
	return context.WithValue(ctx, ctxKey{}, c)
}

// FromContext returns the claims Middleware put in ctx.
func FromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(ctxKey{}).(*Claims)
	return c, ok && c != nil
}
