package authfn_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aigw/aigw/functions/authfn"
	jwtauth "github.com/aigw/aigw/internal/auth"
	"github.com/aigw/aigw/internal/fnserve"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestReadConfig(t *testing.T) {
	t.Parallel()
	c, err := authfn.ReadConfig(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c != (authfn.Config{Issuer: "aigw", Audience: "aigw-api", TokenTTL: 15 * time.Minute, MongoDB: "aigw"}) {
		t.Errorf("defaults = %+v", c)
	}
	c, err = authfn.ReadConfig(env(map[string]string{"AIGW_ISSUER": "https://auth.example", "AIGW_AUDIENCE": "api",
		"AIGW_TOKEN_TTL": "1h", "AIGW_MONGO_DB": "aigw_prod"}))
	if err != nil {
		t.Fatal(err)
	}
	if c != (authfn.Config{Issuer: "https://auth.example", Audience: "api", TokenTTL: time.Hour, MongoDB: "aigw_prod"}) {
		t.Errorf("overrides = %+v", c)
	}
	for _, bad := range []map[string]string{
		{"AIGW_TOKEN_TTL": "15"}, {"AIGW_TOKEN_TTL": "25h"}, {"AIGW_TOKEN_TTL": "-1m"}, {"AIGW_TOKEN_TTL": "10s"},
		{"AIGW_MONGO_DB": "a.b"}, {"AIGW_MONGO_DB": "a/b"}, {"AIGW_MONGO_DB": strings.Repeat("a", 64)},
	} {
		if _, err := authfn.ReadConfig(env(bad)); err == nil {
			t.Errorf("%v: accepted", bad)
		}
	}
}

func writeSecrets(t *testing.T, files map[string]string) fnserve.Config {
	t.Helper()
	dir := t.TempDir()
	for name, v := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return fnserve.Config{SecretsDir: dir}
}

func TestReadSecrets(t *testing.T) {
	t.Parallel()
	cur, _ := authfn.GenerateKeyPEM()
	prev, _ := authfn.GenerateKeyPEM()
	full := map[string]string{authfn.SecretMongoURI: "mongodb://db:27017/\n", authfn.SecretSigningKey: string(cur),
		authfn.SecretSigningKeyPrevious: string(prev), authfn.SecretAdminToken: adminToken + "\n"}
	s, err := authfn.ReadSecrets(writeSecrets(t, full), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	ck, _ := jwtauth.ParsePrivateKeyPEM(cur)
	pk, _ := jwtauth.ParsePrivateKeyPEM(prev)
	if s.MongoURI != "mongodb://db:27017/" || s.AdminToken != adminToken || len(s.Keys) != 2 ||
		s.Keys[0].ID != ck.ID || s.Keys[1].ID != pk.ID {
		t.Errorf("secrets = %+v", s)
	}

	without := func(drop string, extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range full {
			if k != drop {
				m[k] = v
			}
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	// The previous key is optional; the MongoDB URI falls back to the env.
	s, err = authfn.ReadSecrets(writeSecrets(t, without(authfn.SecretSigningKeyPrevious, nil)), env(nil))
	if err != nil || len(s.Keys) != 1 {
		t.Errorf("no previous key: %d keys, %v", len(s.Keys), err)
	}
	s, err = authfn.ReadSecrets(writeSecrets(t, without(authfn.SecretMongoURI, nil)), env(map[string]string{"AIGW_MONGO_URI": "mongodb://local/"}))
	if err != nil || s.MongoURI != "mongodb://local/" {
		t.Errorf("env fallback: %q, %v", s.MongoURI, err)
	}
	for name, files := range map[string]map[string]string{
		"no mongo uri":      without(authfn.SecretMongoURI, nil),
		"no signing key":    without(authfn.SecretSigningKey, nil),
		"no admin token":    without(authfn.SecretAdminToken, nil),
		"short admin token": without("", map[string]string{authfn.SecretAdminToken: "short"}),
		"bad signing key":   without("", map[string]string{authfn.SecretSigningKey: "not a key"}),
		"bad previous key":  without("", map[string]string{authfn.SecretSigningKeyPrevious: "not a key"}),
		"same key twice":    without("", map[string]string{authfn.SecretSigningKeyPrevious: string(cur)}),
	} {
		if _, err := authfn.ReadSecrets(writeSecrets(t, files), env(nil)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
