package runner

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/events"
	"github.com/aigw/aigw/internal/testwait"
)

// script writes an executable shell script into dir and returns its path.
func script(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func execRunner(t *testing.T) (*Runner, string) {
	t.Helper()
	dir := t.TempDir()
	return &Runner{AlgorithmsDir: dir, BinDir: dir, WorkDir: t.TempDir(),
		Limits:     Limits{Output: 1 << 10, LogTail: 256, KillGrace: 200 * time.Millisecond},
		FlushEvery: 20 * time.Millisecond}, dir
}

func execSpec(command ...string) Spec {
	return Spec{JobID: "j1", Attempt: 2, Input: json.RawMessage(`{"x":1}`), Timeout: 10 * time.Second,
		Def: &algorithm.Definition{Name: "t", Version: "1.0.0", Runtime: algorithm.Runtime{Type: algorithm.Exec, Command: command}}}
}

// hookLog collects what the hooks receive.
type hookLog struct {
	mu       sync.Mutex
	progress []events.Progress
	logs     []string
	pid      int
}

func (h *hookLog) hooks() Hooks {
	return Hooks{
		Progress: func(p events.Progress) { h.mu.Lock(); h.progress = append(h.progress, p); h.mu.Unlock() },
		Logs:     func(l []string) { h.mu.Lock(); h.logs = append(h.logs, l...); h.mu.Unlock() },
		Started:  func(pid int) { h.mu.Lock(); h.pid = pid; h.mu.Unlock() },
	}
}

func TestExecStdinToStdout(t *testing.T) {
	t.Parallel()
	r, dir := execRunner(t)
	script(t, dir, "cat-input", `cat; printf '%s %s %s' "$AIGW_JOB_ID" "$AIGW_ATTEMPT" "$CUDA_VISIBLE_DEVICES" > "$AIGW_OUTPUT_DIR/env.txt"`+"\n")
	s := execSpec("cat-input", "ignored-arg")
	s.GPUs = []int{1, 3}
	h := &hookLog{}
	res := r.Run(context.Background(), s, h.hooks())
	defer os.RemoveAll(res.Dir)
	if res.Err != nil {
		t.Fatalf("run failed: %v (log %q)", res.Err, res.Log)
	}
	if string(res.Output) != `{"x":1}` {
		t.Fatalf("output %s", res.Output)
	}
	if h.pid == 0 || h.pid != res.PID {
		t.Fatalf("started hook pid %d, result pid %d", h.pid, res.PID)
	}
	b, err := os.ReadFile(filepath.Join(res.OutputDir, "env.txt"))
	if err != nil || string(b) != "j1 2 1,3" {
		t.Fatalf("env seen by the run: %q %v", b, err)
	}
}

// An input far over a pipe's buffer reaches a child that reads it all, and a
// child that reads none of it still ends its run (the writer gets EPIPE).
func TestExecLargeInputThroughThePipe(t *testing.T) {
	t.Parallel()
	r, dir := execRunner(t)
	r.Limits.Output = 4 << 20
	script(t, dir, "cat-input", "exec cat\n")
	script(t, dir, "ignore-input", "echo '{}'\n")
	big := `{"pad":"` + strings.Repeat("x", 1<<20) + `"}`
	for _, c := range []struct{ cmd, want string }{{"cat-input", big}, {"ignore-input", `{}`}} {
		s := execSpec(c.cmd)
		s.Input = json.RawMessage(big)
		res := r.Run(context.Background(), s, Hooks{})
		res.RemoveDir()
		if res.Err != nil || string(res.Output) != c.want {
			t.Fatalf("%s: err %v, output %d bytes", c.cmd, res.Err, len(res.Output))
		}
	}
}

// The run's working directory is its own directory, with out/ inside it;
// RemoveDir removes all of it, whether the run left files behind or not.
func TestExecRunDirectory(t *testing.T) {
	t.Parallel()
	r, dir := execRunner(t)
	script(t, dir, "where", `printf '{"cwd":"%s"}' "$(pwd -P)"`+"\n")
	script(t, dir, "litter", `echo a > left.txt; mkdir -p "$AIGW_OUTPUT_DIR/sub"; echo b > "$AIGW_OUTPUT_DIR/sub/f"; echo '{}'`+"\n")
	res := r.Run(context.Background(), execSpec("where"), Hooks{})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	real, err := filepath.EvalSymlinks(res.Dir)
	if err != nil || string(res.Output) != `{"cwd":"`+real+`"}` || res.OutputDir != filepath.Join(res.Dir, "out") {
		t.Fatalf("output %s, dir %s, out %s (%v)", res.Output, res.Dir, res.OutputDir, err)
	}
	res.RemoveDir()
	if _, err := os.Stat(res.Dir); !os.IsNotExist(err) {
		t.Fatalf("run directory still there: %v", err)
	}
	res = r.Run(context.Background(), execSpec("litter"), Hooks{})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if _, err := os.Stat(filepath.Join(res.Dir, "left.txt")); err != nil {
		t.Fatal(err)
	}
	res.RemoveDir()
	if _, err := os.Stat(res.Dir); !os.IsNotExist(err) {
		t.Fatalf("littered run directory still there: %v", err)
	}
}

func TestExecEnvironmentDropsWorkerSettings(t *testing.T) {
	t.Setenv("AIGW_MONGO_URI", "mongodb://secret@host/")
	r, dir := execRunner(t)
	script(t, dir, "env-json", `printf '{"mongo":"%s","extra":"%s","rank":"%s"}' "$AIGW_MONGO_URI" "$EXTRA" "$RANK"`+"\n")
	s := execSpec("env-json")
	s.Def.Env = map[string]string{"EXTRA": "from-def", "RANK": "def"}
	s.Env = map[string]string{"RANK": "7"}
	res := r.Run(context.Background(), s, Hooks{})
	defer os.RemoveAll(res.Dir)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if string(res.Output) != `{"mongo":"","extra":"from-def","rank":"7"}` {
		t.Fatalf("output %s", res.Output)
	}
}

func TestExecOutputLimit(t *testing.T) {
	t.Parallel()
	r, dir := execRunner(t)
	// 64 KiB on stdout against a 1 KiB limit: the run must not block on the pipe.
	script(t, dir, "big", `head -c 65536 /dev/zero | tr '\0' 'a'`+"\n")
	done := make(chan Result, 1)
	go func() { done <- r.Run(context.Background(), execSpec("big"), Hooks{}) }()
	select {
	case res := <-done:
		defer os.RemoveAll(res.Dir)
		if res.Err == nil || res.Err.Code != CodeBadOut || res.Err.Retryable || !strings.Contains(res.Err.Message, "limit") {
			t.Fatalf("err %+v", res.Err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a run writing past the output limit did not finish")
	}
}

func TestExecBadOutputAndExitCode(t *testing.T) {
	t.Parallel()
	r, dir := execRunner(t)
	script(t, dir, "text", "echo not json\n")
	script(t, dir, "fail", "echo first >&2\necho 'the last words' >&2\nexit 3\n")
	res := r.Run(context.Background(), execSpec("text"), Hooks{})
	os.RemoveAll(res.Dir)
	if res.Err == nil || res.Err.Code != CodeBadOut || res.Err.Retryable {
		t.Fatalf("non-JSON output: err %+v", res.Err)
	}
	res = r.Run(context.Background(), execSpec("fail"), Hooks{})
	os.RemoveAll(res.Dir)
	if res.Err == nil || res.Err.Code != CodeRuntime || !res.Err.Retryable || !strings.Contains(res.Err.Message, "the last words") {
		t.Fatalf("exit 3: err %+v", res.Err)
	}
	if !strings.Contains(res.Log, "first") {
		t.Fatalf("log %q", res.Log)
	}
	res = r.Run(context.Background(), execSpec("no-such-program"), Hooks{})
	if res.Err == nil || res.Err.Code != CodeRuntime {
		t.Fatalf("missing program: err %+v", res.Err)
	}
	os.RemoveAll(res.Dir)
}

func TestExecProgressAndLogs(t *testing.T) {
	t.Parallel()
	r, dir := execRunner(t)
	script(t, dir, "progress", `echo '{"progress":0.25,"message":"quarter"}' >&2
echo 'plain line' >&2
echo '{"progress":7}' >&2
echo '{"progress":"bad"}' >&2
echo '{"other":1}' >&2
echo '{}'
`)
	h := &hookLog{}
	res := r.Run(context.Background(), execSpec("progress"), h.hooks())
	defer os.RemoveAll(res.Dir)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.progress) != 2 || h.progress[0].Progress != 0.25 || h.progress[0].Message != "quarter" || h.progress[1].Progress != 1 {
		t.Fatalf("progress %+v", h.progress)
	}
	// Lines that are not progress (bad value, no progress key) are log lines.
	if got := strings.Join(h.logs, "|"); got != `plain line|{"progress":"bad"}|{"other":1}` {
		t.Fatalf("log lines %q", got)
	}
	if !strings.Contains(res.Log, "quarter") || !strings.Contains(res.Log, "plain line") {
		t.Fatalf("log tail %q", res.Log)
	}
}

func TestExecLogTailKeepsTheEnd(t *testing.T) {
	t.Parallel()
	r, dir := execRunner(t)
	script(t, dir, "chatty", "i=0; while [ $i -lt 200 ]; do echo \"line $i\" >&2; i=$((i+1)); done; echo '{}'\n")
	res := r.Run(context.Background(), execSpec("chatty"), Hooks{})
	defer os.RemoveAll(res.Dir)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if len(res.Log) > 256 || !strings.HasSuffix(res.Log, "line 199\n") || strings.Contains(res.Log, "line 1\n") {
		t.Fatalf("log tail (%d bytes) %q", len(res.Log), res.Log)
	}
}

// alive reports whether pid exists (a zombie counts as gone: it is not running).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) == 0 || f[0] != "Z"
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	testwait.Eventually(t, 3*time.Second, func() bool { return !alive(pid) }, "process %d gone", pid)
}

func readPid(t *testing.T, path string) int {
	t.Helper()
	var pid int
	testwait.Eventually(t, 5*time.Second, func() bool {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	}, "a pid in %s", path)
	return pid
}

func TestExecStopKillsTheProcessGroup(t *testing.T) {
	t.Parallel()
	r, dir := execRunner(t)
	stopKillsTheGroup(t, r, dir, t.TempDir())
}

// stopKillsTheGroup runs a child that ignores SIGTERM (so SIGKILL after the
// grace is needed) and leaves a grandchild that would outlive it, writing
// their pids into pids; stopping the run must return CodeStopped after the
// kill grace, with both processes gone.
func stopKillsTheGroup(t *testing.T, r *Runner, dir, pids string) {
	t.Helper()
	script(t, dir, "stubborn", `trap '' TERM
sleep 1000 &
echo $! > "$PIDS/grandchild"
echo $$ > "$PIDS/child"
while :; do sleep 1; done
`)
	s := execSpec("stubborn")
	s.Env = map[string]string{"PIDS": pids}
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan Result, 1)
	go func() { done <- r.Run(ctx, s, Hooks{}) }()
	child, grandchild := readPid(t, filepath.Join(pids, "child")), readPid(t, filepath.Join(pids, "grandchild"))
	stopped := time.Now()
	cancel(context.Canceled)
	var res Result
	select {
	case res = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("stopped run did not return")
	}
	defer os.RemoveAll(res.Dir)
	if res.Err == nil || res.Err.Code != CodeStopped {
		t.Fatalf("err %+v", res.Err)
	}
	if d := time.Since(stopped); d < r.Limits.KillGrace*3/4 {
		t.Fatalf("returned after %s: the kill grace (%s) was not given", d, r.Limits.KillGrace)
	}
	waitGone(t, child)
	waitGone(t, grandchild)
}

func TestExecGrandchildKilledAfterNormalExit(t *testing.T) {
	t.Parallel()
	r, dir := execRunner(t)
	pids := t.TempDir()
	script(t, dir, "leaver", `sleep 1000 > /dev/null 2>&1 &
echo $! > "$PIDS/grandchild"
echo '{}'
`)
	s := execSpec("leaver")
	s.Env = map[string]string{"PIDS": pids}
	res := r.Run(context.Background(), s, Hooks{})
	defer os.RemoveAll(res.Dir)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	waitGone(t, readPid(t, filepath.Join(pids, "grandchild")))
}

func TestExecTimeout(t *testing.T) {
	t.Parallel()
	r, dir := execRunner(t)
	script(t, dir, "slow", "exec sleep 1000\n")
	s := execSpec("slow")
	s.Timeout = 200 * time.Millisecond
	start := time.Now()
	res := r.Run(context.Background(), s, Hooks{})
	defer os.RemoveAll(res.Dir)
	if res.Err == nil || res.Err.Code != CodeTimeout || !res.Err.Retryable {
		t.Fatalf("err %+v", res.Err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("timeout took %s", d)
	}
	if alive(res.PID) {
		t.Fatalf("timed-out process %d still alive", res.PID)
	}
}

func TestParseProgress(t *testing.T) {
	for line, want := range map[string]float64{
		`{"progress":0.5}`:                  0.5,
		`{"progress":-1,"message":"x"}`:     0,
		`{"message":"m","progress":1.5}`:    1,
		`{"progress": 0.125, "extra": [1]}`: 0.125,
	} {
		p, ok := parseProgress(line)
		if !ok || p.Progress != want {
			t.Errorf("%s: %v %v, want %v", line, p.Progress, ok, want)
		}
	}
	for _, line := range []string{``, `progress 0.5`, `{"progress":null}`, `{"progress":"1"}`, `{"progress":0.5`, ` {"progress":0.5}`} {
		if _, ok := parseProgress(line); ok {
			t.Errorf("%q parsed as progress", line)
		}
	}
}
