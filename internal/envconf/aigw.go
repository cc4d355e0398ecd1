package envconf

import (
	"fmt"
	"strings"
)

// Settings that several binaries share, read one way everywhere: each value
// may come from its OpenFaaS secret file (when the reader has a secrets
// directory) or else from its variable.
const (
	SecretMongoURI      = "aigw-mongo-uri"
	SecretRedisAddrs    = "aigw-redis-addrs"
	SecretRedisPassword = "aigw-redis-password"
	SecretAdminToken    = "aigw-admin-token"

	EnvMongoURI      = "AIGW_MONGO_URI"
	EnvMongoDB       = "AIGW_MONGO_DB"
	EnvRedisAddrs    = "AIGW_REDIS_ADDRS"
	EnvRedisPassword = "AIGW_REDIS_PASSWORD"
	EnvAdminToken    = "AIGW_ADMIN_TOKEN"
	EnvJWKSURL       = "AIGW_JWKS_URL"
	EnvIssuer        = "AIGW_ISSUER"
	EnvAudience      = "AIGW_AUDIENCE"
)

// Defaults of the shared settings. The token settings default to what the
// auth function issues with its own defaults, behind the local gateway.
const (
	DefaultMongoDB  = "aigw"
	DefaultJWKSURL  = "http://127.0.0.1:8080/function/auth/.well-known/jwks.json"
	DefaultIssuer   = "aigw"
	DefaultAudience = "aigw-api"
)

// MongoURI is the secret aigw-mongo-uri, else $AIGW_MONGO_URI: a mongodb:// or
// mongodb+srv:// URI. Missing is an error when required.
func (r *Reader) MongoURI(required bool) string {
	var v string
	if required {
		v = r.RequiredSecret(SecretMongoURI, EnvMongoURI)
	} else {
		v = r.Secret(SecretMongoURI, EnvMongoURI)
	}
	if v != "" && !strings.HasPrefix(v, "mongodb://") && !strings.HasPrefix(v, "mongodb+srv://") {
		r.errs = append(r.errs, fmt.Errorf("MongoDB URI (secret %s or %s): want a mongodb:// or mongodb+srv:// URI", SecretMongoURI, EnvMongoURI))
		return ""
	}
	return v
}

// MongoDB is the database name ($AIGW_MONGO_DB, default aigw): 1-63 letters,
// digits, '_' or '-'.
func (r *Reader) MongoDB() string {
	return Parse(r, EnvMongoDB, DefaultMongoDB, func(v string) (string, error) {
		if len(v) > 63 || !validDBName(v) {
			return "", errString("want 1-63 letters, digits, '_' or '-'")
		}
		return v, nil
	})
}

func validDBName(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return s != ""
}

// RedisAddrs is the secret aigw-redis-addrs, else $AIGW_REDIS_ADDRS, parsed by
// parse (redisconn.ParseAddrs). Missing is an error when required, else nil.
func (r *Reader) RedisAddrs(required bool, parse func(string) ([]string, error)) []string {
	var v string
	if required {
		v = r.RequiredSecret(SecretRedisAddrs, EnvRedisAddrs)
	} else {
		v = r.Secret(SecretRedisAddrs, EnvRedisAddrs)
	}
	if v == "" {
		return nil
	}
	addrs, err := parse(v)
	if err != nil {
		r.errs = append(r.errs, fmt.Errorf("redis addresses (secret %s or %s): %w", SecretRedisAddrs, EnvRedisAddrs, err))
		return nil
	}
	return addrs
}

// RedisPassword is the secret aigw-redis-password, else $AIGW_REDIS_PASSWORD
// (default none).
func (r *Reader) RedisPassword() string { return r.Secret(SecretRedisPassword, EnvRedisPassword) }

// Verifier is how tokens are verified: the JWK set's URL ($AIGW_JWKS_URL), the
// issuer ($AIGW_ISSUER) and audience ($AIGW_AUDIENCE), each with its default.
func (r *Reader) Verifier() (jwksURL, issuer, audience string) {
	return r.URL(EnvJWKSURL, DefaultJWKSURL), r.String(EnvIssuer, DefaultIssuer), r.String(EnvAudience, DefaultAudience)
}

type errString string

func (e errString) Error() string { return string(e) }
