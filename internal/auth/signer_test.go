package auth_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/aigw/aigw/internal/auth"
	"github.com/aigw/aigw/internal/auth/authtest"
)

func TestParsePrivateKeyPEM(t *testing.T) {
	t.Parallel()
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	edPEM, err := auth.MarshalPrivateKeyPEM(edPriv)
	if err != nil {
		t.Fatal(err)
	}
	k, err := auth.ParsePrivateKeyPEM(edPEM)
	if err != nil {
		t.Fatalf("Ed25519: %v", err)
	}
	want, _ := auth.Thumbprint(edPriv.Public())
	if k.Alg != auth.AlgEdDSA || k.ID != want {
		t.Errorf("Ed25519 key = %s %s, want EdDSA %s", k.Alg, k.ID, want)
	}
	if again, _ := auth.ParsePrivateKeyPEM(edPEM); again.ID != k.ID {
		t.Error("the key ID is not stable")
	}

	der, _ := x509.MarshalPKCS8PrivateKey(edPriv)
	withKid := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Headers: map[string]string{"kid": "2026-11"}, Bytes: der})
	if k, err := auth.ParsePrivateKeyPEM(withKid); err != nil || k.ID != "2026-11" {
		t.Errorf("kid header: %+v, %v", k.ID, err)
	}

	rsaPriv, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsaPEM, _ := auth.MarshalPrivateKeyPEM(rsaPriv)
	if k, err := auth.ParsePrivateKeyPEM(rsaPEM); err != nil || k.Alg != auth.AlgRS256 {
		t.Errorf("RSA: %+v, %v", k, err)
	}

	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	smallPEM, _ := auth.MarshalPrivateKeyPEM(small)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecPEM, _ := auth.MarshalPrivateKeyPEM(ec)
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaPriv)})
	for name, in := range map[string][]byte{
		"empty": nil, "garbage": []byte("hello"), "RSA 1024": smallPEM, "ECDSA": ecPEM, "PKCS#1": pkcs1,
		"bad DER": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}}),
	} {
		if _, err := auth.ParsePrivateKeyPEM(in); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestJWKSPublishesPublicKeysOnly(t *testing.T) {
	t.Parallel()
	a, b := authtest.NewKey(t), authtest.NewKey(t)
	rsaPriv, _ := rsa.GenerateKey(rand.Reader, 2048)
	r := auth.Key{ID: "rsa-1", Alg: auth.AlgRS256, Private: rsaPriv}
	body, err := auth.JWKS(a, b, r)
	if err != nil {
		t.Fatal(err)
	}
	var set struct{ Keys []map[string]string }
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 3 || set.Keys[0]["kid"] != a.ID || set.Keys[1]["kid"] != b.ID || set.Keys[2]["kid"] != "rsa-1" {
		t.Fatalf("keys = %v", set.Keys)
	}
	for _, k := range set.Keys {
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi"} {
			if _, ok := k[private]; ok {
				t.Errorf("key %s publishes private member %q", k["kid"], private)
			}
		}
		if k["use"] != "sig" {
			t.Errorf("key %s use = %q", k["kid"], k["use"])
		}
	}
	if set.Keys[0]["kty"] != "OKP" || set.Keys[0]["crv"] != "Ed25519" || set.Keys[0]["alg"] != "EdDSA" {
		t.Errorf("Ed25519 JWK = %v", set.Keys[0])
	}
	if set.Keys[2]["kty"] != "RSA" || set.Keys[2]["e"] != "AQAB" || set.Keys[2]["alg"] != "RS256" {
		t.Errorf("RSA JWK = %v", set.Keys[2])
	}
	if _, err := auth.JWKS(a, a); err == nil || !strings.Contains(err.Error(), a.ID) {
		t.Errorf("duplicate kid: %v", err)
	}
	if _, err := auth.JWKS(auth.Key{ID: "x", Alg: auth.AlgRS256, Private: a.Private}); err == nil {
		t.Error("Ed25519 key labelled RS256 accepted")
	}
	if empty, err := auth.JWKS(); err != nil || string(empty) != `{"keys":[]}` {
		t.Errorf("empty set = %s, %v", empty, err)
	}
}

func TestSignRequiresKeyID(t *testing.T) {
	t.Parallel()
	k := authtest.NewKey(t)
	k.ID = ""
	if _, err := auth.Sign(k, &auth.Claims{Tenant: "acme"}); err == nil {
		t.Error("signed without a kid")
	}
}
