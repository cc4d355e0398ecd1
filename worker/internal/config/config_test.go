package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func host() (string, error) { return "node-a", nil }

func base() map[string]string {
	return map[string]string{
		"AIGW_POOL": "gpu-a100", "AIGW_REDIS_ADDRS": "127.0.0.1:7001,127.0.0.1:7002",
		"AIGW_MONGO_URI": "mongodb://127.0.0.1:27018/",
	}
}

func TestLoadDefaults(t *testing.T) {
	c, err := Load(env(base()), host)
	if err != nil {
		t.Fatal(err)
	}
	if c.Node != "node-a" || c.MongoDB != "aigw" || c.MetricsAddr != "127.0.0.1:9108" || c.AdvertiseAddr != "127.0.0.1" {
		t.Errorf("defaults: %+v", c)
	}
	if c.Heartbeat != 2*time.Second || c.OutputLimit != 1<<20 || c.LogTail != 64<<10 || c.KillGrace != 5*time.Second {
		t.Errorf("defaults: %+v", c)
	}
	if len(c.RedisAddrs) != 2 || c.Slots != 0 {
		t.Errorf("addrs %v slots %d", c.RedisAddrs, c.Slots)
	}
}

func TestLoadValues(t *testing.T) {
	m := base()
	for k, v := range map[string]string{
		"AIGW_SLOTS": "4", "AIGW_NODE_NAME": "n1", "AIGW_LABELS": "zone=a, gpu=a100",
		"AIGW_METRICS_ADDR": "off", "AIGW_HEARTBEAT": "500ms", "AIGW_LEASE": "2s",
		"AIGW_OUTPUT_LIMIT": "2MiB", "AIGW_LOG_TAIL": "1000", "AIGW_ARTIFACT_LIMIT": "1GB",
		"AIGW_NVIDIA_SMI": "/opt/fake-smi", "AIGW_ADVERTISE_ADDR": "10.0.0.5", "AIGW_CPU_FALLBACK": "true",
	} {
		m[k] = v
	}
	c, err := Load(env(m), host)
	if err != nil {
		t.Fatal(err)
	}
	if c.Slots != 4 || c.Node != "n1" || c.Labels["zone"] != "a" || c.Labels["gpu"] != "a100" || c.MetricsAddr != "" {
		t.Errorf("got %+v", c)
	}
	if c.Heartbeat != 500*time.Millisecond || c.Lease != 2*time.Second || c.OutputLimit != 2<<20 ||
		c.LogTail != 1000 || c.ArtifactLimit != 1e9 || c.NvidiaSMI != "/opt/fake-smi" || c.AdvertiseAddr != "10.0.0.5" || !c.CPUFallback {
		t.Errorf("got %+v", c)
	}
	m["AIGW_METRICS_ADDR"] = ""
	if c, err = Load(env(m), host); err != nil || c.MetricsAddr != "" {
		t.Errorf("empty AIGW_METRICS_ADDR: %q, %v", c.MetricsAddr, err)
	}
}

func TestLoadErrors(t *testing.T) {
	for k, v := range map[string]string{
		"AIGW_POOL": "Bad Pool", "AIGW_REDIS_ADDRS": "", "AIGW_MONGO_URI": "",
		"AIGW_SLOTS": "0", "AIGW_HEARTBEAT": "2", "AIGW_LEASE": "1s", "AIGW_LABELS": "novalue",
		"AIGW_OUTPUT_LIMIT": "lots", "AIGW_METRICS_ADDR": "9108", "AIGW_SHUTDOWN_GRACE": "-1s",
		"AIGW_CPU_FALLBACK": "maybe",
	} {
		t.Run(k, func(t *testing.T) {
			m := base()
			m[k] = v
			_, err := Load(env(m), host)
			if err == nil || !strings.Contains(err.Error(), k) {
				t.Fatalf("%s=%q: want an error naming it, got %v", k, v, err)
			}
		})
	}
	_, err := Load(env(base()), func() (string, error) { return "", errors.New("no uts") })
	if err == nil || !strings.Contains(err.Error(), "AIGW_NODE_NAME") {
		t.Fatalf("unknown host name: %v", err)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1": 1, "64KiB": 65536, "1MiB": 1 << 20, "2M": 2 << 20, "3 KB": 3000, "5B": 5} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1", "1.5MiB", "MiB", "1TiB"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q): want an error", in)
		}
	}
}

func TestLoadRegister(t *testing.T) {
	c, err := LoadRegister(env(map[string]string{"AIGW_MONGO_URI": "mongodb://x/"}))
	if err != nil || c.MongoDB != "aigw" || c.AlgorithmsDir != "./algorithms" {
		t.Fatalf("%+v %v", c, err)
	}
	if _, err := LoadRegister(env(nil)); err == nil {
		t.Fatal("want an error without AIGW_MONGO_URI")
	}
}

// asUID makes Load see the worker's effective uid as uid until the test ends
// (the tests of this package do not run in parallel).
func asUID(t *testing.T, uid int) {
	old := geteuid
	geteuid = func() int { return uid }
	t.Cleanup(func() { geteuid = old })
}

func TestLoadRunAs(t *testing.T) {
	asUID(t, 0)
	c, err := Load(env(base()), host)
	if err != nil {
		t.Fatal(err)
	}
	if c.RunAs == nil || c.RunAs.User != "nobody" || c.RunAs.UID == 0 || c.RunAs.GID == 0 {
		t.Fatalf("a root worker's default: %+v, want nobody", c.RunAs)
	}
	m := base()
	m["AIGW_RUN_AS"] = "1000:1001"
	if c, err = Load(env(m), host); err != nil || c.RunAs == nil || c.RunAs.UID != 1000 || c.RunAs.GID != 1001 {
		t.Fatalf("uid:gid: %+v %v", c.RunAs, err)
	}
	for _, bad := range []string{"root", "0:0", "1000:0", "no-such-user-aigw", "12:x"} {
		m["AIGW_RUN_AS"] = bad
		if _, err := Load(env(m), host); err == nil || !strings.Contains(err.Error(), "AIGW_RUN_AS") {
			t.Errorf("AIGW_RUN_AS=%q: want an error naming it, got %v", bad, err)
		}
	}

	asUID(t, 1000)
	if c, err = Load(env(base()), host); err != nil || c.RunAs != nil {
		t.Fatalf("an unprivileged worker runs jobs as itself: %+v %v", c.RunAs, err)
	}
	m["AIGW_RUN_AS"] = "nobody"
	if _, err := Load(env(m), host); err == nil || !strings.Contains(err.Error(), "AIGW_RUN_AS") {
		t.Errorf("AIGW_RUN_AS on a non-root worker: %v", err)
	}
}

func TestLoadInterpreters(t *testing.T) {
	m := base()
	c, err := Load(env(m), host)
	if err != nil || c.Interpreters != nil {
		t.Fatalf("default: %v %v", c.Interpreters, err)
	}
	m["AIGW_INTERPRETERS"] = "/usr/bin/python3, /bin/sh"
	if c, err = Load(env(m), host); err != nil || strings.Join(c.Interpreters, " ") != "/usr/bin/python3 /bin/sh" {
		t.Fatalf("got %v %v", c.Interpreters, err)
	}
	for _, bad := range []string{"python3", "/usr/bin/../bin/sh", "/usr/bin/python3,/usr/local/bin/python3"} {
		m["AIGW_INTERPRETERS"] = bad
		if _, err := Load(env(m), host); err == nil || !strings.Contains(err.Error(), "AIGW_INTERPRETERS") {
			t.Errorf("AIGW_INTERPRETERS=%q: want an error naming it, got %v", bad, err)
		}
	}
}
