package auth

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/golang-jwt/jwt/v5"
)

// Key is a signing key: its ID (the `kid` header of the tokens it signs), its
// algorithm (AlgEdDSA or AlgRS256) and the private key.
type Key struct {
	ID      string
	Alg     string
	Private crypto.Signer
}

// ParsePrivateKeyPEM parses a PKCS#8 "PRIVATE KEY" PEM block holding an
// Ed25519 key (alg EdDSA) or an RSA key of at least 2048 bits (alg RS256).
// The key ID is the block's "kid" header when given, else the RFC 7638
// thumbprint of the public key, so a key always gets the same ID.
func ParsePrivateKeyPEM(data []byte) (Key, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return Key{}, errors.New("signing key: no PEM block found")
	}
	if block.Type != "PRIVATE KEY" {
		return Key{}, fmt.Errorf("signing key: PEM block %q, want \"PRIVATE KEY\" (PKCS#8; convert with `openssl pkcs8 -topk8 -nocrypt`)", block.Type)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return Key{}, fmt.Errorf("signing key: %w", err)
	}
	var k Key
	switch p := parsed.(type) {
	case ed25519.PrivateKey:
		k = Key{Alg: AlgEdDSA, Private: p}
	case *rsa.PrivateKey:
		if bits := p.N.BitLen(); bits < MinRSABits {
			return Key{}, fmt.Errorf("signing key: RSA key of %d bits, want at least %d", bits, MinRSABits)
		}
		k = Key{Alg: AlgRS256, Private: p}
	default:
		return Key{}, fmt.Errorf("signing key: %T keys are not supported; use Ed25519 or RSA", parsed)
	}
	if kid := block.Headers["kid"]; kid != "" {
		k.ID = kid
		return k, nil
	}
	if k.ID, err = Thumbprint(k.Private.Public()); err != nil {
		return Key{}, fmt.Errorf("signing key: %w", err)
	}
	return k, nil
}

// MarshalPrivateKeyPEM encodes priv (Ed25519 or RSA) as a PKCS#8 PEM block.
func MarshalPrivateKeyPEM(priv crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func (k Key) check() error {
	if k.ID == "" {
		return errors.New("signing key has no ID")
	}
	switch p := k.Private.(type) {
	case ed25519.PrivateKey:
		if k.Alg != AlgEdDSA {
			return fmt.Errorf("signing key %q: an Ed25519 key signs %s, not %q", k.ID, AlgEdDSA, k.Alg)
		}
	case *rsa.PrivateKey:
		if k.Alg != AlgRS256 {
			return fmt.Errorf("signing key %q: an RSA key signs %s, not %q", k.ID, AlgRS256, k.Alg)
		}
		if bits := p.N.BitLen(); bits < MinRSABits {
			return fmt.Errorf("signing key %q: RSA key of %d bits, want at least %d", k.ID, bits, MinRSABits)
		}
	default:
		return fmt.Errorf("signing key %q: %T keys are not supported", k.ID, k.Private)
	}
	return nil
}

// JWKS returns the public JWK set (RFC 7517 §5) of keys, in order.
func JWKS(keys ...Key) ([]byte, error) {
	set := struct {
		Keys []jwk `json:"keys"`
	}{Keys: []jwk{}}
	seen := map[string]bool{}
	for _, k := range keys {
		if err := k.check(); err != nil {
			return nil, err
		}
		if seen[k.ID] {
			return nil, fmt.Errorf("two signing keys share the ID %q", k.ID)
		}
		seen[k.ID] = true
		j, err := publicJWK(k.ID, k.Alg, k.Private.Public())
		if err != nil {
			return nil, err
		}
		set.Keys = append(set.Keys, j)
	}
	return json.Marshal(set)
}

// Sign returns claims as a JWT signed with key, with key.ID as its kid header.
func Sign(key Key, claims jwt.Claims) (string, error) {
	if err := key.check(); err != nil {
		return "", err
	}
	var method jwt.SigningMethod = jwt.SigningMethodEdDSA
	if key.Alg == AlgRS256 {
		method = jwt.SigningMethodRS256
	}
	t := jwt.NewWithClaims(method, claims)
	t.Header["kid"] = key.ID
	s, err := t.SignedString(key.Private)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}
