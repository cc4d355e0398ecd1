package serve

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// message is one line of the protocol, either way.
type message struct {
	Type      string          `json:"type"`
	ID        string          `json:"id,omitempty"`
	Attempt   int             `json:"attempt,omitempty"`
	Input     json.RawMessage `json:"input,omitempty"`
	OutputDir string          `json:"output_dir,omitempty"`
	TimeoutMS int64           `json:"timeout_ms,omitempty"`
}

type progressMsg struct {
	Type     string  `json:"type"`
	ID       string  `json:"id"`
	Progress float64 `json:"progress"`
	Message  string  `json:"message"`
}

type logMsg struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Line string `json:"line"`
}

type doneMsg struct {
	Type   string          `json:"type"`
	ID     string          `json:"id"`
	Output json.RawMessage `json:"output,omitempty"`
	Error  *doneError      `json:"error,omitempty"`
}

type doneError struct {
	Message   string `json:"message"`
	Retryable bool   `json:"retryable"`
}

// stopGrace is how long Serve waits, once stdin has ended, for a running
// job's handler to return after its context is canceled.
const stopGrace = 5 * time.Second

// Serve speaks the warm runtime's protocol (docs/serve-protocol.md): it runs
// set-up, says ready on stdout, then runs each job the worker sends on
// stdin, one at a time, until stdin ends. A cancel message cancels the
// running job's context. When stdin ends while a job runs, its context is
// canceled and Serve waits a few seconds for the handler before returning.
// It returns nil when stdin ends, or the set-up's error (without saying
// ready), or an error reading stdin or writing stdout.
func Serve(ctx context.Context, setup Setup, stdin io.Reader, stdout, stderr io.Writer) error {
	start := time.Now()
	handler, err := setup(ctx)
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	fmt.Fprintf(stderr, "aigw serve: ready after %.3f s of set-up\n", time.Since(start).Seconds())
	w := &writer{w: stdout}
	if err := w.send(message{Type: "ready"}); err != nil {
		return err
	}

	r := &reader{runs: make(chan message, 16), eof: make(chan struct{}), canceled: map[string]bool{}, stderr: stderr}
	go r.read(stdin)
	for {
		var m message
		select {
		case m = <-r.runs:
		case <-r.eof:
			return r.err
		case <-ctx.Done():
			return nil
		}
		jobCtx, cancel := context.WithCancel(ctx)
		if !r.start(m.ID, cancel) {
			cancel() // canceled before it started
		}
		job := &Job{ID: m.ID, Attempt: m.Attempt, Input: m.Input, OutputDir: m.OutputDir,
			Timeout: time.Duration(m.TimeoutMS) * time.Millisecond}
		done := make(chan struct{})
		job.progress = func(fraction float64, message string) {
			w.sendDuring(done, progressMsg{Type: "progress", ID: m.ID, Progress: fraction, Message: message})
		}
		job.log = func(line string) {
			w.sendDuring(done, logMsg{Type: "log", ID: m.ID, Line: line})
		}
		var reply doneMsg
		go func() {
			defer close(done)
			out, err := call(jobCtx, handler, job)
			reply = doneMsg{Type: "done", ID: m.ID, Output: out}
			if err != nil {
				reply.Output = nil
				reply.Error = &doneError{Message: err.Error(), Retryable: retryable(err)}
			}
		}()
		// A job that outlives the process's stop gets its context canceled
		// and a few seconds to return; its done is not sent.
		abandon := func() {
			cancel()
			select {
			case <-done:
			case <-time.After(stopGrace):
				fmt.Fprintf(stderr, "aigw serve: stopping, and job %s did not return %s after its cancel\n", m.ID, stopGrace)
			}
		}
		select {
		case <-done:
		case <-ctx.Done(): // SIGTERM: the worker is stopping this process
			abandon()
			return nil
		case <-r.eof:
			abandon()
			return r.err
		}
		r.start("", nil)
		cancel()
		if err := w.send(reply); err != nil {
			return err
		}
	}
}

// writer writes protocol lines on stdout, one whole line at a time.
type writer struct {
	mu sync.Mutex
	w  io.Writer
}

func (w *writer) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, err := w.w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write stdout: %w", err)
	}
	return nil
}

// sendDuring sends v unless the job has ended (done closed): a progress or
// log line of a goroutine that outlives its job must not follow its done.
func (w *writer) sendDuring(done <-chan struct{}, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	select {
	case <-done:
		return
	default:
	}
	_, _ = w.w.Write(append(b, '\n'))
}

// reader reads the worker's messages: runs are queued, a cancel cancels the
// running job (or, if it is still queued, marks it to start canceled).
type reader struct {
	runs   chan message
	eof    chan struct{} // closed when stdin ends
	err    error         // why, when not a plain end; set before eof closes
	stderr io.Writer

	mu       sync.Mutex
	running  string
	cancel   context.CancelFunc
	canceled map[string]bool // queued jobs canceled before they started
}

// start records the running job; it returns false if the job was canceled
// while queued. start("", nil) records that none runs.
func (r *reader) start(id string, cancel context.CancelFunc) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.running, r.cancel = id, cancel
	if r.canceled[id] {
		delete(r.canceled, id)
		return false
	}
	return true
}

func (r *reader) read(stdin io.Reader) {
	defer close(r.eof)
	sc := bufio.NewScanner(stdin)
	sc.Buffer(make([]byte, 0, 64<<10), MaxInput+1)
	for sc.Scan() {
		var m message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			fmt.Fprintf(r.stderr, "aigw serve: ignoring a message that is not a JSON object: %v\n", err)
			continue
		}
		switch m.Type {
		case "run":
			r.runs <- m
		case "cancel":
			r.mu.Lock()
			if m.ID == r.running && r.cancel != nil {
				r.cancel()
			} else if len(r.canceled) < 1024 {
				r.canceled[m.ID] = true
			}
			r.mu.Unlock()
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, io.EOF) {
		r.err = fmt.Errorf("read stdin: %w", err)
	}
}
