// Package python_test runs the Python SDK (aigw/) the way a worker does: a
// test program using it (testdata/prog.py) under /usr/bin/python3, in both
// modes: the warm runtime's protocol with AIGW_SERVE=1, exec without.
package python_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/aigw/aigw/internal/testenv"
	"github.com/aigw/aigw/internal/testleak"
	"github.com/aigw/aigw/sdk/serve/servetest"
)

const python = "/usr/bin/python3"

func TestMain(m *testing.M) { testleak.Main(m) }

// command runs testdata/prog.py; it skips the test without python3 (fails
// it in CI).
func command(t *testing.T, env ...string) *exec.Cmd {
	t.Helper()
	if _, err := os.Stat(python); err != nil {
		if testenv.Required() {
			t.Fatalf("%s: %v (apt-get install python3)", python, err)
		}
		t.Skipf("%s: %v", python, err)
	}
	cmd := exec.Command(python, filepath.Join("testdata", "prog.py"))
	cmd.Env = append(os.Environ(), append([]string{"AIGW_SERVE=", "PYTHONDONTWRITEBYTECODE=1"}, env...)...)
	return cmd
}

type echoOutput struct {
	Message   string `json:"message"`
	Jobs      int    `json:"jobs"`
	PID       int    `json:"pid"`
	ID        string `json:"id"`
	Attempt   int    `json:"attempt"`
	TimeoutMS int64  `json:"timeout_ms"`
}

func decodeOutput(t *testing.T, res *servetest.Result) echoOutput {
	t.Helper()
	if res.Error != nil {
		t.Fatalf("job failed: %+v", res.Error)
	}
	var out echoOutput
	if err := json.Unmarshal(res.Output, &out); err != nil {
		t.Fatalf("output %s: %v", res.Output, err)
	}
	return out
}

func TestServeRunsJobsInOneProcess(t *testing.T) {
	p := servetest.Start(t, command(t))

	res := p.Run(t, map[string]string{"op": "echo", "message": "héllo"})
	a := decodeOutput(t, res)
	if a.Message != "héllo" || a.Jobs != 1 || a.ID != res.ID || a.Attempt != 1 || a.TimeoutMS != 600000 {
		t.Errorf("first job: %+v", a)
	}
	if len(res.Progress) != 2 || *res.Progress[0].Progress != 0.5 || res.Progress[0].Message != "half way" ||
		*res.Progress[1].Progress != 1 || res.Progress[1].Message != "clamped" {
		t.Errorf("progress %+v, want 0.5 (half way) then 1 (clamped)", res.Progress)
	}
	if len(res.Logs) != 1 || res.Logs[0] != "a log line" {
		t.Errorf("logs %q", res.Logs)
	}
	if b, err := os.ReadFile(filepath.Join(res.OutputDir, "artifact.txt")); err != nil || string(b) != "héllo" {
		t.Errorf("artifact: %q, %v", b, err)
	}
	b := decodeOutput(t, p.Run(t, map[string]string{"op": "echo", "message": "again"}))
	if b.PID != a.PID || b.Jobs != 2 {
		t.Errorf("second job %+v: want the same process (pid %d) and state, its second job", b, a.PID)
	}

	for _, tc := range []struct {
		in        string
		message   string
		retryable bool
	}{
		{`{"op":"fail"}`, "RuntimeError: boom", true},
		{`{"op":"input-error","message":"x"}`, `input: message 'x' is not allowed`, false},
		{`{"op":"nan"}`, "output: Out of range float values are not JSON compliant", false},
	} {
		res := p.Run(t, json.RawMessage(tc.in))
		if res.Error == nil || !strings.HasPrefix(res.Error.Message, tc.message) || res.Error.Retryable != tc.retryable {
			t.Errorf("%s: error %+v, want %q retryable=%t", tc.in, res.Error, tc.message, tc.retryable)
		}
		if tc.retryable && (len(res.Logs) != 1 || !strings.HasPrefix(res.Logs[0], "Traceback")) {
			t.Errorf("%s: logs %q, want the traceback", tc.in, res.Logs)
		}
	}
	if c := decodeOutput(t, p.Run(t, map[string]string{"op": "echo"})); c.PID != a.PID {
		t.Errorf("after the errors: %+v", c)
	}

	if err := p.Close(t); err != nil {
		t.Fatalf("exit after stdin closed: %v; stderr:\n%s", err, p.Stderr())
	}
	for _, want := range []string{"setup: print\n", "setup: child process\n", "setup: fd 1\n", "aigw serve: ready after ", "handler: print echo\n"} {
		if !strings.Contains(p.Stderr(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, p.Stderr())
		}
	}
}

func TestServeCancel(t *testing.T) {
	p := servetest.Start(t, command(t))
	pid := decodeOutput(t, p.Run(t, map[string]string{"op": "echo"})).PID

	// A running job sees ctx.canceled() turn true.
	id, _ := p.Submit(t, map[string]string{"op": "block"})
	if m := p.Next(t); m.Type != "progress" || m.ID != id || m.Message != "blocking" {
		t.Fatalf("message %+v, want the job's progress", m)
	}
	p.Cancel(t, id)
	if res := p.Collect(t, id); string(res.Output) != `{"canceled":true}` {
		t.Fatalf("canceled job: %s %+v", res.Output, res.Error)
	}
	// A job canceled before it starts starts canceled.
	id, _ = p.Submit(t, map[string]string{"op": "block"})
	p.Cancel(t, id)
	if res := p.Collect(t, id); string(res.Output) != `{"canceled":true}` {
		t.Fatalf("job canceled while queued: %s %+v", res.Output, res.Error)
	}
	// A cancel of another job, unknown messages and fields change nothing.
	p.Cancel(t, "job-nope")
	p.Send(t, map[string]any{"type": "hello", "future": true})
	if out := decodeOutput(t, p.Run(t, map[string]string{"op": "echo"})); out.PID != pid {
		t.Errorf("after the cancels: %+v", out)
	}
	if err := p.Close(t); err != nil {
		t.Fatal(err)
	}
}

// TestServeStops: stdin ending cancels a running job and the process exits
// without a done, even when the job ignores its cancel (after the grace, here
// 0.3 s); SIGTERM stops it at once.
func TestServeStops(t *testing.T) {
	for _, tc := range []struct{ op, how string }{{"block", "stdin"}, {"stuck", "stdin"}, {"stuck", "SIGTERM"}} {
		t.Run(tc.op+"/"+tc.how, func(t *testing.T) {
			p := servetest.Start(t, command(t))
			id, _ := p.Submit(t, map[string]string{"op": tc.op})
			if m := p.Next(t); m.Type != "progress" || m.ID != id {
				t.Fatalf("message %+v, want the job's progress", m)
			}
			if tc.how == "stdin" {
				if err := p.Close(t); err != nil {
					t.Fatalf("exit: %v; stderr:\n%s", err, p.Stderr())
				}
				return
			}
			p.Signal(t, syscall.SIGTERM)
			if m, ok := p.TryNext(t); ok {
				t.Fatalf("message %+v after SIGTERM", m)
			}
			var exit *exec.ExitError
			if err := p.Wait(t); !errors.As(err, &exit) {
				t.Fatalf("exit after SIGTERM: %v", err)
			}
		})
	}
}

func TestServeSetupFails(t *testing.T) {
	p := servetest.StartNoWait(t, command(t, "TEST_FAIL_SETUP=1"))
	if m, ok := p.TryNext(t); ok {
		t.Fatalf("message %+v from a failed set-up", m)
	}
	var exit *exec.ExitError
	if err := p.Wait(t); !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit %v, want status 1", err)
	}
	stderr := strings.TrimSpace(p.Stderr())
	if !strings.HasPrefix(stderr, "setup: print\n") || !strings.Contains(stderr, "Traceback") ||
		!strings.HasSuffix(stderr, "\nprog: setup: RuntimeError: no model here") {
		t.Errorf("stderr %q: want the print, the traceback, then the reason last", stderr)
	}
}

func execRun(t *testing.T, input string, env ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := command(t, env...)
	cmd.Stdin = strings.NewReader(input)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

func TestExecMode(t *testing.T) {
	dir := t.TempDir()
	stdout, stderr, code := execRun(t, `{"op":"echo","message":"hi"}`, "AIGW_OUTPUT_DIR="+dir, "AIGW_JOB_ID=j1", "AIGW_ATTEMPT=2")
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	var out echoOutput
	if strings.Count(stdout, "\n") != 1 || !strings.HasSuffix(stdout, "}\n") {
		t.Fatalf("stdout %q: want one line of JSON", stdout)
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil || out.Message != "hi" || out.ID != "j1" || out.Attempt != 2 || out.TimeoutMS != 0 {
		t.Fatalf("stdout %q (%v)", stdout, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "artifact.txt")); err != nil || string(b) != "hi" {
		t.Errorf("artifact: %q, %v", b, err)
	}
	for _, want := range []string{"setup: print\n", "setup: child process\n", "setup: fd 1\n", "handler: print echo\n",
		`{"progress": 0.5, "message": "half way"}` + "\n", "a log line\n", `{"progress": 1.0, "message": "clamped"}` + "\n"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "ignored outside a job") {
		t.Errorf("progress outside a job reached stderr:\n%s", stderr)
	}

	for _, tc := range []struct{ in, want string }{
		{`{"op":"fail"}`, "prog: RuntimeError: boom"},
		{`{"op":"input-error","message":"x"}`, `prog: input: message 'x' is not allowed`},
		{`{"op":"nan"}`, "prog: output: Out of range float values are not JSON compliant"},
		{`nope`, "prog: input: not a JSON document: Expecting value: line 1 column 1 (char 0)"},
		{``, "prog: input: not a JSON document"},
	} {
		stdout, stderr, code := execRun(t, tc.in)
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		if code != 1 || stdout != "" || !strings.HasPrefix(lines[len(lines)-1], tc.want) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want 1, nothing, and the reason %q last", tc.in, code, stdout, stderr, tc.want)
		}
	}
}
