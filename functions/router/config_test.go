package router

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func getenv(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestReadConfigDefaults(t *testing.T) {
	c, err := ReadConfig(getenv(map[string]string{
		"AIGW_SECRETS_DIR": t.TempDir(), "AIGW_MONGO_URI": "mongodb://db:27017/", "AIGW_REDIS_ADDRS": "r1:7001,r2:7002",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Auth.JWKSURL != DefaultJWKSURL || c.Auth.Issuer != "aigw" || c.Auth.Audience != "aigw-api" || c.MongoDB != "aigw" ||
		c.MaxWait != time.Minute || c.BodyLimit != 1<<20 || c.Heartbeat != 15*time.Second || c.RateLimit.Rate != 50 ||
		c.RateLimit.Burst != 100 || len(c.RedisAddrs) != 2 || c.Fn.Addr != ":8080" || c.PublicURL != "" {
		t.Fatalf("defaults %+v", c)
	}
}

func TestReadConfigSecretsWinAndValuesParse(t *testing.T) {
	dir := t.TempDir()
	for name, v := range map[string]string{"aigw-mongo-uri": "mongodb://secret:27017/\n", "aigw-redis-addrs": "s1:7001", "aigw-redis-password": "pw"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c, err := ReadConfig(getenv(map[string]string{
		"AIGW_SECRETS_DIR": dir, "AIGW_MONGO_URI": "mongodb://env/", "AIGW_REDIS_ADDRS": "e:1",
		"AIGW_MAX_WAIT": "30s", "AIGW_BODY_LIMIT": "4096", "AIGW_RATE_LIMIT_RPS": "0.5", "AIGW_RATE_LIMIT_BURST": "7",
		"AIGW_SSE_HEARTBEAT": "5s", "AIGW_PUBLIC_URL": "https://api.example.com/", "AIGW_ISSUER": "iss", "PORT": "9000",
		"AIGW_WEBHOOK_ALLOWED_NETS": "127.0.0.0/8,10.1.0.0/16",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.MongoURI != "mongodb://secret:27017/" || c.RedisAddrs[0] != "s1:7001" || c.RedisPassword != "pw" || c.MaxWait != 30*time.Second ||
		c.BodyLimit != 4096 || c.RateLimit.Rate != 0.5 || c.RateLimit.Burst != 7 || c.Heartbeat != 5*time.Second ||
		c.PublicURL != "https://api.example.com" || c.Auth.Issuer != "iss" || c.Fn.Addr != ":9000" ||
		fmt.Sprint(c.WebhookAllowedNets) != "[127.0.0.0/8 10.1.0.0/16]" {
		t.Fatalf("config %+v", c)
	}
}

func TestReadConfigRefusesBadValues(t *testing.T) {
	base := map[string]string{"AIGW_MONGO_URI": "mongodb://db/", "AIGW_REDIS_ADDRS": "r:1"}
	for name, bad := range map[string]string{
		"AIGW_MAX_WAIT": "forever", "AIGW_SSE_HEARTBEAT": "10ms", "AIGW_BODY_LIMIT": "1k", "AIGW_RATE_LIMIT_RPS": "-1",
		"AIGW_RATE_LIMIT_BURST": "0", "AIGW_PUBLIC_URL": "api.example.com", "AIGW_JWKS_URL": "jwks.json",
		"AIGW_MONGO_URI": "postgres://x", "AIGW_REDIS_ADDRS": "nohost", "PORT": "http",
		"AIGW_WEBHOOK_ALLOWED_NETS": "intranet",
	} {
		env := map[string]string{"AIGW_SECRETS_DIR": t.TempDir()}
		for k, v := range base {
			env[k] = v
		}
		env[name] = bad
		_, err := ReadConfig(getenv(env))
		if err == nil {
			t.Errorf("%s=%q accepted", name, bad)
			continue
		}
		if !strings.Contains(err.Error(), name) && name != "AIGW_MONGO_URI" && name != "AIGW_REDIS_ADDRS" {
			t.Errorf("%s=%q: error %q does not name it", name, bad, err)
		}
	}
}

// TestReadConfigSharedSettings: the Redis password falls back to
// AIGW_REDIS_PASSWORD as in every binary (the router read only the secret),
// the queue's shard count is read as by the orchestrator and workers, and
// every bad value is reported at once.
func TestReadConfigSharedSettings(t *testing.T) {
	env := map[string]string{"AIGW_SECRETS_DIR": t.TempDir(), "AIGW_MONGO_URI": "mongodb://db/", "AIGW_REDIS_ADDRS": "r:1",
		"AIGW_REDIS_PASSWORD": "pw", "AIGW_QUEUE_SHARDS": "4"}
	c, err := ReadConfig(getenv(env))
	if err != nil {
		t.Fatal(err)
	}
	if c.RedisPassword != "pw" || c.Queue.Shards != 4 {
		t.Fatalf("password %q shards %d", c.RedisPassword, c.Queue.Shards)
	}
	env["AIGW_MAX_WAIT"], env["AIGW_BODY_LIMIT"] = "forever", "1k"
	_, err = ReadConfig(getenv(env))
	if err == nil || !strings.Contains(err.Error(), "AIGW_MAX_WAIT") || !strings.Contains(err.Error(), "AIGW_BODY_LIMIT") {
		t.Fatalf("two bad values: %v, want both named", err)
	}
}
