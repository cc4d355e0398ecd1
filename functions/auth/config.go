// Package auth is the auth function: it issues access tokens to API clients
// (OAuth 2.0 client-credentials grant, RFC 6749 §4.4), publishes the public
// keys that verify them (GET /.well-known/jwks.json) and lets an
// administrator create, list and revoke clients.
package auth

import (
	"errors"
	"fmt"
	"time"

	jwtauth "github.com/aigw/aigw/internal/auth"
	"github.com/aigw/aigw/internal/fnserve"
)

// Secret names (files in the OpenFaaS secrets directory).
const (
	SecretMongoURI           = "aigw-mongo-uri"
	SecretSigningKey         = "aigw-jwt-signing-key"
	SecretSigningKeyPrevious = "aigw-jwt-signing-key-previous"
	SecretAdminToken         = "aigw-admin-token"
)

// Config limits.
const (
	DefaultTokenTTL = 15 * time.Minute
	MaxTokenTTL     = 24 * time.Hour
	// MinAdminTokenLen rejects guessable admin tokens.
	MinAdminTokenLen = 16
)

// Config is the function's environment.
type Config struct {
	// Issuer is the iss of issued tokens ($AIGW_ISSUER, default "aigw").
	Issuer string
	// Audience is their aud ($AIGW_AUDIENCE, default "aigw-api").
	Audience string
	// TokenTTL is their lifetime ($AIGW_TOKEN_TTL, default 15m, at most 24h).
	TokenTTL time.Duration
	// MongoDB is the database name ($AIGW_MONGO_DB, default "aigw").
	MongoDB string
}

// ReadConfig reads Config through getenv; bad values are errors.
func ReadConfig(getenv func(string) string) (Config, error) {
	c := Config{Issuer: "aigw", Audience: "aigw-api", TokenTTL: DefaultTokenTTL, MongoDB: "aigw"}
	if v := getenv("AIGW_ISSUER"); v != "" {
		c.Issuer = v
	}
	if v := getenv("AIGW_AUDIENCE"); v != "" {
		c.Audience = v
	}
	if v := getenv("AIGW_TOKEN_TTL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Minute || d > MaxTokenTTL {
			return c, fmt.Errorf("AIGW_TOKEN_TTL=%q: want a duration from 1m to %v, such as 15m", v, MaxTokenTTL)
		}
		c.TokenTTL = d
	}
	if v := getenv("AIGW_MONGO_DB"); v != "" {
		if len(v) > 63 || !validDBName(v) {
			return c, fmt.Errorf("AIGW_MONGO_DB=%q: want 1-63 letters, digits, '_' or '-'", v)
		}
		c.MongoDB = v
	}
	return c, nil
}

func validDBName(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return s != ""
}

// Secrets are what the function reads from its secret files.
type Secrets struct {
	MongoURI string
	// Keys are the signing keys: the current one first, then the previous one
	// (still published in the JWK set so that its tokens verify until they expire).
	Keys       []jwtauth.Key
	AdminToken string
}

// ReadSecrets reads the function's secrets from fc's secrets directory. The
// MongoDB URI falls back to $AIGW_MONGO_URI for local runs.
func ReadSecrets(fc fnserve.Config, getenv func(string) string) (Secrets, error) {
	var s Secrets
	var err error
	if s.MongoURI, err = fc.OptionalSecret(SecretMongoURI, getenv("AIGW_MONGO_URI")); err != nil {
		return s, err
	}
	if s.MongoURI == "" {
		return s, fmt.Errorf("no MongoDB URI: create the secret %s or set AIGW_MONGO_URI", SecretMongoURI)
	}
	if s.Keys, err = ReadSigningKeys(fc); err != nil {
		return s, err
	}
	if s.AdminToken, err = fc.Secret(SecretAdminToken); err != nil {
		return s, err
	}
	if len(s.AdminToken) < MinAdminTokenLen {
		return s, fmt.Errorf("secret %s: the admin token is shorter than %d characters", SecretAdminToken, MinAdminTokenLen)
	}
	return s, nil
}

// ReadSigningKeys reads the current signing key and, when present, the previous one.
func ReadSigningKeys(fc fnserve.Config) ([]jwtauth.Key, error) {
	cur, err := fc.Secret(SecretSigningKey)
	if err != nil {
		return nil, err
	}
	k, err := jwtauth.ParsePrivateKeyPEM([]byte(cur))
	if err != nil {
		return nil, fmt.Errorf("secret %s: %w", SecretSigningKey, err)
	}
	keys := []jwtauth.Key{k}
	prev, err := fc.OptionalSecret(SecretSigningKeyPrevious, "")
	if err != nil {
		return nil, err
	}
	if prev != "" {
		pk, err := jwtauth.ParsePrivateKeyPEM([]byte(prev))
		if err != nil {
			return nil, fmt.Errorf("secret %s: %w", SecretSigningKeyPrevious, err)
		}
		if pk.ID == k.ID {
			return nil, errors.New("the current and previous signing keys have the same key ID; remove the previous one or rotate to a new key")
		}
		keys = append(keys, pk)
	}
	return keys, nil
}
