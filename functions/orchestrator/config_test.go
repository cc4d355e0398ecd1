package orchestrator

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReadConfig(t *testing.T) {
	dir := t.TempDir()
	for name, v := range map[string]string{"aigw-mongo-uri": "mongodb://db:27017/\n", "aigw-admin-token": "s3cret"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{
		"AIGW_SECRETS_DIR": dir, "AIGW_REDIS_ADDRS": "127.0.0.1:7001,127.0.0.1:7002",
		"AIGW_MONGO_URI": "mongodb://ignored/", "AIGW_JWKS_URL": "http://auth:8080/.well-known/jwks.json",
		"AIGW_ISSUER": "http://auth", "AIGW_AUDIENCE": "aigw-api",
		"AIGW_ORCHESTRATOR_INTERVAL": "1s", "AIGW_WEBHOOK_TIMEOUT": "3s", "AIGW_REAPER_GRACE": "0s",
		"AIGW_WEBHOOK_ALLOWED_NETS": "127.0.0.0/8 ::1",
	}
	c, err := ReadConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.MongoURI != "mongodb://db:27017/" || c.AdminToken != "s3cret" || len(c.RedisAddrs) != 2 {
		t.Fatalf("secrets: %+v (the secret file wins over the env fallback)", c)
	}
	if c.Interval != time.Second || c.WebhookTimeout != 3*time.Second || c.WebhookMaxAge != 24*time.Hour ||
		c.ReaperGrace != 0 || c.ReconcileAge != 5*time.Second || c.MongoDB != "aigw" || c.Serve.Addr != ":8080" ||
		fmt.Sprint(c.WebhookAllowedNets) != "[127.0.0.0/8 ::1/128]" {
		t.Fatalf("values and defaults: %+v", c)
	}

	bad := map[string]struct{ value, want string }{
		"AIGW_WEBHOOK_TIMEOUT": {"0s", "AIGW_WEBHOOK_TIMEOUT"}, "AIGW_RECONCILE_AGE": {"-1s", "AIGW_RECONCILE_AGE"},
		"AIGW_WEBHOOK_MAX_AGE": {"a day", "AIGW_WEBHOOK_MAX_AGE"}, "AIGW_REDIS_ADDRS": {"", "aigw-redis-addrs"},
		"AIGW_JWKS_URL": {"jwks.json", "AIGW_JWKS_URL"}, "AIGW_QUEUE_SHARDS": {"0", "AIGW_QUEUE_SHARDS"},
		"AIGW_MONGO_DB":             {"a/b", "AIGW_MONGO_DB"},
		"AIGW_WEBHOOK_ALLOWED_NETS": {"localhost", "AIGW_WEBHOOK_ALLOWED_NETS"},
	}
	for k, c := range bad {
		env2 := map[string]string{}
		for ek, ev := range env {
			env2[ek] = ev
		}
		env2[k] = c.value
		if _, err := ReadConfig(func(k string) string { return env2[k] }); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s=%q: err = %v, want an error naming %s", k, c.value, err, c.want)
		}
	}
	if _, err := ReadConfig(func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "aigw-admin-token") {
		t.Errorf("empty environment: %v, want the missing secrets named", err)
	}
}

// TestReadConfigTokenDefaults: unset, AIGW_JWKS_URL, AIGW_ISSUER and
// AIGW_AUDIENCE take the defaults the router and auth function use (they were
// required here only), and every bad value is reported at once.
func TestReadConfigTokenDefaults(t *testing.T) {
	env := map[string]string{"AIGW_SECRETS_DIR": t.TempDir(), "AIGW_REDIS_ADDRS": "127.0.0.1:7001",
		"AIGW_MONGO_URI": "mongodb://db/", "AIGW_ADMIN_TOKEN": "s3cret", "AIGW_REDIS_PASSWORD": "pw", "AIGW_QUEUE_SHARDS": "16"}
	c, err := ReadConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.JWKSURL != "http://127.0.0.1:8080/function/auth/.well-known/jwks.json" || c.Issuer != "aigw" || c.Audience != "aigw-api" ||
		c.RedisPassword != "pw" || c.Queue.Shards != 16 || c.AdminToken != "s3cret" {
		t.Fatalf("config %+v", c)
	}
	env["AIGW_WEBHOOK_TIMEOUT"], env["AIGW_RECONCILE_AGE"] = "soon", "-1s"
	_, err = ReadConfig(func(k string) string { return env[k] })
	if err == nil || !strings.Contains(err.Error(), "AIGW_WEBHOOK_TIMEOUT") || !strings.Contains(err.Error(), "AIGW_RECONCILE_AGE") {
		t.Fatalf("two bad values: %v, want both named", err)
	}
}
