package config

import (
	"testing"
)

// TestLoadJoinNeedsNoServers: a joined worker starts with none of the
// Redis, MongoDB or pool settings the daemon requires, and reads the run
// settings as the daemon does.
func TestLoadJoinNeedsNoServers(t *testing.T) {
	env := map[string]string{"AIGW_SLOTS": "3", "AIGW_LABELS": "site=home", "AIGW_CPU_FALLBACK": "true"}
	c, err := LoadJoin(func(k string) (string, bool) { v, ok := env[k]; return v, ok }, func() (string, error) { return "laptop", nil })
	if err != nil {
		t.Fatal(err)
	}
	if c.Slots != 3 || c.Node != "laptop" || c.Labels["site"] != "home" || !c.CPUFallback || c.Pool != "" ||
		c.RedisAddrs != nil || c.MongoURI != "" || c.OutputLimit != 1<<20 {
		t.Fatalf("config %+v", c)
	}
	env["AIGW_SLOTS"] = "0"
	if _, err := LoadJoin(func(k string) (string, bool) { v, ok := env[k]; return v, ok }, func() (string, error) { return "x", nil }); err == nil {
		t.Fatal("AIGW_SLOTS=0 accepted")
	}
}
