package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/executorapi"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/internal/testenv"
	"github.com/aigw/aigw/internal/testwait"
)

// netns is a network namespace made by the test: a veth pair whose host
// end (hostIP) is the only address the namespace reaches. A proxy on the
// host end forwards to the gateway, so a process in the namespace reaches the
// gateway and nothing else (not Redis, not MongoDB, not the host's loopback).
type netns struct {
	name, hostIf, hostIP string
	proxy                string // host:port of the gateway as seen from the namespace
}

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// newNetns makes namespace number n and its proxy to gateway (host:port).
func newNetns(t *testing.T, n int, gateway string) *netns {
	t.Helper()
	id := fmt.Sprintf("%d%d", os.Getpid()%100000, n)
	sub := 16 + (os.Getpid()*7+n)%200
	ns := &netns{name: "aigw-e2e-" + id, hostIf: "ax" + id + "h", hostIP: fmt.Sprintf("10.231.%d.1", sub)}
	nsIf := "ax" + id + "n"
	ipCmd(t, "netns", "add", ns.name)
	t.Cleanup(func() {
		_ = exec.Command("ip", "netns", "del", ns.name).Run()
		_ = exec.Command("ip", "link", "del", ns.hostIf).Run()
	})
	ipCmd(t, "link", "add", ns.hostIf, "type", "veth", "peer", "name", nsIf)
	ipCmd(t, "link", "set", nsIf, "netns", ns.name)
	ipCmd(t, "addr", "add", ns.hostIP+"/30", "dev", ns.hostIf)
	ipCmd(t, "link", "set", ns.hostIf, "up")
	ipCmd(t, "netns", "exec", ns.name, "ip", "addr", "add", fmt.Sprintf("10.231.%d.2/30", sub), "dev", nsIf)
	ipCmd(t, "netns", "exec", ns.name, "ip", "link", "set", nsIf, "up")
	ipCmd(t, "netns", "exec", ns.name, "ip", "link", "set", "lo", "up")
	ns.proxy = proxyTo(t, ns.hostIP+":0", gateway)
	return ns
}

// partition cuts the namespace off (its link goes down); heal restores it.
func (ns *netns) partition(t *testing.T) { ipCmd(t, "link", "set", ns.hostIf, "down") }
func (ns *netns) heal(t *testing.T)      { ipCmd(t, "link", "set", ns.hostIf, "up") }

// reaches reports whether a TCP connection from the namespace to addr opens.
func (ns *netns) reaches(addr string) bool {
	host, port, _ := net.SplitHostPort(addr)
	return exec.Command("ip", "netns", "exec", ns.name, "timeout", "3", "bash", "-c",
		"exec 3<>/dev/tcp/"+host+"/"+port).Run() == nil
}

// proxyTo forwards TCP connections accepted on listen to target until the
// test ends, and returns the address it listens on.
func proxyTo(t *testing.T, listen, target string) string {
	t.Helper()
	l, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	track := func(c net.Conn, on bool) {
		mu.Lock()
		defer mu.Unlock()
		if on {
			conns[c] = true
		} else {
			delete(conns, c)
		}
	}
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		for c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				u, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer u.Close()
				track(c, true)
				track(u, true)
				defer track(c, false)
				defer track(u, false)
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(u, c); done <- struct{}{} }()
				go func() { _, _ = io.Copy(c, u); done <- struct{}{} }()
				<-done
			})
		}
	})
	return l.Addr().String()
}

// joinedEnv is the environment of a joined worker: the test's, without any
// Redis, MongoDB or object store setting.
func joinedEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AIGW_REDIS") || strings.HasPrefix(k, "AIGW_MONGO") || strings.HasPrefix(k, "AIGW_S3") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// startJoined provisions executor name of pool inside ns: a credential
// (admin) and an `aigw-worker --join` process started by the Local
// provider under `ip netns exec`. It returns the executor and a channel
// closed when its process exits.
func startJoined(t *testing.T, admin *executorapi.Client, ns *netns, pool, name string) (executorapi.Executor, <-chan struct{}) {
	t.Helper()
	logDir := t.TempDir()
	local := &executorapi.Local{Bin: filepath.Join(binDir, "aigw-worker"), URL: "http://" + ns.proxy + "/function/executors",
		Env: joinedEnv("AIGW_SLOTS=1", "AIGW_NODE_NAME="+name, "AIGW_BIN_DIR="+binDir,
			"AIGW_ALGORITHMS_DIR="+filepath.Join(repo, "algorithms"), "AIGW_METRICS_ADDR=off", "AIGW_SHUTDOWN_GRACE=2s"),
		Wrap: []string{"ip", "netns", "exec", ns.name},
		Logs: func(name string) (*os.File, error) { return os.Create(filepath.Join(logDir, name+".log")) }}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := executorapi.Provision(ctx, admin, local, pool, name)
	if err != nil {
		t.Fatal(err)
	}
	done := local.Done(e)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = local.Stop(ctx, e)
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(logDir, name+".log"))
			if len(b) > 6000 {
				b = b[len(b)-6000:]
			}
			t.Logf("--- executor %s log (tail) ---\n%s", name, b)
		}
	})
	return e, done
}

// registerIn registers the reference algorithm dir in pool with an operator token.
func (s *system) registerIn(pool, dir string) {
	s.t.Helper()
	d, err := algorithm.LoadFile(filepath.Join(repo, "algorithms", dir, algorithm.DefinitionFile))
	if err != nil {
		s.t.Fatal(err)
	}
	d.Pool = pool
	req, _ := http.NewRequest("POST", s.gateway+"/function/auth/admin/token", nil)
	req.Header.Set("Authorization", "Bearer "+s.admin)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if code := do(s.t, req, &tok); code != http.StatusOK {
		s.t.Fatalf("operator token: %d", code)
	}
	if code := s.api("PUT", "/v1/algorithms/"+d.Name, d, nil, "Authorization", "Bearer "+tok.AccessToken); code != http.StatusCreated && code != http.StatusOK {
		s.t.Fatalf("register %s: %d", d.Name, code)
	}
}

type execJob struct {
	ID      string          `json:"id"`
	State   string          `json:"state"`
	Attempt int             `json:"attempt"`
	Worker  string          `json:"worker"`
	Output  json.RawMessage `json:"output"`
}

func (s *system) jobOf(id string) execJob {
	s.t.Helper()
	var j execJob
	s.api("GET", "/v1/jobs/"+id, nil, &j)
	return j
}

func (s *system) submitTo(algo string, input map[string]any) execJob {
	s.t.Helper()
	var j execJob
	if code := s.api("POST", "/v1/algorithms/"+algo+"/jobs", map[string]any{"input": input}, &j); code != http.StatusAccepted {
		s.t.Fatalf("submit %s: %d", algo, code)
	}
	return j
}

// TestExecutorsJoinFromNetworkNamespaces: workers that reach only the
// gateway (each in a network namespace of its own) serve a pool with
// `aigw-worker --join`, warm (serve) and exec runtimes alike; a partition
// mid-run hands the job to the other executor once the lease runs out, the
// job ends once, and the cut-off executor's late result is refused (409);
// claiming another pool is 403; a revoked credential stops its worker;
// another executor's finish of a held job is a 409 and an output over the
// limit a 413 (the holder still ends the job).
func TestExecutorsJoinFromNetworkNamespaces(t *testing.T) {
	skip := t.Skip
	if testenv.Required() {
		skip = t.Fatal
	}
	if os.Geteuid() != 0 {
		skip("network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		skip("no ip command (iproute2: apt-get install iproute2)")
	}
	s := up(t, "AIGW_EXECUTOR_LEASE=2s")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	edge := s.pool + "-edge"
	rdb := testenv.Redis(t)
	t.Cleanup(func() { _ = queue.New(rdb, queue.Config{}).Purge(context.Background(), edge) })
	s.registerIn(edge, "echo")
	s.registerIn(edge, "echo-exec")

	api := s.gateway + "/function/executors"
	admin := executorapi.NewClient(api, s.admin, nil)
	testwait.Eventually(t, 20*time.Second, func() bool { return get(api+"/_/health") == http.StatusOK }, "the executors function")
	gw := strings.TrimPrefix(s.gateway, "http://")
	nsA, nsB := newNetns(t, 1, gw), newNetns(t, 2, gw)
	for _, addr := range append(testenv.RedisAddrs(t), "127.0.0.1:27018", gw) {
		if nsA.reaches(addr) {
			t.Fatalf("the namespace reaches %s", addr)
		}
	}
	if !nsA.reaches(nsA.proxy) {
		t.Fatalf("the namespace does not reach the gateway's address %s", nsA.proxy)
	}

	a, _ := startJoined(t, admin, nsA, edge, "a")
	// Warm (serve) and exec runs on the joined worker.
	j1 := s.submitTo("echo", map[string]any{"message": "from afar"})
	j2 := s.submitTo("echo-exec", map[string]any{"message": "exec afar"})
	for _, j := range []execJob{j1, j2} {
		s.waitState(j.ID, "succeeded", 60*time.Second)
	}
	if got := s.jobOf(j1.ID); !strings.HasPrefix(got.Worker, "a.") || !strings.Contains(string(got.Output), "from afar") {
		t.Fatalf("job %+v", got)
	}

	// A partition mid-run.
	j3 := s.submitTo("echo", map[string]any{"message": "partitioned", "sleep_ms": 6000})
	testwait.Eventually(t, 30*time.Second, func() bool { return s.jobOf(j3.ID).State == "running" }, "job %s running on a", j3.ID)
	b, stoppedB := startJoined(t, admin, nsB, edge, "b")
	nsA.partition(t)
	done := s.waitState(j3.ID, "succeeded", 60*time.Second)
	got := s.jobOf(j3.ID)
	if done.Attempt != 2 || !strings.HasPrefix(got.Worker, "b.") {
		t.Fatalf("after the partition: %+v", got)
	}
	nsA.heal(t)
	late := executorapi.NewClient(api, a.Token, nil)
	_, err := late.Finish(ctx, j3.ID, executorapi.Finish{Attempt: 1, Outcome: executorapi.OutcomeSucceeded, Output: json.RawMessage(`{"message":"late"}`)})
	if executorapi.StatusOf(err) != http.StatusConflict {
		t.Fatalf("late finish: %v, want 409", err)
	}
	ends := 0
	for _, d := range s.events(t, j3.ID) {
		if strings.Contains(d, `"state":"succeeded"`) || strings.Contains(d, `"state":"failed"`) {
			ends++
		}
	}
	if ends != 1 || !strings.Contains(string(s.jobOf(j3.ID).Output), "partitioned") {
		t.Fatalf("job %s ended %d times, output %s", j3.ID, ends, s.jobOf(j3.ID).Output)
	}

	// Another pool's jobs: 403.
	_, err = late.Claim(ctx, executorapi.ClaimRequest{Pool: s.pool, WaitMS: 10})
	if executorapi.StatusOf(err) != http.StatusForbidden {
		t.Fatalf("claim of another pool: %v, want 403", err)
	}

	// A revoked credential: 401 at the next call, and its worker stops.
	if err := admin.Revoke(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	_, err = executorapi.NewClient(api, b.Token, nil).Heartbeat(ctx, executorapi.Heartbeat{})
	if executorapi.StatusOf(err) != http.StatusUnauthorized {
		t.Fatalf("revoked heartbeat: %v, want 401", err)
	}
	testwait.Eventually(t, 10*time.Second, func() bool {
		select {
		case <-stoppedB:
			return true
		default:
			return false
		}
	}, "the revoked executor's worker to stop")

	// A job held by a's worker: another executor's finish is a 409; an
	// output over the limit is a 413 and leaves the hold, so a's worker
	// still ends the job.
	j5 := s.submitTo("echo", map[string]any{"message": "held", "sleep_ms": 3000})
	testwait.Eventually(t, 30*time.Second, func() bool {
		j := s.jobOf(j5.ID)
		return j.State == "running" && strings.HasPrefix(j.Worker, "a.")
	}, "job %s running on a", j5.ID)
	c, err := admin.Create(ctx, edge, "c")
	if err != nil {
		t.Fatal(err)
	}
	_, err = executorapi.NewClient(api, c.Token, nil).Finish(ctx, j5.ID, executorapi.Finish{Attempt: 1, Outcome: executorapi.OutcomeSucceeded, Output: json.RawMessage(`{}`)})
	if executorapi.StatusOf(err) != http.StatusConflict {
		t.Fatalf("another executor's finish: %v, want 409", err)
	}
	big := json.RawMessage(`{"message":"` + strings.Repeat("x", 1536<<10) + `"}`)
	_, err = late.Finish(ctx, j5.ID, executorapi.Finish{Attempt: 1, Outcome: executorapi.OutcomeSucceeded, Output: big})
	if executorapi.StatusOf(err) != http.StatusRequestEntityTooLarge {
		t.Fatalf("an output over the limit: %v, want 413", err)
	}
	if got := s.waitState(j5.ID, "succeeded", 30*time.Second); got.Attempt != 1 || !strings.Contains(string(got.Output), "held") {
		t.Fatalf("job %+v", got)
	}
}
