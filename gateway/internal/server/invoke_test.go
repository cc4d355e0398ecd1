package server

import (
	"bufio"
	"encoding/json"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"

	"github.com/aigw/aigw/gateway/internal/procs"
	"github.com/aigw/aigw/internal/testwait"
)

// TestStreamingUnbuffered: SSE events reach the client as the function sends them.
func TestStreamingUnbuffered(t *testing.T) {
	t.Parallel()
	b := setup(t)
	name := fnName("sse")
	b.deploy(name, nil)
	start := time.Now()
	res, err := http.Get(b.url + "/function/" + name + "/sse?n=20") // 20 events, 50ms apart: ~1s
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type = %q", ct)
	}
	sc := bufio.NewScanner(res.Body)
	if !sc.Scan() || sc.Text() != "data: 0" {
		t.Fatalf("first line %q", sc.Text())
	}
	if first := time.Since(start); first > 500*time.Millisecond {
		t.Errorf("first event after %s: the response was buffered", first)
	}
	n := 1
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data: ") {
			n++
		}
	}
	if n != 20 {
		t.Errorf("%d events, want 20", n)
	}
}

// load sends GET path to the function from c goroutines until stop is closed,
// and counts the answers by status.
func load(b *bundle, name, path string, c int, stop <-chan struct{}) func() (ok int64, bad map[int]int64) {
	var okN atomic.Int64
	var mu sync.Mutex
	bad := map[int]int64{}
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for range c {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				res, err := client.Get(b.url + "/function/" + name + path)
				code := -1
				if err == nil {
					var e map[string]any
					if json.NewDecoder(res.Body).Decode(&e) == nil || path != "/" {
						code = res.StatusCode
					}
					res.Body.Close()
				}
				if code == 200 {
					okN.Add(1)
				} else {
					mu.Lock()
					bad[code]++
					mu.Unlock()
				}
			}
		})
	}
	return func() (int64, map[int]int64) {
		wg.Wait()
		return okN.Load(), bad
	}
}

// TestCrashRestart: a crashed replica is restarted while requests keep
// succeeding on the other one.
func TestCrashRestart(t *testing.T) {
	t.Parallel()
	b := setup(t)
	name := fnName("crash")
	two := map[string]string{"com.openfaas.scale.min": "2"}
	b.deploy(name, func(d *types.FunctionDeployment) { d.Labels = &two })
	pidsBefore := map[float64]bool{}
	for range 4 {
		_, body := b.get(name, "/")
		var e map[string]any
		_ = json.Unmarshal([]byte(body), &e)
		pidsBefore[e["pid"].(float64)] = true
	}
	if len(pidsBefore) != 2 {
		t.Fatalf("2 replicas expected, saw pids %v", pidsBefore)
	}
	stop := make(chan struct{})
	wait := load(b, name, "/", 4, stop)
	time.Sleep(300 * time.Millisecond)
	// POST: a GET that kills its replica would be retried (idempotent) on the other.
	res, err := http.Post(b.url+"/function/"+name+"/crash", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadGateway {
		t.Errorf("crash request answered %d, want 502", res.StatusCode)
	}
	time.Sleep(2 * time.Second)
	close(stop)
	ok, bad := wait()
	if len(bad) != 0 || ok < 50 {
		t.Errorf("during the crash: %d ok, failures by status %v", ok, bad)
	}
	testwait.Eventually(t, 10*time.Second, func() bool {
		st, err := b.client.GetFunction(t.Context(), name, "")
		return err == nil && st.AvailableReplicas == 2
	}, "2 available replicas again")

	restarted := false
	for range 6 {
		_, body := b.get(name, "/")
		var e map[string]any
		_ = json.Unmarshal([]byte(body), &e)
		if !pidsBefore[e["pid"].(float64)] {
			restarted = true
		}
	}
	if !restarted {
		t.Error("no new process answered after the crash")
	}
	logs := b.g.Registry()
	f, _ := logs.Lookup(name)
	crashed := false
	for _, m := range f.Logs().Snapshot(time.Time{}, 0) {
		crashed = crashed || m.Text == "testfn crashing on request"
	}
	if !crashed {
		t.Error("the crash's output is not in the function's logs")
	}
}

// TestUpdateWithoutDrops: an update under load drops no request and ends on the new version.
func TestUpdateWithoutDrops(t *testing.T) {
	t.Parallel()
	b := setup(t)
	name := fnName("upd")
	b.deploy(name, func(d *types.FunctionDeployment) { d.EnvVars = map[string]string{"TESTFN_VERSION": "1"} })
	stop := make(chan struct{})
	wait := load(b, name, "/sleep?ms=30", 4, stop)
	time.Sleep(300 * time.Millisecond)
	if code, err := b.client.Update(t.Context(), types.FunctionDeployment{Service: name, Image: testImage, EnvVars: map[string]string{"TESTFN_VERSION": "2"}}); err != nil {
		t.Fatalf("update: %d %v", code, err)
	}
	time.Sleep(500 * time.Millisecond)
	close(stop)
	ok, bad := wait()
	if len(bad) != 0 || ok < 20 {
		t.Errorf("during the update: %d ok, failures by status %v", ok, bad)
	}
	if _, body := b.get(name, "/env?key=TESTFN_VERSION"); body != "2" {
		t.Errorf("version after update = %q", body)
	}
	st, err := b.client.GetFunction(t.Context(), name, "")
	if err != nil || st.EnvVars["TESTFN_VERSION"] != "2" || st.AvailableReplicas != 1 {
		t.Errorf("status after update: %+v %v", st, err)
	}
	testwait.Eventually(t, 5*time.Second, func() bool { return len(processesOf(name)) == 1 }, "old replica stopped")
	if code, _ := b.client.Update(t.Context(), types.FunctionDeployment{Service: fnName("absent"), Image: testImage}); code != http.StatusNotFound {
		t.Errorf("update of an unknown function: %d, want 404", code)
	}
}

// TestRestartRestoresFunctions: a gateway started on the same state dir brings
// back the functions (scaled count included), and stops them when it exits.
func TestRestartRestoresFunctions(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	name := fnName("persist")
	first := start(t, cfg, Options{})
	first.deploy(name, nil)
	if err := first.client.ScaleFunction(t.Context(), name, "", 2); err != nil {
		t.Fatal(err)
	}
	if err := first.g.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	testwait.Eventually(t, 5*time.Second, func() bool { return len(processesOf(name)) == 0 }, "functions stopped with the gateway")
	second := start(t, cfg, Options{})
	testwait.Eventually(t, 15*time.Second, func() bool {
		st, err := second.client.GetFunction(t.Context(), name, "")
		return err == nil && st.AvailableReplicas == 2 && st.Replicas == 2
	}, "function restored")

	if code, _ := second.get(name, "/"); code != 200 {
		t.Errorf("restored function answered %d", code)
	}
}

// TestHealthChecksAfterReady: a ready replica whose health check fails leaves
// the rotation and comes back when it passes again; when every replica fails,
// requests still reach them (their own answer beats the gateway's 503); a
// replica that stops answering its health check is killed and restarted.
func TestHealthChecksAfterReady(t *testing.T) {
	t.Parallel()
	health := t.TempDir()
	b := start(t, testConfig(t), Options{Procs: procs.Options{
		CheckPeriod: 50 * time.Millisecond, CheckTimeout: 3 * time.Second, FailureThreshold: 2}})
	name := fnName("health")
	two := map[string]string{"com.openfaas.scale.min": "2"}
	b.deploy(name, func(d *types.FunctionDeployment) {
		d.Labels = &two
		d.EnvVars = map[string]string{"TESTFN_HEALTH_DIR": health}
	})
	pidOf := func() int {
		code, body := b.get(name, "/")
		var e struct{ PID int }
		if err := json.Unmarshal([]byte(body), &e); code != http.StatusOK || err != nil {
			t.Fatalf("invoke: %d %q", code, body)
		}
		return e.PID
	}
	seen := func(n int) map[int]bool {
		pids := map[int]bool{}
		for range n {
			pids[pidOf()] = true
		}
		return pids
	}
	setHealth := func(pid int, mode string) {
		p := filepath.Join(health, strconv.Itoa(pid))
		if mode == "" {
			_ = os.Remove(p)
			return
		}
		if err := os.WriteFile(p, []byte(mode), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	available := func() int {
		st, err := b.client.GetFunction(t.Context(), name, "")
		if err != nil {
			t.Fatal(err)
		}
		return int(st.AvailableReplicas)
	}
	var a, c int
	testwait.Eventually(t, 5*time.Second, func() bool {
		pids := slices.Collect(maps.Keys(seen(6)))
		if len(pids) == 2 {
			a, c = pids[0], pids[1]
		}
		return len(pids) == 2
	}, "two replicas answering")

	setHealth(a, "sick")
	testwait.Eventually(t, 5*time.Second, func() bool {
		return available() == 1 && !seen(10)[a]
	}, "the sick replica out of the rotation")

	setHealth(c, "sick")
	testwait.Eventually(t, 5*time.Second, func() bool { return available() == 0 }, "no replica available")
	if pids := seen(10); len(pids) == 0 {
		t.Fatal("no request reached a replica") // pidOf fails first on a gateway 503
	}
	setHealth(a, "")
	setHealth(c, "")
	testwait.Eventually(t, 5*time.Second, func() bool { return available() == 2 && len(seen(10)) == 2 }, "both replicas back")

	// A check answered within CheckTimeout passes, however slowly: 1.5 s
	// answers for longer than two checks leave the replica serving.
	setHealth(a, "slow")
	time.Sleep(4 * time.Second)
	if pids := seen(10); available() != 2 || syscall.Kill(a, 0) != nil || !pids[a] {
		t.Fatalf("a replica answering its checks in 1.5 s (timeout 3 s) was taken out: available %d, pids %v", available(), pids)
	}

	setHealth(a, "hang")
	testwait.Eventually(t, 15*time.Second, func() bool { return syscall.Kill(a, 0) == syscall.ESRCH }, "the hung replica killed")
	testwait.Eventually(t, 10*time.Second, func() bool {
		pids := seen(10)
		return available() == 2 && len(pids) == 2 && pids[c] && !pids[a]
	}, "a new process in its place")

}
