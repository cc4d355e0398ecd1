package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/events"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/internal/registry"
	"github.com/aigw/aigw/internal/testenv"
	"github.com/aigw/aigw/internal/testlog"
	"github.com/aigw/aigw/internal/testwait"
	"github.com/aigw/aigw/worker/internal/assetcache"
)

// serveAlgo registers a serve algorithm running testdata/servetest of the
// runner (aigw-serve-test) with args.
func (b *bundle) serveAlgo(name string, args []string, retries int, mod func(*algorithm.Definition)) {
	b.t.Helper()
	b.algo(name, append([]string{"aigw-serve-test"}, args...), retries, func(d *algorithm.Definition) {
		d.Runtime.Type = algorithm.Serve
		if mod != nil {
			mod(d)
		}
	})
}

// starts reads the pids aigw-serve-test recorded at its starts.
func (b *bundle) starts() []int {
	b.t.Helper()
	data, err := os.ReadFile(filepath.Join(b.pidDir, "starts"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		b.t.Fatal(err)
	}
	var out []int
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		pid, err := strconv.Atoi(strings.Fields(l)[0])
		if err != nil {
			b.t.Fatalf("starts: %q", l)
		}
		out = append(out, pid)
	}
	return out
}

type servedOut struct {
	Message string `json:"message"`
	PID     int    `json:"pid"`
	Jobs    int    `json:"jobs"`
	GPUs    string `json:"gpus"`
	Asset   string `json:"asset"`
}

func served(t *testing.T, j *job.Job) servedOut {
	t.Helper()
	var o servedOut
	if err := json.Unmarshal(j.Output, &o); err != nil {
		t.Fatalf("output %s: %v", j.Output, err)
	}
	return o
}

// terminalEvents counts a job's terminal state events.
func (b *bundle) terminalEvents(id string) int {
	n := 0
	for _, e := range b.events(id) {
		if e.Type == events.TypeState && stateOf(b.t, e).State.Terminal() {
			n++
		}
	}
	return n
}

// A warm job round trip: the first job waits for the process's set-up (its
// record says how long), the second runs on the same process at once; both
// stream progress, output and artifacts as exec jobs do.
func TestServeWarmJobs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.serveAlgo("warm", nil, 0, func(d *algorithm.Definition) { d.Env["SETUP_MS"] = "500" })
	a, _ := b.worker(b.config("w1", 1), nil)
	first := b.waitState(b.submit("warm", `{"message":"one","progress":true,"artifact":true}`, nil), 20*time.Second, job.Succeeded)
	one := served(t, first)
	if one.Message != "one" || one.Jobs != 1 || first.ColdStartMS < 500 {
		t.Fatalf("first job: output %+v cold_start_ms %d (want ≥ 500)", one, first.ColdStartMS)
	}
	if len(first.Artifacts) != 1 || first.Artifacts[0].Name != "result.txt" {
		t.Fatalf("first job's artifacts %+v", first.Artifacts)
	}
	second := b.waitState(b.submit("warm", `{"message":"two","log":true}`, nil), 20*time.Second, job.Succeeded)
	two := served(t, second)
	if two.PID != one.PID || two.Jobs != 2 || second.ColdStartMS != 0 {
		t.Fatalf("second job: output %+v cold_start_ms %d, want pid %d, its 2nd job, no cold start", two, second.ColdStartMS, one.PID)
	}
	if !strings.Contains(second.Log, "a log message") {
		t.Fatalf("second job's log %q", second.Log)
	}
	run1, run2 := first.FinishedAt.Sub(*first.StartedAt), second.FinishedAt.Sub(*second.StartedAt)
	t.Logf("first job: cold start %d ms, ran %s; second: ran %s", first.ColdStartMS, run1, run2)
	var seq []string
	for _, e := range b.events(first.ID) {
		s := string(e.Type)
		if e.Type == events.TypeState {
			s += ":" + string(stateOf(t, e).State)
		}
		seq = append(seq, s)
	}
	if got := strings.Join(seq, " "); !strings.HasPrefix(got, "state:queued state:running progress") || !strings.HasSuffix(got, "output state:succeeded") {
		t.Fatalf("events %q", got)
	}
	m := a.d.Metrics
	if testutil.ToFloat64(m.WarmHits.WithLabelValues("warm")) != 1 || testutil.ToFloat64(m.ColdStarts.WithLabelValues("warm")) != 1 ||
		testutil.CollectAndCount(m.SetupSeconds) != 1 {
		t.Fatalf("metrics: warm hits %v cold starts %v", testutil.ToFloat64(m.WarmHits.WithLabelValues("warm")),
			testutil.ToFloat64(m.ColdStarts.WithLabelValues("warm")))
	}
}

// GPUs stay with their process: a job goes to the GPU set of an idle warm
// process of its algorithm, not the first free GPU.
func TestServePrefersTheWarmProcessesGPUs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	gpus := []registry.GPU{{Index: 0, UUID: "GPU-0"}, {Index: 1, UUID: "GPU-1"}}
	b.algo("sleeper", []string{"./sleeper"}, 0, func(d *algorithm.Definition) { d.Resources.GPUs = 1 })
	b.serveAlgo("onegpu", nil, 0, func(d *algorithm.Definition) { d.Resources.GPUs = 1 })
	b.worker(b.config("w1", 2), gpus)
	hog := b.submit("sleeper", `{}`, nil)
	b.pid(hog) // it holds GPU 0
	first := served(t, b.waitState(b.submit("onegpu", `{}`, nil), 20*time.Second, job.Succeeded))
	if first.GPUs != "1" {
		t.Fatalf("first serve job on GPUs %q, want 1 (0 is busy)", first.GPUs)
	}
	if err := b.ev.RequestCancel(context.Background(), hog); err != nil {
		t.Fatal(err)
	}
	b.waitState(hog, 10*time.Second, job.Canceled)
	second := b.waitState(b.submit("onegpu", `{}`, nil), 20*time.Second, job.Succeeded)
	if o := served(t, second); o.GPUs != "1" || o.PID != first.PID || second.ColdStartMS != 0 {
		t.Fatalf("second serve job: %+v cold_start_ms %d, want GPU 1 on pid %d, warm", o, second.ColdStartMS, first.PID)
	}
}

// A set-up that never finishes: killed at setup_timeout_ms, started again
// after the backoff; the job waits queued, its stream says why, and it ends
// expired when its time to live passes.
func TestServeSetupNeverFinishes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.serveAlgo("hang", []string{"hang"}, 0, func(d *algorithm.Definition) { d.Runtime.SetupTimeoutMS = 300 })
	a, _ := b.worker(b.config("w1", 1), nil)
	expires := time.Now().Add(3 * time.Second)
	id := b.submit("hang", `{}`, func(j *job.Job) { j.ExpiresAt = &expires })
	j := b.waitState(id, 20*time.Second, job.Expired)
	if j.Error == nil || j.Error.Code != job.CodeExpired || j.StartedAt != nil {
		t.Fatalf("record: error %+v started %v", j.Error, j.StartedAt)
	}
	var logs []string
	for _, e := range b.events(id) {
		if e.Type == events.TypeLog {
			var l events.Log
			_ = json.Unmarshal(e.Data, &l)
			logs = append(logs, l.Lines...)
		}
	}
	if len(logs) == 0 || !strings.Contains(logs[0], "set-up did not finish within runtime.setup_timeout_ms (300ms)") {
		t.Fatalf("log events %q", logs)
	}
	// Starts at 0 s and 1.3 s (backoff 1 s), then 3.6 s: two or three.
	ps := b.starts()
	if len(ps) < 2 || len(ps) > 3 {
		t.Fatalf("%d set-ups in 3 s: %v", len(ps), ps)
	}
	for _, pid := range ps[:len(ps)-1] {
		gone(t, pid)
	}
	if n := testutil.ToFloat64(a.d.Metrics.SetupFailed.WithLabelValues("hang")); n < 2 {
		t.Fatalf("set-up failures counted: %v", n)
	}
}

// A process that crashes at set-up is started again after a doubling
// backoff, not in a tight loop, while its job waits.
func TestServeCrashAtSetup(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.serveAlgo("crash", []string{"crash"}, 0, nil)
	b.worker(b.config("w1", 1), nil)
	expires := time.Now().Add(4 * time.Second)
	id := b.submit("crash", `{}`, func(j *job.Job) { j.ExpiresAt = &expires })
	b.waitState(id, 20*time.Second, job.Expired)
	// Backoff 1 s, 2 s, 4 s: starts at 0, 1 and 3 s in the job's 4 s.
	if ps := b.starts(); len(ps) < 2 || len(ps) > 3 {
		t.Fatalf("%d starts in 4 s, want 2-3: %v", len(ps), ps)
	}
}

// Garbage on stdout fails the job bad_output (not retried); the next job
// runs on a new process.
func TestServeGarbageOutput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.serveAlgo("garbage", nil, 2, nil)
	b.worker(b.config("w1", 1), nil)
	first := served(t, b.waitState(b.submit("garbage", `{}`, nil), 20*time.Second, job.Succeeded))
	j := b.waitState(b.submit("garbage", `{"garbage":true}`, func(j *job.Job) { j.MaxRetries = 2 }), 20*time.Second, job.Failed)
	if j.Error == nil || j.Error.Code != job.CodeBadOutput || j.Attempt != 1 || !strings.Contains(j.Error.Message, "Traceback") {
		t.Fatalf("garbage job: attempt %d error %+v", j.Attempt, j.Error)
	}
	gone(t, first.PID)
	next := served(t, b.waitState(b.submit("garbage", `{}`, nil), 20*time.Second, job.Succeeded))
	if next.PID == first.PID || next.Jobs != 1 {
		t.Fatalf("job after the garbage ran on %+v", next)
	}
}

// A process is recycled after max_jobs (a leaking model gets a fresh one).
func TestServeRecycledAfterMaxJobs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.serveAlgo("leaky", nil, 0, func(d *algorithm.Definition) { d.Runtime.MaxJobs = 2 })
	b.worker(b.config("w1", 1), nil)
	var pids []int
	for range 3 {
		pids = append(pids, served(t, b.waitState(b.submit("leaky", `{}`, nil), 20*time.Second, job.Succeeded)).PID)
	}
	if pids[0] != pids[1] || pids[2] == pids[0] {
		t.Fatalf("pids %v: want the first two jobs on one process, the third on a new one", pids)
	}
	gone(t, pids[0])
}

// Cancel of a warm job: canceled within a second, never retried, and the
// next job runs on a fresh process.
func TestServeCancelWarmJob(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.serveAlgo("slow", nil, 3, nil)
	b.worker(b.config("w1", 1), nil)
	warm := served(t, b.waitState(b.submit("slow", `{}`, nil), 20*time.Second, job.Succeeded))
	id := b.submit("slow", `{"sleep_ms":30000}`, func(j *job.Job) { j.MaxRetries = 3 })
	b.waitState(id, 10*time.Second, job.Running)
	time.Sleep(100 * time.Millisecond) // the run message is on its way
	asked := time.Now()
	if err := b.ev.RequestCancel(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	j := b.waitState(id, 10*time.Second, job.Canceled)
	// Reaction within the agent's cancel check (250 ms) and the grace (300 ms).
	if took := time.Since(asked); took > time.Second {
		t.Errorf("canceled after %s", took)
	}
	if j.Attempt != 1 {
		t.Errorf("attempt %d: a canceled job is not retried", j.Attempt)
	}
	gone(t, warm.PID)
	next := served(t, b.waitState(b.submit("slow", `{}`, nil), 20*time.Second, job.Succeeded))
	if next.PID == warm.PID {
		t.Fatal("the next job ran on the canceled job's process")
	}
}

// A crash mid-job fails the attempt runtime_error; the job is retried per
// its policy on a restarted process and ends once.
func TestServeCrashMidJob(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.serveAlgo("crashy", nil, 1, nil)
	b.worker(b.config("w1", 1), nil)
	id := b.submit("crashy", `{"crash_once":true,"message":"again"}`, func(j *job.Job) { j.MaxRetries = 1 })
	j := b.waitState(id, 30*time.Second, job.Succeeded)
	if o := served(t, j); j.Attempt != 2 || o.Message != "again" || o.Jobs != 1 {
		t.Fatalf("attempt %d output %+v", j.Attempt, o)
	}
	var crashed *job.Error
	for _, e := range b.events(id) {
		if e.Type == events.TypeState {
			if s := stateOf(t, e); s.State == job.Queued && s.Error != nil {
				crashed = s.Error
			}
		}
	}
	if crashed == nil || crashed.Code != job.CodeRuntime || !strings.Contains(crashed.Message, "out of memory once") {
		t.Fatalf("first attempt's error %+v", crashed)
	}
	if n := b.terminalEvents(id); n != 1 {
		t.Fatalf("%d terminal state events", n)
	}
	if ps := b.starts(); len(ps) != 2 {
		t.Fatalf("starts %v: want the crashed process and its replacement", ps)
	}
}

// TestServeWorkerSIGKILL kills a real aigw-worker process while warm jobs
// run on it: after the lease another worker takes them over; each ends
// exactly once, and the orphaned warm processes exit once their stdin ends.
func TestServeWorkerSIGKILL(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.lease = 2 * time.Second
	b.q = queue.New(b.rdb, queue.Config{Lease: b.lease})
	// The worker process runs as root and starts its processes as nobody, who
	// must reach the programs, the work directory and the pid directory.
	workDir := runDir(t)
	for _, p := range []string{filepath.Dir(b.pidDir), b.pidDir} {
		if err := os.Chmod(p, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	b.serveAlgo("warmkill", nil, 0, nil)
	cmd := exec.Command(filepath.Join(binDir, "aigw-worker"))
	cmd.Env = append(os.Environ(),
		"AIGW_POOL="+b.pool, "AIGW_REDIS_ADDRS="+joinAddrs(testenv.RedisAddrs(t)), "AIGW_MONGO_URI="+testenv.MongoURI(t),
		"AIGW_MONGO_DB="+b.db.Name(), "AIGW_SLOTS=2", "AIGW_NODE_NAME=w-killed", "AIGW_METRICS_ADDR=off",
		"AIGW_BIN_DIR="+binDir, "AIGW_ALGORITHMS_DIR=testdata", "AIGW_HEARTBEAT=300ms", "AIGW_LEASE=2s",
		"AIGW_NVIDIA_SMI=/nonexistent/nvidia-smi", "AIGW_WORK_DIR="+workDir)
	stderr := &lockedBuffer{}
	cmd.Stderr = io.MultiWriter(testlog.Writer(t), stderr)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	// Warm up, then two jobs running on warm processes.
	b.waitState(b.submit("warmkill", `{}`, nil), 60*time.Second, job.Succeeded)
	ids := []string{b.submit("warmkill", `{"message":"a","sleep_ms":3000}`, nil), b.submit("warmkill", `{"message":"b","sleep_ms":3000}`, nil)}
	for _, id := range ids {
		b.wait(id, 30*time.Second, "running on w-killed", func(j *job.Job) bool { return j.State == job.Running && j.Worker == "w-killed" })
	}
	time.Sleep(200 * time.Millisecond) // the run messages are out
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-exited
	if !testwait.Poll(10*time.Second, func() bool {
		ws, err := b.reg.Workers(context.Background(), b.pool)
		return err == nil && len(ws) == 0
	}) {
		t.Fatal("killed worker still registered")
	}
	b.worker(b.config("w2", 2), nil)
	for i, id := range ids {
		j := b.waitState(id, 30*time.Second, job.Succeeded)
		if o := served(t, j); j.Worker != "w2" || j.Attempt != 2 || o.Message != string(rune('a'+i)) {
			t.Fatalf("job %s: worker %q attempt %d output %s", id, j.Worker, j.Attempt, j.Output)
		}
		if n := b.terminalEvents(id); n != 1 {
			t.Fatalf("job %s: %d terminal state events", id, n)
		}
		// The entry is acknowledged after the record's transition.
		if !testwait.Poll(5*time.Second, func() bool {
			in, err := b.q.Contains(context.Background(), b.pool, id)
			return err == nil && !in
		}) {
			t.Fatalf("finished job %s still in the queue", id)
		}
	}
	// The dead worker's processes finish their job, see stdin end and exit.
	killedStarts := b.starts()
	for _, pid := range killedStarts[:2] {
		testwait.Eventually(t, 10*time.Second, func() bool { return syscall.Kill(pid, 0) == syscall.ESRCH },
			"orphaned warm process %d exited", pid)
	}
}

// min_warm: a worker starts the processes before any job comes, and the
// first job finds one ready; they stop with the worker.
func TestServeMinWarm(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.serveAlgo("prewarmed", nil, 0, func(d *algorithm.Definition) {
		d.Runtime.MinWarm = 1
		d.Env["SETUP_MS"] = "300"
	})
	_, stop := b.worker(b.config("w1", 1), nil)
	testwait.Eventually(t, 10*time.Second, func() bool { return len(b.starts()) == 1 }, "a process started with no job")
	time.Sleep(500 * time.Millisecond) // its set-up is done
	j := b.waitState(b.submit("prewarmed", `{}`, nil), 20*time.Second, job.Succeeded)
	if o := served(t, j); j.ColdStartMS != 0 || o.PID != b.starts()[0] {
		t.Fatalf("first job: cold_start_ms %d on pid %d, want the pre-started %v", j.ColdStartMS, o.PID, b.starts())
	}
	// A worker that stops stops its warm processes.
	stop()
	gone(t, b.starts()[0])
}

// A serve algorithm with an asset: its process starts with the asset's
// cached path (AIGW_ASSET_WEIGHTS) and serves the next job warm.
func TestServeWithAnAsset(t *testing.T) {
	t.Parallel()
	content := "weights v2"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(content)) }))
	t.Cleanup(srv.Close)
	sum := sha256.Sum256([]byte(content))
	cache, err := assetcache.New(t.TempDir(), 1<<20, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	b := setup(t)
	b.serveAlgo("warmasset", nil, 0, func(d *algorithm.Definition) {
		d.Assets = []algorithm.Asset{{Name: "weights", URL: srv.URL + "/w.bin", SHA256: hex.EncodeToString(sum[:]), Size: int64(len(content))}}
	})
	startWorker(t, b, b.config("w1", 1), cache, nil)
	first := b.waitState(b.submit("warmasset", `{}`, nil), 20*time.Second, job.Succeeded)
	second := b.waitState(b.submit("warmasset", `{}`, nil), 20*time.Second, job.Succeeded)
	one, two := served(t, first), served(t, second)
	if one.Asset != cache.Path(hex.EncodeToString(sum[:])) || first.ColdStartMS == 0 {
		t.Fatalf("first job: %+v cold_start_ms %d", one, first.ColdStartMS)
	}
	if two.PID != one.PID || two.Asset != one.Asset || second.ColdStartMS != 0 {
		t.Fatalf("second job: %+v cold_start_ms %d, want pid %d warm", two, second.ColdStartMS, one.PID)
	}
}
