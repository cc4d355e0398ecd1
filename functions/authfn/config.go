// Package authfn is the auth function: it issues access tokens to API clients
// (OAuth 2.0 client-credentials grant, RFC 6749 §4.4), publishes the public
// keys that verify them (GET /.well-known/jwks.json) and lets an
// administrator create, list and revoke clients.
package authfn

import (
	"errors"
	"fmt"
	"time"

	jwtauth "github.com/aigw/aigw/internal/auth"
	"github.com/aigw/aigw/internal/envconf"
	"github.com/aigw/aigw/internal/fnserve"
)

// Secret names (files in the OpenFaaS secrets directory).
const (
	SecretMongoURI           = envconf.SecretMongoURI
	SecretSigningKey         = "aigw-jwt-signing-key"
	SecretSigningKeyPrevious = "aigw-jwt-signing-key-previous"
	SecretAdminToken         = envconf.SecretAdminToken
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
	r := envconf.FromGetenv(getenv)
	c := Read(r)
	return c, r.Err()
}

// Read reads Config through r (errors stay in r).
func Read(r *envconf.Reader) Config {
	return Config{
		Issuer:   r.String(envconf.EnvIssuer, envconf.DefaultIssuer),
		Audience: r.String(envconf.EnvAudience, envconf.DefaultAudience),
		TokenTTL: r.Duration("AIGW_TOKEN_TTL", DefaultTokenTTL, time.Minute, MaxTokenTTL),
		MongoDB:  r.MongoDB(),
	}
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
// MongoDB URI and the admin token fall back to $AIGW_MONGO_URI and
// $AIGW_ADMIN_TOKEN (as in every binary), for local runs.
func ReadSecrets(fc fnserve.Config, getenv func(string) string) (Secrets, error) {
	r := envconf.FromGetenv(getenv)
	r.SetSecretsDir(fc.SecretsDir)
	s := ReadSecretsFrom(r, fc)
	return s, r.Err()
}

// ReadSecretsFrom reads the secrets through r, whose secrets directory is
// fc's (see fnserve.Read); errors stay in r.
func ReadSecretsFrom(r *envconf.Reader, fc fnserve.Config) Secrets {
	var s Secrets
	s.MongoURI = r.MongoURI(true)
	keys, err := ReadSigningKeys(fc)
	if err != nil {
		r.Fail(err)
	}
	s.Keys = keys
	s.AdminToken = r.RequiredSecret(envconf.SecretAdminToken, envconf.EnvAdminToken)
	if s.AdminToken != "" && len(s.AdminToken) < MinAdminTokenLen {
		r.Fail(fmt.Errorf("secret %s: the admin token is shorter than %d characters", SecretAdminToken, MinAdminTokenLen))
	}
	return s
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
