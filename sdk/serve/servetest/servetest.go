// Package servetest runs a warm-runtime program (runtime.type: serve) in a
// test and speaks its protocol (docs/serve-protocol.md) the way a worker
// does, strictly: a stdout line that is not a protocol message fails the test.
//
//	p := servetest.Start(t, exec.Command("./my-algorithm"))
//	res := p.Run(t, map[string]any{"prompt": "hi"})
//	if res.Error != nil { t.Fatal(res.Error.Message) }
//	p.Close(t)
package servetest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Timeout is how long Start waits for ready, Next for a message and Wait
// for the exit.
var Timeout = 60 * time.Second

// Message is one message from the process.
type Message struct {
	Type     string          `json:"type"`
	ID       string          `json:"id"`
	Progress *float64        `json:"progress"`
	Message  string          `json:"message"`
	Line     string          `json:"line"`
	Output   json.RawMessage `json:"output"`
	Error    *Error          `json:"error"`
}

// Error is a done message's error.
type Error struct {
	Message   string `json:"message"`
	Retryable bool   `json:"retryable"`
}

// Result is what one job produced.
type Result struct {
	ID        string
	Output    json.RawMessage // nil when the job failed
	Error     *Error
	Progress  []Message // progress messages, in order
	Logs      []string  // log lines, in order
	OutputDir string
}

// Process is a started program.
type Process struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	msgs   chan line
	stderr *buffer
	exited chan struct{}
	err    error // of Wait, set before exited closes
	ids    atomic.Int64
}

type line struct {
	raw []byte
	err error // reading stdout failed or it ended
}

// Start starts cmd with AIGW_SERVE=1 added to its environment (cmd.Env, or
// the test's own when nil), and waits for its ready message. The process is
// killed when the test ends, if it has not exited by then.
func Start(t testing.TB, cmd *exec.Cmd) *Process {
	t.Helper()
	p := StartNoWait(t, cmd)
	if m := p.Next(t); m.Type != "ready" {
		t.Fatalf("first message %+v, want ready", m)
	}
	return p
}

// StartNoWait is Start without waiting for ready.
func StartNoWait(t testing.TB, cmd *exec.Cmd) *Process {
	t.Helper()
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, "AIGW_SERVE=1")
	p := &Process{cmd: cmd, msgs: make(chan line, 1024), stderr: &buffer{}, exited: make(chan struct{})}
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	go func() {
		r := bufio.NewReaderSize(stdout, 64<<10)
		for {
			b, err := r.ReadBytes('\n')
			if len(b) > 0 && err == nil {
				p.msgs <- line{raw: bytes.TrimSuffix(b, []byte("\n"))}
				continue
			}
			if err == nil || err == io.EOF {
				err = fmt.Errorf("stdout ended (partial line %q)", b)
			}
			p.msgs <- line{err: err}
			close(p.msgs)
			p.err = cmd.Wait() // after stdout is read to its end, as exec requires
			close(p.exited)
			return
		}
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// Next returns the next message on stdout; the test fails if none comes
// within Timeout, if stdout ends, or if the line is not a JSON object with a
// type.
func (p *Process) Next(t testing.TB) Message {
	t.Helper()
	m, ok := p.TryNext(t)
	if !ok {
		t.Fatalf("stdout ended; stderr:\n%s", p.Stderr())
	}
	return m
}

// TryNext is Next, returning false when stdout ends instead of failing.
func (p *Process) TryNext(t testing.TB) (Message, bool) {
	t.Helper()
	select {
	case l, ok := <-p.msgs:
		if !ok || l.err != nil {
			return Message{}, false
		}
		var m Message
		if err := json.Unmarshal(l.raw, &m); err != nil || m.Type == "" {
			t.Fatalf("stdout line %q is not a protocol message (%v); stderr:\n%s", l.raw, err, p.Stderr())
		}
		return m, true
	case <-time.After(Timeout):
		t.Fatalf("no message within %s; stderr:\n%s", Timeout, p.Stderr())
	}
	return Message{}, false
}

// Signal sends sig to the process.
func (p *Process) Signal(t testing.TB, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

// Send writes one message (a value encoded as JSON) on the process's stdin.
func (p *Process) Send(t testing.TB, msg any) {
	t.Helper()
	b, err := json.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.stdin.Write(append(b, '\n')); err != nil {
		t.Fatalf("send %s: %v", b, err)
	}
}

// Submit sends a run message for input (any JSON-encodable value, or a
// json.RawMessage) with a fresh output directory and a new job ID, which it
// returns with the directory.
func (p *Process) Submit(t testing.TB, input any) (id, outputDir string) {
	t.Helper()
	raw, err := json.Marshal(input)
	if err != nil {
		t.Fatal(err)
	}
	id = "job-" + strconv.FormatInt(p.ids.Add(1), 10)
	outputDir = t.TempDir()
	p.Send(t, map[string]any{"type": "run", "id": id, "attempt": 1, "input": json.RawMessage(raw),
		"output_dir": outputDir, "timeout_ms": 600000})
	return id, outputDir
}

// Collect reads the messages of job id up to its done. A message of another
// job, or an unknown type, fails the test.
func (p *Process) Collect(t testing.TB, id string) *Result {
	t.Helper()
	res := &Result{ID: id}
	for {
		m := p.Next(t)
		if m.ID != id {
			t.Fatalf("message %+v during job %s", m, id)
		}
		switch m.Type {
		case "progress":
			if m.Progress == nil || *m.Progress < 0 || *m.Progress > 1 {
				t.Fatalf("progress message %+v: want progress from 0 to 1", m)
			}
			res.Progress = append(res.Progress, m)
		case "log":
			res.Logs = append(res.Logs, m.Line)
		case "done":
			if (m.Error == nil) == (m.Output == nil) {
				t.Fatalf("done %+v: want exactly one of output and error", m)
			}
			res.Output, res.Error = m.Output, m.Error
			return res
		default:
			t.Fatalf("unexpected %q message %+v during job %s", m.Type, m, id)
		}
	}
}

// Run submits input and collects the job's result.
func (p *Process) Run(t testing.TB, input any) *Result {
	t.Helper()
	id, dir := p.Submit(t, input)
	res := p.Collect(t, id)
	res.OutputDir = dir
	return res
}

// Cancel sends a cancel message for job id.
func (p *Process) Cancel(t testing.TB, id string) {
	t.Helper()
	p.Send(t, map[string]any{"type": "cancel", "id": id})
}

// Close closes the process's stdin, as a worker stopping it does, checks
// that stdout carries nothing more, and waits up to Timeout for the process to
// exit; it returns the exit error (nil for status 0).
func (p *Process) Close(t testing.TB) error {
	t.Helper()
	_ = p.stdin.Close()
	select {
	case l, ok := <-p.msgs:
		if ok && l.err == nil {
			t.Fatalf("stdout line %q after stdin closed", l.raw)
		}
	case <-time.After(Timeout):
		t.Fatalf("stdout still open %s after stdin closed; stderr:\n%s", Timeout, p.Stderr())
	}
	return p.Wait(t)
}

// Wait waits up to Timeout for the process to exit and returns its exit error.
func (p *Process) Wait(t testing.TB) error {
	t.Helper()
	select {
	case <-p.exited:
		return p.err
	case <-time.After(Timeout):
		t.Fatalf("process did not exit within %s; stderr:\n%s", Timeout, p.Stderr())
	}
	return nil
}

// Stderr returns what the process wrote on stderr so far.
func (p *Process) Stderr() string { return p.stderr.String() }

// buffer is a bytes.Buffer safe for a writer and a reader at once.
type buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
