package runner

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/testlog"
	"github.com/aigw/aigw/internal/testwait"
)

// ServeTestBin is testdata/servetest, built by TestMain.
var ServeTestBin string

// serveRunner is a runner whose bin directory holds servetest, with a
// pid directory for its starts; the runner is closed when the test ends.
func serveRunner(t *testing.T) (*Runner, string) {
	t.Helper()
	bin, pids := t.TempDir(), t.TempDir()
	if err := os.Symlink(ServeTestBin, filepath.Join(bin, "servetest")); err != nil {
		t.Fatal(err)
	}
	r := &Runner{AlgorithmsDir: bin, BinDir: bin, WorkDir: t.TempDir(),
		Limits:     Limits{Output: 1 << 10, LogTail: 1 << 10, KillGrace: 200 * time.Millisecond},
		FlushEvery: 20 * time.Millisecond, Log: testlog.New(t), ServeBackoff: 200 * time.Millisecond}
	t.Cleanup(r.Close)
	return r, pids
}

func serveDef(pids string, mod func(*algorithm.Runtime), args ...string) *algorithm.Definition {
	d := &algorithm.Definition{Name: "st", Version: "1.0.0", UpdatedAt: time.Now(),
		Runtime: algorithm.Runtime{Type: algorithm.Serve, Command: append([]string{"servetest"}, args...)},
		Env:     map[string]string{"PID_DIR": pids}}
	if mod != nil {
		mod(&d.Runtime)
	}
	return d
}

func serveSpec(def *algorithm.Definition, id, input string) Spec {
	return Spec{JobID: id, Attempt: 1, Input: json.RawMessage(input), Def: def, Timeout: 10 * time.Second}
}

// starts reads the pids servetest recorded at its starts.
func starts(t *testing.T, pids string) []int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(pids, "starts"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(l)
		pid, err := strconv.Atoi(f[0])
		if err != nil {
			t.Fatalf("starts file: %q", l)
		}
		out = append(out, pid)
	}
	return out
}

func pidGone(t *testing.T, pid int) {
	t.Helper()
	testwait.Eventually(t, 3*time.Second, func() bool { return syscall.Kill(pid, 0) == syscall.ESRCH },
		"process %d gone (it is still alive)", pid)
}

type served struct {
	Message string `json:"message"`
	PID     int    `json:"pid"`
	Jobs    int    `json:"jobs"`
	GPUs    string `json:"gpus"`
	Algo    string `json:"algorithm"`
}

func output(t *testing.T, res Result) served {
	t.Helper()
	if res.Err != nil {
		t.Fatalf("run failed: %v (log %q)", res.Err, res.Log)
	}
	var s served
	if err := json.Unmarshal(res.Output, &s); err != nil {
		t.Fatalf("output %s: %v", res.Output, err)
	}
	return s
}

// The first job starts a process (a cold start); the second reuses it, much
// faster; progress, log lines, the output directory and the GPUs reach the job.
func TestServeWarmRoundTrip(t *testing.T) {
	t.Parallel()
	r, pids := serveRunner(t)
	def := serveDef(pids, nil)
	def.Env["SETUP_MS"] = "300" // a set-up that takes its time, as loading a model does
	s := serveSpec(def, "j1", `{"message":"one","progress":true,"artifact":true}`)
	s.GPUs = []int{2, 5}
	h := &hookLog{}
	t0 := time.Now()
	res := r.Run(context.Background(), s, h.hooks())
	first := time.Since(t0)
	defer res.RemoveDir()
	one := output(t, res)
	if one.Message != "one" || one.Jobs != 1 || one.GPUs != "2,5" || one.Algo != "st" || res.PID != one.PID || h.pid != one.PID {
		t.Fatalf("first job: %+v (result pid %d, started %d)", one, res.PID, h.pid)
	}
	if res.ColdStart < 300*time.Millisecond {
		t.Fatalf("first job: cold start %s, want > 0", res.ColdStart)
	}
	if b, err := os.ReadFile(filepath.Join(res.OutputDir, "result.txt")); err != nil || string(b) != "made by "+strconv.Itoa(one.PID) {
		t.Fatalf("artifact: %q %v", b, err)
	}
	h.mu.Lock()
	if len(h.progress) != 1 || h.progress[0].Progress != 0.5 || h.progress[0].Message != "half way" {
		t.Fatalf("progress %+v", h.progress)
	}
	h.mu.Unlock()

	s = serveSpec(def, "j2", `{"message":"two","log":true}`)
	s.GPUs = []int{2, 5}
	h2 := &hookLog{}
	t0 = time.Now()
	res2 := r.Run(context.Background(), s, h2.hooks())
	second := time.Since(t0)
	defer res2.RemoveDir()
	two := output(t, res2)
	if two.PID != one.PID || two.Jobs != 2 || res2.ColdStart != 0 {
		t.Fatalf("second job: %+v cold %s, want pid %d, job 2, warm", two, res2.ColdStart, one.PID)
	}
	if res2.OutputDir == res.OutputDir {
		t.Fatal("both jobs got the same output directory")
	}
	if !strings.Contains(res2.Log, "a log message") || !strings.Contains(res2.Log, "a stderr line") {
		t.Fatalf("second job's log %q", res2.Log)
	}
	testwait.Eventually(t, 2*time.Second, func() bool {
		h2.mu.Lock()
		defer h2.mu.Unlock()
		return strings.Join(h2.logs, "|") == "a log message|a stderr line" || strings.Join(h2.logs, "|") == "a stderr line|a log message"
	}, "log hook lines")
	t.Logf("first job %s (cold start %s), second %s", first, res.ColdStart, second)
	if second*2 > first {
		t.Errorf("the warm job took %s, the cold one %s: want the warm one much faster", second, first)
	}
	// Another GPU set is another process.
	s = serveSpec(def, "j3", `{"message":"three"}`)
	s.GPUs = []int{1}
	res3 := r.Run(context.Background(), s, Hooks{})
	defer res3.RemoveDir()
	if three := output(t, res3); three.PID == one.PID || three.GPUs != "1" {
		t.Fatalf("job on GPU 1 ran on %+v", three)
	}
	if sets := r.IdleGPUSets(def); len(sets) != 2 {
		t.Fatalf("idle GPU sets %v", sets)
	}
	r.Close()
	pidGone(t, one.PID)
}

// A set-up that never finishes is killed at setup_timeout_ms; the group
// then backs off (no start until the backoff passes).
func TestServeSetupTimeout(t *testing.T) {
	t.Parallel()
	r, pids := serveRunner(t)
	def := serveDef(pids, func(rt *algorithm.Runtime) { rt.SetupTimeoutMS = 300 }, "hang")
	t0 := time.Now()
	_, err := r.Acquire(context.Background(), def, nil, nil)
	var nr *NotReadyError
	if !errors.As(err, &nr) || !strings.Contains(nr.Reason, "set-up did not finish within runtime.setup_timeout_ms (300ms)") {
		t.Fatalf("acquire: %v", err)
	}
	if d := time.Since(t0); d < 300*time.Millisecond || d > 3*time.Second {
		t.Fatalf("acquire answered after %s", d)
	}
	ps := starts(t, pids)
	if len(ps) != 1 {
		t.Fatalf("starts %v", ps)
	}
	pidGone(t, ps[0])
	if _, err := r.Acquire(context.Background(), def, nil, nil); !errors.As(err, &nr) || time.Until(nr.RetryAt) <= 0 {
		t.Fatalf("acquire during the backoff: %v", err)
	}
	if ps := starts(t, pids); len(ps) != 1 {
		t.Fatalf("a start during the backoff: %v", ps)
	}
}

// A process that crashes at set-up is started again only after a backoff
// that doubles: no tight loop.
func TestServeCrashAtSetupBacksOff(t *testing.T) {
	t.Parallel()
	r, pids := serveRunner(t)
	def := serveDef(pids, nil, "crash")
	var last error
	window := 1500 * time.Millisecond
	end := time.Now().Add(window)
	tries := 0
	for time.Now().Before(end) {
		tries++
		_, err := r.Acquire(context.Background(), def, nil, nil)
		var nr *NotReadyError
		if !errors.As(err, &nr) {
			t.Fatalf("acquire: %v", err)
		}
		last = err
		time.Sleep(20 * time.Millisecond) // a caller hammering the pool
	}
	// Backoff 200 ms, 400 ms, 800 ms: starts at 0, 0.2, 0.6 and 1.4 s.
	n := len(starts(t, pids))
	if n < 2 || n > 4 {
		t.Fatalf("%d starts in %s (%d acquires), want 2-4", n, window, tries)
	}
	if !strings.Contains(last.Error(), "exit status 3: cannot load the model") {
		t.Fatalf("last error %v", last)
	}
}

// Garbage on stdout fails the job bad_output and replaces the process; so
// does a done for another job, and garbage at set-up fails the set-up.
func TestServeGarbage(t *testing.T) {
	t.Parallel()
	r, pids := serveRunner(t)
	def := serveDef(pids, nil)
	first := output(t, r.Run(context.Background(), serveSpec(def, "j1", `{}`), Hooks{}))
	for i, in := range []string{`{"garbage":true}`, `{"wrong_id":true}`} {
		res := r.Run(context.Background(), serveSpec(def, "jg"+strconv.Itoa(i), in), Hooks{})
		res.RemoveDir()
		if res.Err == nil || res.Err.Code != CodeBadOut || res.Err.Retryable {
			t.Fatalf("%s: %+v", in, res.Err)
		}
		t.Logf("%s: %s", in, res.Err.Message)
		pidGone(t, res.PID)
	}
	next := output(t, r.Run(context.Background(), serveSpec(def, "j2", `{}`), Hooks{}))
	if next.PID == first.PID || next.Jobs != 1 {
		t.Fatalf("after garbage the job ran on %+v (first process %d)", next, first.PID)
	}
	_, err := r.Acquire(context.Background(), serveDef(pids, nil, "garbage"), nil, nil)
	if err == nil || !strings.Contains(err.Error(), "during set-up") || !strings.Contains(err.Error(), "loading... 50%") {
		t.Fatalf("garbage at set-up: %v", err)
	}
}

// A process is recycled after max_jobs jobs.
func TestServeMaxJobs(t *testing.T) {
	t.Parallel()
	r, pids := serveRunner(t)
	def := serveDef(pids, func(rt *algorithm.Runtime) { rt.MaxJobs = 2 })
	var got []served
	for i := range 3 {
		res := r.Run(context.Background(), serveSpec(def, "j"+strconv.Itoa(i), `{}`), Hooks{})
		res.RemoveDir()
		got = append(got, output(t, res))
	}
	if got[0].PID != got[1].PID || got[2].PID == got[0].PID || got[2].Jobs != 1 {
		t.Fatalf("jobs ran on %+v", got)
	}
	pidGone(t, got[0].PID)
}

// Cancel: the process is asked to stop, then stopped; the job ends within
// a second and the next job runs on a fresh process.
func TestServeCancel(t *testing.T) {
	t.Parallel()
	r, pids := serveRunner(t)
	def := serveDef(pids, nil)
	ctx, cancel := context.WithCancelCause(context.Background())
	started := make(chan int, 1)
	canceled := make(chan time.Time, 1)
	go func() {
		<-started
		time.Sleep(100 * time.Millisecond)
		canceled <- time.Now()
		cancel(errors.New("cancel requested"))
	}()
	res := r.Run(ctx, serveSpec(def, "j1", `{"sleep_ms":20000}`), Hooks{Started: func(pid int) { started <- pid }})
	res.RemoveDir()
	if took := time.Since(<-canceled); took > time.Second {
		t.Fatalf("canceled job ended %s after the cancel", took)
	}
	if res.Err == nil || res.Err.Code != CodeStopped || !strings.Contains(res.Err.Message, "cancel requested") {
		t.Fatalf("result %+v", res.Err)
	}
	pidGone(t, res.PID)
	next := output(t, r.Run(context.Background(), serveSpec(def, "j2", `{}`), Hooks{}))
	if next.PID == res.PID {
		t.Fatal("the next job ran on the canceled job's process")
	}
}

// A crash mid-job fails the attempt (retryably) and backs the group off;
// a job that times out stops its process; a done with an error keeps it.
func TestServeCrashTimeoutAndError(t *testing.T) {
	t.Parallel()
	r, pids := serveRunner(t)
	def := serveDef(pids, nil)
	res := r.Run(context.Background(), serveSpec(def, "j1", `{"crash":true}`), Hooks{})
	res.RemoveDir()
	if res.Err == nil || res.Err.Code != CodeRuntime || !res.Err.Retryable ||
		!strings.Contains(res.Err.Message, "exit status 3: out of memory") {
		t.Fatalf("crash: %+v", res.Err)
	}
	var nr *NotReadyError
	if _, err := r.Acquire(context.Background(), def, nil, nil); !errors.As(err, &nr) {
		t.Fatalf("acquire right after a crash: %v", err)
	}
	time.Sleep(time.Until(nr.RetryAt))

	s := serveSpec(def, "j2", `{"sleep_ms":20000}`)
	s.Timeout = 300 * time.Millisecond
	res = r.Run(context.Background(), s, Hooks{})
	res.RemoveDir()
	if res.Err == nil || res.Err.Code != CodeTimeout || !res.Err.Retryable {
		t.Fatalf("timeout: %+v", res.Err)
	}
	pidGone(t, res.PID)

	res = r.Run(context.Background(), serveSpec(def, "j3", `{"fail":true}`), Hooks{})
	res.RemoveDir()
	if res.Err == nil || res.Err.Code != CodeRuntime || res.Err.Retryable || res.Err.Message != "bad input: say what" {
		t.Fatalf("error answer: %+v", res.Err)
	}
	again := output(t, r.Run(context.Background(), serveSpec(def, "j4", `{}`), Hooks{}))
	if again.PID != res.PID {
		t.Fatalf("a job after an error answer ran on %d, not %d", again.PID, res.PID)
	}
}

// An idle process beyond min_warm stops after idle_timeout_ms; KeepWarm
// starts min_warm processes with no job, keeps them past the idle timeout and
// replaces one that dies.
func TestServeIdleTimeoutAndMinWarm(t *testing.T) {
	t.Parallel()
	r, pids := serveRunner(t)
	def := serveDef(pids, func(rt *algorithm.Runtime) { rt.IdleTimeoutMS = 300 })
	one := output(t, r.Run(context.Background(), serveSpec(def, "j1", `{}`), Hooks{}))
	pidGone(t, one.PID)
	if n := r.WarmProcesses(def); n != 0 {
		t.Fatalf("%d processes after the idle timeout", n)
	}

	r.KeepWarm(def, [][]int{nil, nil})
	testwait.Eventually(t, 5*time.Second, func() bool { return len(r.IdleGPUSets(def)) == 1 && len(starts(t, pids)) == 3 },
		"two warm processes started")
	time.Sleep(600 * time.Millisecond) // past the idle timeout
	ps := starts(t, pids)
	for _, pid := range ps[1:] {
		if syscall.Kill(pid, 0) != nil {
			t.Fatalf("min_warm process %d stopped at its idle timeout", pid)
		}
	}
	res := r.Run(context.Background(), serveSpec(def, "j2", `{}`), Hooks{})
	res.RemoveDir()
	if res.ColdStart != 0 {
		t.Fatalf("a job with min_warm processes ready had a cold start of %s", res.ColdStart)
	}
	if err := syscall.Kill(ps[1], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testwait.Eventually(t, 5*time.Second, func() bool { return len(starts(t, pids)) == 4 && r.WarmProcesses(def) == 2 },
		"the killed process replaced")
	r.KeepWarm(def, nil)
	testwait.Eventually(t, 5*time.Second, func() bool { return r.WarmProcesses(def) == 0 }, "processes stopped once min_warm is 0")
}

// A process that must load its model on GPUs stops the idle processes of
// other algorithms on them first.
func TestServeEvictsIdleProcessesFromItsGPUs(t *testing.T) {
	t.Parallel()
	r, pids := serveRunner(t)
	a, b := serveDef(pids, nil), serveDef(pids, nil)
	b.Name = "other"
	s := serveSpec(a, "j1", `{}`)
	s.GPUs = []int{0, 1}
	ra := r.Run(context.Background(), s, Hooks{})
	ra.RemoveDir()
	other := serveSpec(b, "j2", `{}`)
	other.GPUs = []int{3}
	rc := r.Run(context.Background(), other, Hooks{}) // no overlap: a stays
	rc.RemoveDir()
	if syscall.Kill(output(t, ra).PID, 0) != nil {
		t.Fatal("a process on other GPUs was stopped")
	}
	other.JobID, other.GPUs = "j3", []int{1}
	rb := r.Run(context.Background(), other, Hooks{})
	rb.RemoveDir()
	if output(t, rb).PID == output(t, ra).PID {
		t.Fatal("same process")
	}
	pidGone(t, ra.PID)
	if len(r.IdleGPUSets(a)) != 0 {
		t.Fatalf("idle sets of the evicted algorithm: %v", r.IdleGPUSets(a))
	}
}

// A spec's asset paths are its process's environment: jobs with the same
// ones share a warm process, a lease on a process without them is handed
// back for one with them, and any other variable gets a process of its own.
func TestServeProcessEnvironment(t *testing.T) {
	t.Parallel()
	r, pids := serveRunner(t)
	def := serveDef(pids, nil)
	def.Runtime.Command = []string{"servetest"}
	plain, err := r.Acquire(context.Background(), def, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := serveSpec(def, "j1", `{}`)
	s.Env, s.Lease = map[string]string{"AIGW_ASSET_WEIGHTS": "/cache/ab12"}, plain
	one := r.Run(context.Background(), s, Hooks{})
	one.RemoveDir()
	if one.PID == plain.PID() || one.ColdStart == 0 {
		t.Fatalf("the job ran on pid %d (the lease's %d) with cold start %s", one.PID, plain.PID(), one.ColdStart)
	}
	s.JobID, s.Lease = "j2", nil
	two := r.Run(context.Background(), s, Hooks{})
	two.RemoveDir()
	if two.PID != one.PID || two.ColdStart != 0 {
		t.Fatalf("second job with the same assets on pid %d (want %d), cold start %s", two.PID, one.PID, two.ColdStart)
	}
	s.JobID, s.Env = "j3", map[string]string{"AIGW_ASSET_WEIGHTS": "/cache/ab12", "RANK": "1"}
	three := r.Run(context.Background(), s, Hooks{})
	three.RemoveDir()
	if three.PID == one.PID || three.PID == plain.PID() {
		t.Fatal("a job with a rank ran on a shared process")
	}
	pidGone(t, three.PID)
}

// A serve definition whose program is not allowed fails its job
// command_not_allowed, and no process starts.
func TestServeRunsOnlyWhatTheOperatorInstalled(t *testing.T) {
	t.Parallel()
	r, pids := serveRunner(t)
	for _, cmd := range [][]string{{"/bin/sh"}, {"../servetest"}} {
		def := serveDef(pids, nil)
		def.Runtime.Command = cmd
		res := r.Run(context.Background(), serveSpec(def, "j1", `{}`), Hooks{})
		if res.Err == nil || res.Err.Code != CodeNotAllowed || res.Err.Retryable {
			t.Fatalf("%v: %+v", cmd, res.Err)
		}
	}
	if ps := starts(t, pids); len(ps) != 0 {
		t.Fatalf("processes started: %v", ps)
	}
}
