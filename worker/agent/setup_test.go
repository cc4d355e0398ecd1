package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/events"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/jobstore"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/internal/registry"
	"github.com/aigw/aigw/internal/testenv"
	"github.com/aigw/aigw/internal/testleak"
	"github.com/aigw/aigw/internal/testlog"
	"github.com/aigw/aigw/internal/testwait"
	"github.com/aigw/aigw/worker/internal/artifacts"
	"github.com/aigw/aigw/worker/internal/config"
	"github.com/aigw/aigw/worker/internal/metrics"
)

// binDir holds aigw-echo and aigw-worker, built once by TestMain.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "aigw-worker-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	for pkg, name := range map[string]string{
		"github.com/aigw/aigw/algorithms/echo":                           "aigw-echo",
		"github.com/aigw/aigw/worker/cmd/aigw-worker":                    "aigw-worker",
		"github.com/aigw/aigw/worker/internal/runner/testdata/servetest": "aigw-serve-test",
	} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, out)
			return 1
		}
	}
	// A root worker process runs jobs as nobody (AIGW_RUN_AS): it must reach the programs.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	binDir = dir
	return testleak.Run(m)
}

// runDir is a work directory (AIGW_WORK_DIR) that the run user of a root
// worker process (nobody by default) can reach: t.TempDir and its parent are 0700.
func runDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	for _, p := range []string{filepath.Dir(d), d} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// bundle is one test's world: its own pool, database, stores and workers.
type bundle struct {
	t      *testing.T
	rdb    redis.UniversalClient
	db     *mongo.Database
	pool   string
	q      *queue.Queue
	jobs   *jobstore.Store
	algos  *algorithm.Store
	ev     *events.Stream
	reg    *registry.Registry
	arts   *artifacts.Store
	pidDir string
	lease  time.Duration
}

func setup(t *testing.T) *bundle {
	t.Helper()
	b := &bundle{t: t, rdb: testenv.Redis(t), db: testenv.MongoDB(t), pool: testenv.UniqueName(t, 40), lease: 3 * time.Second}
	ctx := context.Background()
	var err error
	b.q = queue.New(b.rdb, queue.Config{Lease: b.lease})
	if b.jobs, err = jobstore.New(ctx, b.db, jobstore.Options{}); err != nil {
		t.Fatal(err)
	}
	b.algos = algorithm.NewStore(b.db)
	b.ev = events.New(b.rdb, events.Config{})
	b.reg = registry.New(b.rdb)
	b.arts = artifacts.New(b.db, 1<<20)
	b.pidDir = t.TempDir()
	t.Cleanup(func() {
		_ = b.q.Purge(context.Background(), b.pool)
		_ = b.reg.RemovePool(context.Background(), b.pool)
	})
	return b
}

// config is a worker configuration for this bundle.
func (b *bundle) config(node string, slots int) config.Config {
	return config.Config{
		Pool: b.pool, Node: node, Slots: slots, AdvertiseAddr: "127.0.0.1",
		AlgorithmsDir: "testdata", BinDir: binDir, WorkDir: b.t.TempDir(), Interpreters: []string{"/bin/sh"},
		Heartbeat: 300 * time.Millisecond, Lease: b.lease, ShutdownGrace: 5 * time.Second,
		KillGrace: 300 * time.Millisecond, RetryBase: 200 * time.Millisecond, RetryMax: 5 * time.Second,
		GangTimeout: 5 * time.Second, OutputLimit: 1 << 20, LogTail: 4 << 10, ArtifactLimit: 1 << 20,
	}
}

// worker runs an agent until the test ends (or stop is called); stop waits
// for Run to return.
func (b *bundle) worker(cfg config.Config, gpus []registry.GPU) (a *Agent, stop func()) {
	b.t.Helper()
	log := testlog.AtLevel(b.t, slog.LevelInfo)
	a, err := New(cfg, Deps{Redis: b.rdb, Queue: b.q, Jobs: b.jobs, Algorithms: b.algos, Events: b.ev,
		Registry: b.reg, Artifacts: b.arts, Metrics: metrics.New(), Log: log}, gpus, "test")
	if err != nil {
		b.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				b.t.Errorf("worker %s: %v", cfg.Node, err)
			}
		})
	}
	b.t.Cleanup(stop)
	return a, stop
}

// algo registers an exec algorithm of the bundle's pool.
func (b *bundle) algo(name string, command []string, retries int, mod func(*algorithm.Definition)) {
	b.t.Helper()
	d := algorithm.Definition{Name: name, Version: "1.0.0", Pool: b.pool,
		Runtime: algorithm.Runtime{Type: algorithm.Exec, Command: command}, MaxRetries: &retries,
		TimeoutMS: 30000, Env: map[string]string{"PID_DIR": b.pidDir}}
	if mod != nil {
		mod(&d)
	}
	if _, _, err := b.algos.Put(context.Background(), d); err != nil {
		b.t.Fatal(err)
	}
}

// submit records and enqueues a job as the API does (version 1.0.0, so its
// queue entry carries the dispatch hint unless mod clears the version).
func (b *bundle) submit(algo, input string, mod func(*job.Job)) string {
	b.t.Helper()
	j := job.Job{Tenant: "t1", Algorithm: algo, Version: "1.0.0", Pool: b.pool, Input: json.RawMessage(input), MaxRetries: 0}
	if mod != nil {
		mod(&j)
	}
	ctx := context.Background()
	rec, _, err := b.jobs.Create(ctx, j)
	if err != nil {
		b.t.Fatal(err)
	}
	if _, err := b.ev.PublishState(ctx, rec); err != nil {
		b.t.Fatal(err)
	}
	if _, err := b.q.Enqueue(ctx, queue.MessageOf(rec)); err != nil {
		b.t.Fatal(err)
	}
	return rec.ID
}

// wait polls the record until cond holds, failing after timeout.
func (b *bundle) wait(id string, timeout time.Duration, what string, cond func(*job.Job) bool) *job.Job {
	b.t.Helper()
	var j *job.Job
	if !testwait.Poll(timeout, func() bool {
		var err error
		if j, err = b.jobs.GetByID(context.Background(), id); err != nil {
			b.t.Fatal(err)
		}
		return cond(j)
	}) {
		b.t.Fatalf("job %s: not %s after %s: state %s attempt %d error %+v", id, what, timeout, j.State, j.Attempt, j.Error)
	}
	return j
}

func (b *bundle) waitState(id string, timeout time.Duration, s job.State) *job.Job {
	b.t.Helper()
	return b.wait(id, timeout, string(s), func(j *job.Job) bool { return j.State == s })
}

// pid reads the pid a sleeper recorded, waiting for it.
func (b *bundle) pid(id string) int {
	b.t.Helper()
	var pid int
	testwait.Eventually(b.t, 10*time.Second, func() bool {
		data, err := os.ReadFile(filepath.Join(b.pidDir, id))
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(data)))
		return err == nil
	}, "job %s: a pid recorded", id)
	return pid
}

// gone waits until pid no longer exists.
func gone(t *testing.T, pid int) {
	t.Helper()
	testwait.Eventually(t, 3*time.Second, func() bool { return syscall.Kill(pid, 0) == syscall.ESRCH },
		"process %d gone (it is still alive)", pid)
}

// events returns the events of a job that has ended, waiting for its terminal
// state event: the worker publishes it just after the record's transition, so
// a test that saw the record end can read the stream a moment too early.
func (b *bundle) events(id string) []events.Event {
	b.t.Helper()
	var evs []events.Event
	if !testwait.Poll(5*time.Second, func() bool {
		var err error
		if evs, err = b.ev.Read(context.Background(), id, "", 1000, 0); err != nil {
			b.t.Fatal(err)
		}
		for _, e := range evs {
			if e.Type == events.TypeState && stateOf(b.t, e).State.Terminal() {
				return true
			}
		}
		return false
	}) {
		b.t.Fatalf("job %s: no terminal state event after 5 s in %d events", id, len(evs))
	}
	return evs
}

func stateOf(t *testing.T, e events.Event) events.State {
	t.Helper()
	var s events.State
	if err := json.Unmarshal(e.Data, &s); err != nil {
		t.Fatal(err)
	}
	return s
}
