package auth_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/aigw/aigw/internal/auth"
	"github.com/aigw/aigw/internal/auth/authtest"
)

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newVerifier(t *testing.T, cfg auth.VerifierConfig) *auth.Verifier {
	t.Helper()
	v, err := auth.NewVerifier(cfg)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return v
}

func TestVerifyAcceptsIssuerToken(t *testing.T) {
	t.Parallel()
	is := authtest.NewIssuer(t)
	v := newVerifier(t, is.VerifierConfig())
	c, err := v.Verify(t.Context(), is.Token(t, "acme", auth.ScopeJobsRead, auth.ScopeJobsWrite))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if c.Tenant != "acme" || !c.HasScope(auth.ScopeJobsRead) || !c.HasScope(auth.ScopeJobsWrite) || c.HasScope(auth.ScopeAlgorithmsAdmin) {
		t.Errorf("claims = %+v", c)
	}
	if c.HasScope("jobs") || c.HasScope("") {
		t.Error("HasScope matched a partial or empty scope")
	}
}

func TestVerifyAcceptsRS256(t *testing.T) {
	t.Parallel()
	is := authtest.NewIssuer(t)
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := auth.Thumbprint(&priv.PublicKey)
	k := auth.Key{ID: kid, Alg: auth.AlgRS256, Private: priv}
	is.Publish(is.Key(), k)
	v := newVerifier(t, is.VerifierConfig())
	c, err := v.Verify(t.Context(), authtest.SignWith(t, k, is.Claims("acme", auth.ScopeJobsRead)))
	if err != nil {
		t.Fatalf("Verify RS256: %v", err)
	}
	if c.Tenant != "acme" {
		t.Errorf("tenant = %q", c.Tenant)
	}
	// An allow-list without RS256 refuses it.
	cfg := is.VerifierConfig()
	cfg.Algorithms = []string{auth.AlgEdDSA}
	if _, err := newVerifier(t, cfg).Verify(t.Context(), authtest.SignWith(t, k, is.Claims("acme"))); !errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("RS256 with EdDSA-only allow-list: err = %v", err)
	}
}

// b64json encodes v as a base64url JWT segment.
func b64json(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestVerifyRejectsAttacks(t *testing.T) {
	t.Parallel()
	is := authtest.NewIssuer(t)
	key := is.Key()
	pub := key.Private.Public().(ed25519.PublicKey)

	rsaSmall, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	rsaBig, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	// The key set also publishes a 1024-bit RSA key, which must never verify.
	smallJWK := map[string]string{"kty": "RSA", "kid": "small", "alg": "RS256",
		"n": base64.RawURLEncoding.EncodeToString(rsaSmall.N.Bytes()), "e": "AQAB"}
	good, err := auth.JWKS(key)
	if err != nil {
		t.Fatal(err)
	}
	var set struct{ Keys []any }
	if err := json.Unmarshal(good, &set); err != nil {
		t.Fatal(err)
	}
	set.Keys = append(set.Keys, smallJWK)
	jwksBody, _ := json.Marshal(set)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(jwksBody) }))
	t.Cleanup(srv.Close)
	cfg := is.VerifierConfig()
	cfg.JWKSURL, cfg.HTTPClient = srv.URL, srv.Client()
	v := newVerifier(t, cfg)

	signRaw := func(m jwt.SigningMethod, c jwt.Claims, kid string, k any) string {
		t.Helper()
		tok := jwt.NewWithClaims(m, c)
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	valid := is.Token(t, "acme", auth.ScopeJobsRead)
	parts := strings.Split(valid, ".")
	mod := func(f func(c *auth.Claims)) *auth.Claims {
		c := is.Claims("acme", auth.ScopeJobsRead)
		f(c)
		return c
	}
	past := func(d time.Duration) *jwt.NumericDate { return jwt.NewNumericDate(time.Now().Add(-d)) }
	future := func(d time.Duration) *jwt.NumericDate { return jwt.NewNumericDate(time.Now().Add(d)) }

	tests := map[string]string{
		"alg none":                        signRaw(jwt.SigningMethodNone, is.Claims("acme"), key.ID, jwt.UnsafeAllowNoneSignatureType),
		"alg none no signature":           b64json(t, map[string]string{"alg": "none", "kid": key.ID}) + "." + parts[1] + ".",
		"HS256 with the public key bytes": signRaw(jwt.SigningMethodHS256, is.Claims("acme"), key.ID, []byte(pub)),
		"HS256 with the JWKS bytes":       signRaw(jwt.SigningMethodHS256, is.Claims("acme"), key.ID, jwksBody),
		"expired":                         is.Sign(t, mod(func(c *auth.Claims) { c.ExpiresAt = past(2 * time.Minute) })),
		"no exp":                          is.Sign(t, mod(func(c *auth.Claims) { c.ExpiresAt = nil })),
		"not yet valid":                   is.Sign(t, mod(func(c *auth.Claims) { c.NotBefore = future(2 * time.Minute) })),
		"issued in the future":            is.Sign(t, mod(func(c *auth.Claims) { c.IssuedAt = future(5 * time.Minute) })),
		"wrong aud":                       is.Sign(t, mod(func(c *auth.Claims) { c.Audience = jwt.ClaimStrings{"other-api"} })),
		"no aud":                          is.Sign(t, mod(func(c *auth.Claims) { c.Audience = nil })),
		"wrong iss":                       is.Sign(t, mod(func(c *auth.Claims) { c.Issuer = "https://evil.example" })),
		"no tenant":                       is.Sign(t, mod(func(c *auth.Claims) { c.Tenant = "" })),
		"no sub":                          is.Sign(t, mod(func(c *auth.Claims) { c.Subject = "" })),
		"unknown kid":                     authtest.SignWith(t, authtest.NewKey(t), is.Claims("acme")),
		"unpublished key under a known kid": authtest.SignWith(t,
			auth.Key{ID: key.ID, Alg: auth.AlgEdDSA, Private: authtest.NewKey(t).Private}, is.Claims("acme")),
		"tampered payload": parts[0] + "." + b64json(t, mod(func(c *auth.Claims) { c.Tenant = "victim" })) + "." + parts[2],
		"tampered scope": parts[0] + "." + b64json(t, mod(func(c *auth.Claims) {
			c.Scope = auth.ScopeAlgorithmsAdmin
		})) + "." + parts[2],
		"tampered signature":         parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(make([]byte, 64)),
		"missing kid":                signRaw(jwt.SigningMethodEdDSA, is.Claims("acme"), "", key.Private),
		"RS256 with a too-small key": signRaw(jwt.SigningMethodRS256, is.Claims("acme"), "small", rsaSmall),
		"RS256 under an Ed25519 kid": signRaw(jwt.SigningMethodRS256, is.Claims("acme"), key.ID, rsaBig),
		"RS512":                      signRaw(jwt.SigningMethodRS512, is.Claims("acme"), key.ID, rsaBig),
		"empty":                      "",
		"garbage":                    "not.a.jwt",
		"two segments":               parts[0] + "." + parts[1],
		"oversized":                  parts[0] + "." + strings.Repeat("A", auth.MaxTokenBytes) + "." + parts[2],
	}
	for name, tok := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := v.Verify(t.Context(), tok)
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			if !errors.Is(err, auth.ErrInvalidToken) || errors.Is(err, auth.ErrJWKSUnavailable) {
				t.Errorf("err = %v, want ErrInvalidToken", err)
			}
		})
	}
	// The valid token still verifies against the same key set.
	if _, err := v.Verify(t.Context(), valid); err != nil {
		t.Errorf("valid token: %v", err)
	}
}

func TestVerifyAllowsSkewUpToLeeway(t *testing.T) {
	t.Parallel()
	is := authtest.NewIssuer(t)
	v := newVerifier(t, is.VerifierConfig())
	c := is.Claims("acme")
	c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-30 * time.Second))
	c.NotBefore = jwt.NewNumericDate(time.Now().Add(30 * time.Second))
	if _, err := v.Verify(t.Context(), is.Sign(t, c)); err != nil {
		t.Errorf("30 s of skew: %v", err)
	}
}

func TestVerifyRefetchesOnceOnRotation(t *testing.T) {
	t.Parallel()
	is := authtest.NewIssuer(t)
	clk := newClock()
	cfg := is.VerifierConfig()
	cfg.Now = clk.Now
	v := newVerifier(t, cfg)
	old := is.Token(t, "acme")
	if _, err := v.Verify(t.Context(), old); err != nil {
		t.Fatal(err)
	}
	if got := is.JWKSHits(); got != 1 {
		t.Fatalf("JWKS hits after first verify = %d, want 1", got)
	}
	is.Rotate(t)
	fresh := is.Token(t, "acme")
	// Right after a fetch the new kid is not fetched: refreshes are rate-limited.
	if _, err := v.Verify(t.Context(), fresh); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("new kid within MinRefreshInterval: err = %v, want unknown key", err)
	}
	if got := is.JWKSHits(); got != 1 {
		t.Fatalf("JWKS hits = %d, want 1 (rate-limited)", got)
	}
	clk.Advance(auth.DefaultMinRefreshInterval + time.Second)
	for range 5 {
		if _, err := v.Verify(t.Context(), fresh); err != nil {
			t.Fatalf("new kid after rotation: %v", err)
		}
		if _, err := v.Verify(t.Context(), old); err != nil {
			t.Fatalf("previous key while still published: %v", err)
		}
	}
	if got := is.JWKSHits(); got != 2 {
		t.Errorf("JWKS hits = %d, want 2 (one refetch for the new kid)", got)
	}
	// The cache expires after CacheTTL: one more fetch.
	clk.Advance(auth.DefaultCacheTTL)
	if _, err := v.Verify(t.Context(), fresh); err != nil {
		t.Fatal(err)
	}
	if got := is.JWKSHits(); got != 3 {
		t.Errorf("JWKS hits after CacheTTL = %d, want 3", got)
	}
}

func TestVerifyRateLimitsRefetchUnderUnknownKidFlood(t *testing.T) {
	t.Parallel()
	is := authtest.NewIssuer(t)
	clk := newClock()
	cfg := is.VerifierConfig()
	cfg.Now = clk.Now
	v := newVerifier(t, cfg)
	if _, err := v.Verify(t.Context(), is.Token(t, "acme")); err != nil {
		t.Fatal(err)
	}
	flood := func() {
		var wg sync.WaitGroup
		for range 100 {
			wg.Go(func() {
				tok := authtest.SignWith(t, authtest.NewKey(t), is.Claims("acme"))
				if _, err := v.Verify(t.Context(), tok); !errors.Is(err, auth.ErrInvalidToken) {
					t.Errorf("unknown kid: err = %v", err)
				}
			})
		}
		wg.Wait()
	}
	clk.Advance(auth.DefaultMinRefreshInterval + time.Second)
	flood()
	if got := is.JWKSHits(); got != 2 {
		t.Errorf("JWKS hits after a flood = %d, want 2 (one refetch)", got)
	}
	flood()
	if got := is.JWKSHits(); got != 2 {
		t.Errorf("JWKS hits after a second flood = %d, want still 2", got)
	}
}

func TestVerifyCoalescesConcurrentFetches(t *testing.T) {
	t.Parallel()
	is := authtest.NewIssuer(t)
	release := make(chan struct{})
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		<-release
		b, _ := auth.JWKS(is.Key())
		_, _ = w.Write(b)
	}))
	t.Cleanup(srv.Close)
	cfg := is.VerifierConfig()
	cfg.JWKSURL, cfg.HTTPClient = srv.URL, srv.Client()
	cfg.Now = newClock().Now
	v := newVerifier(t, cfg)
	tok := is.Token(t, "acme")
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if _, err := v.Verify(t.Context(), tok); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
	for hits.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // let the others queue behind the fetch
	close(release)
	wg.Wait()
	if got := hits.Load(); got != 1 {
		t.Errorf("JWKS hits = %d, want 1", got)
	}
}

func TestVerifyJWKSUnavailable(t *testing.T) {
	t.Parallel()
	is := authtest.NewIssuer(t)
	var failing atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		b, _ := auth.JWKS(is.Key())
		_, _ = w.Write(b)
	}))
	t.Cleanup(srv.Close)
	clk := newClock()
	cfg := is.VerifierConfig()
	cfg.JWKSURL, cfg.HTTPClient, cfg.Now = srv.URL, srv.Client(), clk.Now
	tok := is.Token(t, "acme")

	failing.Store(true)
	v := newVerifier(t, cfg)
	if _, err := v.Verify(t.Context(), tok); !errors.Is(err, auth.ErrJWKSUnavailable) || errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("JWKS down on first use: err = %v, want ErrJWKSUnavailable", err)
	}
	failing.Store(false)
	clk.Advance(auth.DefaultMinRefreshInterval + time.Second)
	if _, err := v.Verify(t.Context(), tok); err != nil {
		t.Fatalf("JWKS back: %v", err)
	}
	// Down again after the cache expired: the stale keys stay in use.
	failing.Store(true)
	clk.Advance(auth.DefaultCacheTTL + time.Second)
	if _, err := v.Verify(t.Context(), tok); err != nil {
		t.Errorf("stale keys while JWKS is down: %v", err)
	}
	// An unknown kid cannot be told apart from a new key: unavailable, not invalid.
	clk.Advance(auth.DefaultMinRefreshInterval + time.Second)
	other := authtest.SignWith(t, authtest.NewKey(t), is.Claims("acme"))
	if _, err := v.Verify(t.Context(), other); !errors.Is(err, auth.ErrJWKSUnavailable) {
		t.Errorf("unknown kid while JWKS is down: err = %v", err)
	}

	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	cfg.JWKSURL = closed.URL
	if _, err := newVerifier(t, cfg).Verify(t.Context(), tok); !errors.Is(err, auth.ErrJWKSUnavailable) {
		t.Errorf("JWKS unreachable: err = %v", err)
	}
}

func TestNewVerifierRejectsBadConfig(t *testing.T) {
	t.Parallel()
	ok := auth.VerifierConfig{JWKSURL: "http://auth:8080/.well-known/jwks.json", Issuer: "aigw", Audience: "aigw-api"}
	if _, err := auth.NewVerifier(ok); err != nil {
		t.Fatalf("good config: %v", err)
	}
	tests := map[string]func(c *auth.VerifierConfig){
		"no JWKS URL":       func(c *auth.VerifierConfig) { c.JWKSURL = "" },
		"relative JWKS URL": func(c *auth.VerifierConfig) { c.JWKSURL = "/jwks.json" },
		"ftp JWKS URL":      func(c *auth.VerifierConfig) { c.JWKSURL = "ftp://x/jwks.json" },
		"no issuer":         func(c *auth.VerifierConfig) { c.Issuer = "" },
		"no audience":       func(c *auth.VerifierConfig) { c.Audience = "" },
		"leeway over 60s":   func(c *auth.VerifierConfig) { c.Leeway = 61 * time.Second },
		"negative leeway":   func(c *auth.VerifierConfig) { c.Leeway = -time.Second },
		"negative TTL":      func(c *auth.VerifierConfig) { c.CacheTTL = -time.Second },
		"negative refresh":  func(c *auth.VerifierConfig) { c.MinRefreshInterval = -time.Second },
		"alg none":          func(c *auth.VerifierConfig) { c.Algorithms = []string{"none"} },
		"alg HS256":         func(c *auth.VerifierConfig) { c.Algorithms = []string{auth.AlgEdDSA, "HS256"} },
		"unsupported ES256": func(c *auth.VerifierConfig) { c.Algorithms = []string{"ES256"} },
	}
	for name, f := range tests {
		t.Run(name, func(t *testing.T) {
			c := ok
			f(&c)
			if _, err := auth.NewVerifier(c); err == nil {
				t.Error("NewVerifier accepted it")
			}
		})
	}
}

func TestThumbprintRFCVectors(t *testing.T) {
	t.Parallel()
	// RFC 7638 §3.1.
	n, err := base64.RawURLEncoding.DecodeString("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")
	if err != nil {
		t.Fatal(err)
	}
	got, err := auth.Thumbprint(&rsa.PublicKey{N: new(big.Int).SetBytes(n), E: 65537})
	if err != nil || got != "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs" {
		t.Errorf("RSA thumbprint = %q, %v", got, err)
	}
	// RFC 8037 appendix A.3.
	x, _ := base64.RawURLEncoding.DecodeString("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
	got, err = auth.Thumbprint(ed25519.PublicKey(x))
	if err != nil || got != "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k" {
		t.Errorf("Ed25519 thumbprint = %q, %v", got, err)
	}
}

func TestContextRoundTrip(t *testing.T) {
	t.Parallel()
	if _, ok := auth.FromContext(context.Background()); ok {
		t.Error("claims in an empty context")
	}
	c := &auth.Claims{Tenant: "acme"}
	got, ok := auth.FromContext(auth.WithClaims(context.Background(), c))
	if !ok || got != c {
		t.Errorf("FromContext = %v, %v", got, ok)
	}
}
