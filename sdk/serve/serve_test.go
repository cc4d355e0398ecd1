package serve_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/aigw/aigw/internal/testleak"
	"github.com/aigw/aigw/sdk/serve"
	"github.com/aigw/aigw/sdk/serve/servetest"
)

// programEnv names the test program this test binary runs as, instead of its
// tests, when it starts itself (see command).
const programEnv = "AIGW_SERVE_TEST_PROGRAM"

func TestMain(m *testing.M) {
	switch os.Getenv(programEnv) {
	case "":
		testleak.Main(m)
	case "test":
		serve.Main(setup)
	case "setup-fails":
		serve.Main(func(context.Context) (serve.Handler, error) {
			fmt.Println("loading the model") // to stderr, not the protocol
			return nil, errors.New("no model here")
		})
	}
}

// setup is the test program's: it counts its runs and writes to stdout in
// the three ways a program may (Go, a child process, the raw fd), all of
// which must reach stderr.
func setup(context.Context) (serve.Handler, error) {
	setups := 1
	fmt.Println("setup: fmt.Println")
	child := exec.Command("/bin/sh", "-c", "echo setup: child process")
	child.Stdout = os.Stdout
	if err := child.Run(); err != nil {
		return nil, err
	}
	_, _ = syscall.Write(1, []byte("setup: fd 1\n"))
	jobs := 0
	return func(ctx context.Context, job *serve.Job) (any, error) {
		jobs++
		var in struct {
			Op      string `json:"op"`
			Message string `json:"message"`
		}
		if err := job.Decode(&in); err != nil {
			return nil, err
		}
		fmt.Println("handler: fmt.Println", in.Op)
		switch in.Op {
		case "echo":
			if job.OutputDir != "" {
				if err := os.WriteFile(filepath.Join(job.OutputDir, "artifact.txt"), []byte(in.Message), 0o644); err != nil {
					return nil, err
				}
			}
			job.Progress(0.5, "half way")
			job.Log("a log line\n")
			job.Progress(7, "clamped")
			return map[string]any{"message": in.Message, "setups": setups, "jobs": jobs, "pid": os.Getpid(),
				"id": job.ID, "attempt": job.Attempt, "timeout_ms": job.Timeout.Milliseconds()}, nil
		case "fail":
			return nil, errors.New("boom")
		case "input-error":
			return nil, serve.InputError(fmt.Errorf("input: message %q is not allowed", in.Message))
		case "panic":
			panic("oops")
		case "unencodable":
			return func() {}, nil
		case "raw":
			return json.RawMessage(`{"raw":true}`), nil
		case "block": // until canceled
			job.Progress(0, "blocking")
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return nil, serve.InputError(fmt.Errorf("input: op %q unknown", in.Op))
	}, nil
}

// command runs this test binary as test program name.
func command(t *testing.T, name string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), programEnv+"="+name, "AIGW_SERVE=")
	return cmd
}

type echoOutput struct {
	Message   string `json:"message"`
	Setups    int    `json:"setups"`
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
	p := servetest.Start(t, command(t, "test"))

	res := p.Run(t, map[string]string{"op": "echo", "message": "héllo"})
	a := decodeOutput(t, res)
	if a.Message != "héllo" || a.Setups != 1 || a.Jobs != 1 || a.ID != res.ID || a.Attempt != 1 || a.TimeoutMS != 600000 {
		t.Errorf("first job: %+v", a)
	}
	if len(res.Progress) != 2 || *res.Progress[0].Progress != 0.5 || res.Progress[0].Message != "half way" ||
		*res.Progress[1].Progress != 1 {
		t.Errorf("progress %+v, want 0.5 (half way) then 1 (clamped)", res.Progress)
	}
	if len(res.Logs) != 1 || res.Logs[0] != "a log line" {
		t.Errorf("logs %q", res.Logs)
	}
	if b, err := os.ReadFile(filepath.Join(res.OutputDir, "artifact.txt")); err != nil || string(b) != "héllo" {
		t.Errorf("artifact: %q, %v", b, err)
	}

	b := decodeOutput(t, p.Run(t, map[string]string{"op": "echo", "message": "again"}))
	if b.PID != a.PID || b.Setups != 1 || b.Jobs != 2 {
		t.Errorf("second job %+v: want the same process (pid %d), one set-up, its second job", b, a.PID)
	}

	for _, tc := range []struct {
		in        string
		message   string
		retryable bool
	}{
		{`{"op":"fail"}`, "boom", true},
		{`{"op":"input-error","message":"x"}`, `input: message "x" is not allowed`, false},
		{`{"op":"echo","extra":1}`, `input: json: unknown field "extra"`, false},
		{`{"op":"panic"}`, "panic: oops", true},
		{`{"op":"unencodable"}`, "output: json: unsupported type: func()", false},
	} {
		res := p.Run(t, json.RawMessage(tc.in))
		if res.Error == nil || res.Error.Message != tc.message || res.Error.Retryable != tc.retryable {
			t.Errorf("%s: error %+v, want %q retryable=%t", tc.in, res.Error, tc.message, tc.retryable)
		}
		if tc.message == "panic: oops" && (len(res.Logs) != 1 || !strings.HasPrefix(res.Logs[0], "panic: oops\ngoroutine ")) {
			t.Errorf("a panic's log %q: want the stack", res.Logs)
		}
	}
	if res := p.Run(t, map[string]string{"op": "raw"}); string(res.Output) != `{"raw":true}` {
		t.Errorf("raw output %s", res.Output)
	}
	// After errors and a panic the same process goes on.
	if c := decodeOutput(t, p.Run(t, map[string]string{"op": "echo"})); c.PID != a.PID || c.Setups != 1 {
		t.Errorf("after the errors: %+v", c)
	}

	if err := p.Close(t); err != nil {
		t.Fatalf("exit after stdin closed: %v; stderr:\n%s", err, p.Stderr())
	}
	// Whatever the program wrote to stdout went to stderr (servetest fails on
	// any stdout line that is not a protocol message).
	for _, want := range []string{"setup: fmt.Println", "setup: child process", "setup: fd 1", "aigw serve: ready after ", "handler: fmt.Println echo"} {
		if !strings.Contains(p.Stderr(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, p.Stderr())
		}
	}
}

func TestServeCancel(t *testing.T) {
	p := servetest.Start(t, command(t, "test"))
	pid := decodeOutput(t, p.Run(t, map[string]string{"op": "echo"})).PID

	// A running job: its context is canceled, its done follows.
	id, _ := p.Submit(t, map[string]string{"op": "block"})
	if m := p.Next(t); m.Type != "progress" || m.ID != id || m.Message != "blocking" {
		t.Fatalf("message %+v, want the job's progress", m)
	}
	p.Cancel(t, id)
	res := p.Collect(t, id)
	if res.Error == nil || res.Error.Message != "context canceled" {
		t.Fatalf("canceled job: %+v", res.Error)
	}

	// A job canceled before it starts runs with its context canceled.
	id, _ = p.Submit(t, map[string]string{"op": "block"})
	p.Cancel(t, id)
	if res := p.Collect(t, id); res.Error == nil || res.Error.Message != "context canceled" {
		t.Fatalf("job canceled while queued: %+v", res.Error)
	}

	// A cancel of another job, or of none, changes nothing.
	p.Cancel(t, "job-nope")
	if out := decodeOutput(t, p.Run(t, map[string]string{"op": "echo"})); out.PID != pid {
		t.Errorf("after the cancels: %+v", out)
	}
	// Unknown messages and fields are ignored.
	p.Send(t, map[string]any{"type": "hello", "future": true})
	if err := p.Close(t); err != nil {
		t.Fatal(err)
	}
}

// TestServeStopsWithAJobRunning: stdin ending, or SIGTERM, cancels the
// running job and the process exits without a done.
func TestServeStopsWithAJobRunning(t *testing.T) {
	for _, how := range []string{"stdin", "SIGTERM"} {
		t.Run(how, func(t *testing.T) {
			p := servetest.Start(t, command(t, "test"))
			id, _ := p.Submit(t, map[string]string{"op": "block"})
			if m := p.Next(t); m.Type != "progress" || m.ID != id {
				t.Fatalf("message %+v, want the job's progress", m)
			}
			var err error
			if how == "stdin" {
				err = p.Close(t)
			} else {
				p.Signal(t, syscall.SIGTERM)
				if m, ok := p.TryNext(t); ok {
					t.Fatalf("message %+v after SIGTERM", m)
				}
				err = p.Wait(t)
			}
			if err != nil {
				t.Fatalf("exit: %v; stderr:\n%s", err, p.Stderr())
			}
		})
	}
}

func TestServeSetupFails(t *testing.T) {
	p := servetest.StartNoWait(t, command(t, "setup-fails"))
	if m, ok := p.TryNext(t); ok {
		t.Fatalf("message %+v from a failed set-up", m)
	}
	var exit *exec.ExitError
	if err := p.Wait(t); !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit %v, want status 1", err)
	}
	lines := strings.Split(strings.TrimSpace(p.Stderr()), "\n")
	if lines[0] != "loading the model" || !strings.HasSuffix(lines[len(lines)-1], ": setup: no model here") {
		t.Errorf("stderr %q: want the print, then the reason last", lines)
	}
}

// execRun runs the test program as an exec algorithm.
func execRun(t *testing.T, input string, env ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := command(t, "test")
	cmd.Env = append(cmd.Env, env...)
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
	stdout, stderr, code := execRun(t, ` {"op":"echo","message":"hi"}`+"\n", "AIGW_OUTPUT_DIR="+dir, "AIGW_JOB_ID=j1", "AIGW_ATTEMPT=2")
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	var out echoOutput
	if !strings.HasSuffix(stdout, "}\n") || strings.Count(stdout, "\n") != 1 {
		t.Fatalf("stdout %q: want one line of JSON", stdout)
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil || out.Message != "hi" || out.ID != "j1" || out.Attempt != 2 || out.TimeoutMS != 0 {
		t.Fatalf("stdout %q (%v)", stdout, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "artifact.txt")); err != nil || string(b) != "hi" {
		t.Errorf("artifact: %q, %v", b, err)
	}
	for _, want := range []string{"setup: fmt.Println\n", "setup: child process\n", "setup: fd 1\n", "handler: fmt.Println echo\n",
		`{"progress":0.5,"message":"half way"}` + "\n", "a log line\n", `{"progress":1,"message":"clamped"}` + "\n"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}

	for _, tc := range []struct{ in, want string }{
		{`{"op":"fail"}`, ": boom"},
		{`{"op":"input-error","message":"x"}`, `: input: message "x" is not allowed`},
		{`nope`, ": input: invalid character 'o' in literal null (expecting 'u')"},
		{`{"op":"echo"} {}`, ": input: invalid character '{' after top-level value"},
		{``, ": input: unexpected end of JSON input"},
		{`{"op":"panic"}`, ": panic: oops"},
	} {
		stdout, stderr, code := execRun(t, tc.in)
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		if code != 1 || stdout != "" || !strings.HasSuffix(lines[len(lines)-1], tc.want) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want 1, nothing, and the reason %q last", tc.in, code, stdout, stderr, tc.want)
		}
	}
}

func TestJobDecode(t *testing.T) {
	var v struct{ A int }
	job := &serve.Job{Input: json.RawMessage(`{"A":1}`)}
	if err := job.Decode(&v); err != nil || v.A != 1 {
		t.Fatalf("decode: %v, %+v", err, v)
	}
	job.Input = json.RawMessage(`{"A":"x"}`)
	if err := job.Decode(&v); err == nil || !strings.HasPrefix(err.Error(), "input: json: cannot unmarshal") {
		t.Fatalf("decode of a bad type: %v", err)
	}
	if serve.InputError(nil) != nil {
		t.Fatal("InputError(nil) is not nil")
	}
	base := errors.New("base")
	if err := serve.InputError(base); !errors.Is(err, base) || err.Error() != "base" {
		t.Fatalf("InputError does not wrap: %v", err)
	}
}
