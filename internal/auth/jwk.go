package auth

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
)

// Signing algorithms aigw accepts. Never "none", never HS*: a verifier holds
// only public keys.
const (
	AlgEdDSA = "EdDSA"
	AlgRS256 = "RS256"
)

// MinRSABits is the smallest RSA modulus accepted for RS256.
const MinRSABits = 2048

// jwk is one JSON Web Key (RFC 7517) of the kinds aigw uses: OKP/Ed25519
// (RFC 8037) and RSA (RFC 7518 §6.3).
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid,omitempty"`
	Use string `json:"use,omitempty"`
	Alg string `json:"alg,omitempty"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
}

type jwkSet struct {
	Keys []json.RawMessage `json:"keys"`
}

// publicKey is a verification key with the one algorithm it may verify.
type publicKey struct {
	alg string
	key crypto.PublicKey // ed25519.PublicKey or *rsa.PublicKey
}

var b64 = base64.RawURLEncoding

// parseJWK turns a JWK into a verification key, checking that its type, curve,
// size, use and declared alg fit one of the accepted algorithms.
func parseJWK(k jwk) (publicKey, error) {
	if k.Use != "" && k.Use != "sig" {
		return publicKey{}, fmt.Errorf("key use %q, want sig", k.Use)
	}
	var pk publicKey
	switch k.Kty {
	case "OKP":
		if k.Crv != "Ed25519" {
			return pk, fmt.Errorf("OKP key on curve %q, want Ed25519", k.Crv)
		}
		x, err := b64.DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return pk, errors.New("Ed25519 key: x is not a base64url 32-byte public key")
		}
		pk = publicKey{alg: AlgEdDSA, key: ed25519.PublicKey(x)}
	case "RSA":
		nb, err := b64.DecodeString(k.N)
		if err != nil || len(nb) == 0 {
			return pk, errors.New("RSA key: n is not base64url")
		}
		eb, err := b64.DecodeString(k.E)
		if err != nil || len(eb) == 0 || len(eb) > 4 {
			return pk, errors.New("RSA key: e is not a base64url integer of at most 32 bits")
		}
		n := new(big.Int).SetBytes(nb)
		e := new(big.Int).SetBytes(eb)
		if e.Int64() < 3 || e.Bit(0) == 0 {
			return pk, fmt.Errorf("RSA key: exponent %d is not an odd number ≥ 3", e.Int64())
		}
		if n.BitLen() < MinRSABits {
			return pk, fmt.Errorf("RSA key of %d bits, want at least %d", n.BitLen(), MinRSABits)
		}
		pk = publicKey{alg: AlgRS256, key: &rsa.PublicKey{N: n, E: int(e.Int64())}}
	default:
		return pk, fmt.Errorf("key type %q, want OKP (Ed25519) or RSA", k.Kty)
	}
	if k.Alg != "" && k.Alg != pk.alg {
		return pk, fmt.Errorf("%s key declares alg %q, want %s", k.Kty, k.Alg, pk.alg)
	}
	return pk, nil
}

// publicJWK describes pub as a JWK with the given kid and alg.
func publicJWK(kid, alg string, pub crypto.PublicKey) (jwk, error) {
	switch p := pub.(type) {
	case ed25519.PublicKey:
		return jwk{Kty: "OKP", Kid: kid, Use: "sig", Alg: alg, Crv: "Ed25519", X: b64.EncodeToString(p)}, nil
	case *rsa.PublicKey:
		return jwk{Kty: "RSA", Kid: kid, Use: "sig", Alg: alg,
			N: b64.EncodeToString(p.N.Bytes()), E: b64.EncodeToString(big.NewInt(int64(p.E)).Bytes())}, nil
	default:
		return jwk{}, fmt.Errorf("unsupported public key type %T", pub)
	}
}

// Thumbprint returns the RFC 7638 JWK SHA-256 thumbprint of pub, base64url
// encoded: the default key ID.
func Thumbprint(pub crypto.PublicKey) (string, error) {
	k, err := publicJWK("", "", pub)
	if err != nil {
		return "", err
	}
	// The required members only, in lexicographic order, no white space.
	var canon string
	switch k.Kty {
	case "OKP":
		canon = fmt.Sprintf(`{"crv":%q,"kty":"OKP","x":%q}`, k.Crv, k.X)
	case "RSA":
		canon = fmt.Sprintf(`{"e":%q,"kty":"RSA","n":%q}`, k.E, k.N)
	}
	sum := sha256.Sum256([]byte(canon))
	return b64.EncodeToString(sum[:]), nil
}
