package logging

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func env(v string) func(string) string {
	return func(k string) string {
		if k == EnvLevel {
			return v
		}
		return ""
	}
}

func TestLevel(t *testing.T) {
	t.Parallel()
	for v, want := range map[string]slog.Level{
		"": slog.LevelInfo, "debug": slog.LevelDebug, "INFO": slog.LevelInfo,
		" warn ": slog.LevelWarn, "error": slog.LevelError, "warn+2": slog.LevelWarn + 2,
	} {
		got, err := Level(env(v))
		if err != nil || got != want {
			t.Errorf("%s=%q: %v, %v; want %v", EnvLevel, v, got, err, want)
		}
	}
	for _, v := range []string{"loud", "3", "warning", "info-"} {
		if _, err := Level(env(v)); err == nil || !strings.Contains(err.Error(), EnvLevel) {
			t.Errorf("%s=%q: error %v, want one naming %s", EnvLevel, v, err, EnvLevel)
		}
	}
}

// TestNewHonoursLevel: records below the level are dropped, the rest are JSON
// lines with the service and version keys.
func TestNewHonoursLevel(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log, err := New(&buf, env("warn"), "router", "1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	log.Warn("shown", "k", 1)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("want one line at warn, got %q", buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec["msg"] != "shown" || rec["level"] != "WARN" || rec["service"] != "router" || rec["version"] != "1.2.3" {
		t.Errorf("record %v", rec)
	}

	buf.Reset()
	if log, err = New(&buf, env("debug"), "auth", "dev"); err != nil {
		t.Fatal(err)
	}
	log.Debug("detail")
	if !strings.Contains(buf.String(), `"msg":"detail"`) {
		t.Errorf("debug record missing at debug level: %q", buf.String())
	}
	if _, err := New(&buf, env("loud"), "auth", "dev"); err == nil {
		t.Error("a bad level must be an error")
	}
}
