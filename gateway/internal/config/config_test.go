package config

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaults(t *testing.T) {
	t.Parallel()
	c, err := Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:8080" || c.BinDir != "bin" || c.StateDir != ".aigw/gateway" || c.SecretsDir != ".aigw/gateway/auth" {
		t.Errorf("defaults: %+v", c)
	}
	if c.RedisAddrs != nil || c.AsyncMaxBody != 10<<20 || c.ReadyTimeout != 30*time.Second || c.LogLevel != slog.LevelInfo {
		t.Errorf("defaults: %+v", c)
	}
	if c.HealthCheckPeriod != 2*time.Second || c.HealthCheckTimeout != 5*time.Second || c.HealthFailureThreshold != 3 {
		t.Errorf("health check defaults: %+v", c)
	}
	if c.AsyncConsumer != "gw-127-0-0-1-8080" {
		t.Errorf("consumer = %q", c.AsyncConsumer)
	}
}

func TestValues(t *testing.T) {
	t.Parallel()
	c, err := Load(env(map[string]string{
		"AIGW_GATEWAY_ADDR":                     "0.0.0.0:9090",
		"AIGW_GATEWAY_BIN_DIR":                  "/opt/bin",
		"AIGW_GATEWAY_STATE_DIR":                "/var/lib/aigw",
		"AIGW_REDIS_ADDRS":                      "127.0.0.1:7001, 127.0.0.1:7002",
		"AIGW_REDIS_PASSWORD":                   "pw",
		"AIGW_GATEWAY_UPSTREAM_TIMEOUT":         "90s",
		"AIGW_GATEWAY_READY_TIMEOUT":            "2s",
		"AIGW_GATEWAY_WRITE_TIMEOUT":            "0s",
		"AIGW_GATEWAY_ASYNC_MAX_BODY":           "1024",
		"AIGW_LOG_LEVEL":                        "debug",
		"AIGW_GATEWAY_HEALTH_CHECK_PERIOD":      "500ms",
		"AIGW_GATEWAY_HEALTH_CHECK_TIMEOUT":     "1s",
		"AIGW_GATEWAY_HEALTH_FAILURE_THRESHOLD": "5",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "0.0.0.0:9090" || c.BinDir != "/opt/bin" || c.SecretsDir != "/var/lib/aigw/auth" {
		t.Errorf("%+v", c)
	}
	if len(c.RedisAddrs) != 2 || c.RedisAddrs[1] != "127.0.0.1:7002" || c.RedisPassword != "pw" {
		t.Errorf("redis: %+v", c)
	}
	if c.HealthCheckPeriod != 500*time.Millisecond || c.HealthCheckTimeout != time.Second || c.HealthFailureThreshold != 5 {
		t.Errorf("health checks: %+v", c)
	}
	if c.UpstreamTimeout != 90*time.Second || c.ReadyTimeout != 2*time.Second || c.AsyncMaxBody != 1024 || c.LogLevel != slog.LevelDebug {
		t.Errorf("%+v", c)
	}
}

func TestBadValues(t *testing.T) {
	t.Parallel()
	for key, val := range map[string]string{
		"AIGW_GATEWAY_ADDR":                     "localhost",
		"AIGW_REDIS_ADDRS":                      "nohost",
		"AIGW_GATEWAY_READY_TIMEOUT":            "5",
		"AIGW_GATEWAY_UPSTREAM_TIMEOUT":         "0s",
		"AIGW_GATEWAY_STOP_GRACE":               "-1s",
		"AIGW_GATEWAY_ASYNC_MAX_BODY":           "ten",
		"AIGW_GATEWAY_ASYNC_MAX_ATTEMPTS":       "0",
		"AIGW_LOG_LEVEL":                        "loud",
		"AIGW_GATEWAY_HEALTH_CHECK_PERIOD":      "0s",
		"AIGW_GATEWAY_HEALTH_CHECK_TIMEOUT":     "soon",
		"AIGW_GATEWAY_HEALTH_FAILURE_THRESHOLD": "0",
		"AIGW_WEBHOOK_ALLOWED_NETS":             "localhost",
	} {
		_, err := Load(env(map[string]string{key: val}))
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s=%q: err = %v, want an error naming the key", key, val, err)
		}
	}
}

// TestWebhookAllowedNets: X-Callback-Url may reach public addresses only unless
// AIGW_WEBHOOK_ALLOWED_NETS, in the router's and orchestrator's syntax, allows
// networks; a bad entry is a start-up error naming the variable.
func TestWebhookAllowedNets(t *testing.T) {
	t.Parallel()
	c, err := Load(env(nil))
	if err != nil || len(c.WebhookAllowedNets) != 0 {
		t.Fatalf("default: %v %v, want none", c.WebhookAllowedNets, err)
	}
	c, err = Load(env(map[string]string{"AIGW_WEBHOOK_ALLOWED_NETS": " 127.0.0.0/8,10.1.2.3 ::1"}))
	if err != nil || fmt.Sprint(c.WebhookAllowedNets) != "[127.0.0.0/8 10.1.2.3/32 ::1/128]" {
		t.Fatalf("allowed nets: %v %v", c.WebhookAllowedNets, err)
	}
	for _, bad := range []string{"intranet", "10.0.0.0/33", "127.0.0.0/8,localhost"} {
		_, err := Load(env(map[string]string{"AIGW_WEBHOOK_ALLOWED_NETS": bad}))
		if err == nil || !strings.Contains(err.Error(), "AIGW_WEBHOOK_ALLOWED_NETS") || !strings.Contains(err.Error(), "CIDR") {
			t.Errorf("AIGW_WEBHOOK_ALLOWED_NETS=%q: err = %v, want a start-up error naming it", bad, err)
		}
	}
}
