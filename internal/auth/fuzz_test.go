package auth_test

import (
	"bytes"
	"crypto/ed25519"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/aigw/aigw/internal/auth"
)

// Fuzzing uses a fixed key and a fixed clock so that the seed corpus in
// testdata/fuzz/FuzzVerify (tokens signed by this key: expired, for another
// audience, tampered, alg none, HS256 with the public key, no kid …) keeps
// reaching the same code on every run.
var (
	fuzzKey = func() auth.Key {
		priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x42}, ed25519.SeedSize))
		kid, err := auth.Thumbprint(priv.Public())
		if err != nil {
			panic(err)
		}
		return auth.Key{ID: kid, Alg: auth.AlgEdDSA, Private: priv}
	}()
	fuzzNow      = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	fuzzIssuer   = "https://auth.fuzz.test"
	fuzzAudience = "aigw-api"
)

func fuzzVerifier(tb testing.TB) *auth.Verifier {
	jwks, err := auth.JWKS(fuzzKey)
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(jwks) }))
	tb.Cleanup(srv.Close)
	v, err := auth.NewVerifier(auth.VerifierConfig{JWKSURL: srv.URL, Issuer: fuzzIssuer, Audience: fuzzAudience,
		HTTPClient: srv.Client(), Now: func() time.Time { return fuzzNow }})
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// TestFuzzVerifierAcceptsGoodToken proves the fuzz target's verifier is set up
// right: a well-formed token for its key and clock passes, so the seeds'
// rejections come from what is wrong with each of them.
func TestFuzzVerifierAcceptsGoodToken(t *testing.T) {
	t.Parallel()
	tok, err := auth.Sign(fuzzKey, &auth.Claims{RegisteredClaims: jwt.RegisteredClaims{
		Issuer: fuzzIssuer, Subject: "cl_fuzz", Audience: jwt.ClaimStrings{fuzzAudience},
		ExpiresAt: jwt.NewNumericDate(fuzzNow.Add(time.Hour))}, Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fuzzVerifier(t).Verify(t.Context(), tok); err != nil {
		t.Fatalf("good token: %v", err)
	}
}

func FuzzVerify(f *testing.F) {
	v := fuzzVerifier(f)
	f.Add("")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, token string) {
		if c, err := v.Verify(t.Context(), token); err == nil {
			t.Fatalf("accepted %q: %+v", token, c)
		}
	})
}
