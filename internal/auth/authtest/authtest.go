// Package authtest runs a real token issuer for tests: an httptest server
// publishing a JWK set, and helpers that sign tokens with its keys.
package authtest

import (
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/aigw/aigw/internal/auth"
)

// JWKSPath is where the issuer serves its key set.
const JWKSPath = "/.well-known/jwks.json"

// TokenTTL is how long Token's tokens are valid.
const TokenTTL = 15 * time.Minute

// Issuer is a token issuer for tests. It is safe for concurrent use.
type Issuer struct {
	srv  *httptest.Server
	hits atomic.Int64

	mu        sync.Mutex
	current   auth.Key
	published []auth.Key
}

// NewIssuer starts an issuer with a fresh Ed25519 key, stopped when t ends.
func NewIssuer(t testing.TB) *Issuer {
	t.Helper()
	is := &Issuer{}
	k := NewKey(t)
	is.current, is.published = k, []auth.Key{k}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+JWKSPath, func(w http.ResponseWriter, r *http.Request) {
		is.hits.Add(1)
		is.mu.Lock()
		body, err := auth.JWKS(is.published...)
		is.mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	is.srv = httptest.NewServer(mux)
	t.Cleanup(is.srv.Close)
	return is
}

// NewKey returns a fresh Ed25519 signing key whose ID is its thumbprint.
func NewKey(t testing.TB) auth.Key {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("generate Ed25519 key: %v", err)
	}
	kid, err := auth.Thumbprint(priv.Public())
	if err != nil {
		t.Fatalf("thumbprint: %v", err)
	}
	return auth.Key{ID: kid, Alg: auth.AlgEdDSA, Private: priv}
}

// URL is the JWK set's URL.
func (is *Issuer) URL() string { return is.srv.URL + JWKSPath }

// Issuer is the iss of the tokens: the server's base URL.
func (is *Issuer) Issuer() string { return is.srv.URL }

// Audience is the aud of the tokens.
func (is *Issuer) Audience() string { return "aigw-api" }

// VerifierConfig returns a configuration that verifies this issuer's tokens.
func (is *Issuer) VerifierConfig() auth.VerifierConfig {
	return auth.VerifierConfig{JWKSURL: is.URL(), Issuer: is.Issuer(), Audience: is.Audience(), HTTPClient: is.srv.Client()}
}

// Key returns the current signing key.
func (is *Issuer) Key() auth.Key {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.current
}

// Publish sets the keys the JWK set publishes (the current key is not added).
func (is *Issuer) Publish(keys ...auth.Key) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.published = append([]auth.Key(nil), keys...)
}

// Rotate makes a fresh key current and publishes it with the previous one,
// as the auth function does during a key rotation. It returns the new key.
func (is *Issuer) Rotate(t testing.TB) auth.Key {
	t.Helper()
	k := NewKey(t)
	is.mu.Lock()
	defer is.mu.Unlock()
	is.published = []auth.Key{k, is.current}
	is.current = k
	return k
}

// JWKSHits counts the requests for the JWK set so far.
func (is *Issuer) JWKSHits() int { return int(is.hits.Load()) }

// Claims returns valid claims for tenant with scopes, issued now, valid for TokenTTL.
func (is *Issuer) Claims(tenant string, scopes ...string) *auth.Claims {
	now := time.Now()
	return &auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    is.Issuer(),
			Subject:   "cl_test_" + tenant,
			Audience:  jwt.ClaimStrings{is.Audience()},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(TokenTTL)),
			ID:        rand.Text(),
		},
		Tenant: tenant,
		Scope:  strings.Join(scopes, " "),
	}
}

// Token returns a valid token for tenant with scopes, signed by the current key.
func (is *Issuer) Token(t testing.TB, tenant string, scopes ...string) string {
	t.Helper()
	return is.Sign(t, is.Claims(tenant, scopes...))
}

// Sign signs any claims with the current key.
func (is *Issuer) Sign(t testing.TB, claims jwt.Claims) string {
	t.Helper()
	return SignWith(t, is.Key(), claims)
}

// SignWith signs claims with key.
func SignWith(t testing.TB, key auth.Key, claims jwt.Claims) string {
	t.Helper()
	s, err := auth.Sign(key, claims)
	if err != nil {
		t.Fatalf("sign token: %v", err)
	}
	return s
}
