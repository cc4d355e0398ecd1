package testenv

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// FailOrSkip skips t with msg on a developer's machine and fails it in CI,
// where no integration test may skip.
func FailOrSkip(t testing.TB, msg string) {
	t.Helper()
	if Required() {
		t.Fatal(msg + " (CI=true: this test may not skip)")
	}
	t.Skip(msg)
}

// LocalRedisPID returns the pid of the Redis node c talks to, which must be
// a redis-server process on this machine (fault tests kill it).
func LocalRedisPID(ctx context.Context, t testing.TB, c *redis.Client) int {
	t.Helper()
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "process_id:"); ok {
			pid, _ := strconv.Atoi(v)
			cmd, err := os.ReadFile("/proc/" + v + "/cmdline")
			if err != nil || !strings.Contains(string(cmd), "redis-server") {
				FailOrSkip(t, "the Redis master is not a local process this test can kill")
			}
			return pid
		}
	}
	t.Fatal("no process_id in INFO server")
	return 0
}

// HealCluster restarts a killed node (it rejoins as a replica) with the
// project's script, which waits for a healthy cluster.
func HealCluster(t testing.TB) {
	t.Helper()
	dir, _ := os.Getwd()
	for dir != "/" {
		if _, err := os.Stat(filepath.Join(dir, "scripts", "redis-cluster.sh")); err == nil {
			break
		}
		dir = filepath.Dir(dir)
	}
	out, err := exec.Command(filepath.Join(dir, "scripts", "redis-cluster.sh"), "start").CombinedOutput()
	if err != nil {
		t.Errorf("heal cluster: %v\n%s", err, out)
	}
}
