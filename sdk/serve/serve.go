// Package serve is the Go SDK for aigw algorithms: one program that runs both
// as an exec algorithm (one job per process) and under the warm runtime
// (runtime.type: serve, a process that sets up once and runs job after job
// over the protocol of docs/serve-protocol.md).
//
//	func main() {
//		serve.Main(func(ctx context.Context) (serve.Handler, error) {
//			model, err := load(ctx) // once per process
//			if err != nil {
//				return nil, err
//			}
//			return func(ctx context.Context, job *serve.Job) (any, error) {
//				var in struct{ Prompt string `json:"prompt"` }
//				if err := job.Decode(&in); err != nil {
//					return nil, err // an input error: not retried
//				}
//				job.Progress(0.5, "thinking")
//				return model.Answer(ctx, in.Prompt)
//			}, nil
//		})
//	}
//
// Main picks the mode from the environment: with AIGW_SERVE=1 (set by the
// worker for runtime.type serve) it speaks the protocol on stdin/stdout;
// without it, it reads one input on stdin and writes one output on stdout, as
// the exec contract of algorithms/README.md says. In both modes it first moves
// the process's stdout to stderr (fd 1 itself, so fmt.Println, C code and
// child processes all write to the log), keeping the real stdout for itself.
package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Setup runs once per process, before the first job: load models, open
// files, warm caches. It returns the handler that runs each job. An error
// ends the process (the worker starts another after a backoff).
type Setup func(ctx context.Context) (Handler, error)

// Handler runs one job and returns its output, which is encoded as JSON
// (a json.RawMessage is passed as is). ctx is canceled when the job is
// canceled (the worker's cancel message, or SIGTERM in exec mode); return
// soon after. An error fails the attempt, which is retried per the job's
// policy unless the error is an InputError.
type Handler func(ctx context.Context, job *Job) (any, error)

// MaxInput is the largest input Exec reads on stdin, and the largest protocol
// line Serve reads: 64 MiB.
const MaxInput = 64 << 20

// Job is one job given to a Handler.
type Job struct {
	// ID is the job's ID (AIGW_JOB_ID in exec mode, empty when unset).
	ID string
	// Attempt counts from 1 (AIGW_ATTEMPT in exec mode, 0 when unset).
	Attempt int
	// Input is the job's input document.
	Input json.RawMessage
	// OutputDir is a fresh directory for this job: files written there become
	// its artifacts ($AIGW_OUTPUT_DIR in exec mode; empty when unset).
	OutputDir string
	// Timeout is the job's execution limit as the worker told it (0 when
	// unknown). The worker enforces it; use it to size the work.
	Timeout time.Duration

	progress func(fraction float64, message string)
	log      func(line string)
}

// Decode decodes the input into v, rejecting unknown fields and trailing
// data. Its error is an InputError saying what is wrong ("input: ...").
func (j *Job) Decode(v any) error {
	dec := json.NewDecoder(bytes.NewReader(j.Input))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return InputError(fmt.Errorf("input: %w", err))
	}
	if dec.More() {
		return InputError(errors.New("input: more than one JSON document"))
	}
	return nil
}

// Progress reports how far the job is, fraction from 0 to 1 (clamped), with
// a short message. Send a few a second at most.
func (j *Job) Progress(fraction float64, message string) {
	if math.IsNaN(fraction) {
		fraction = 0
	}
	j.progress(math.Min(math.Max(fraction, 0), 1), message)
}

// Log adds a line to the job's log.
func (j *Job) Log(line string) { j.log(strings.TrimRight(line, "\n")) }

// InputError marks err as a problem with the job's input: the attempt fails
// without a retry (the same input would fail again). Its message should say
// what to fix. InputError(nil) is nil.
func InputError(err error) error {
	if err == nil {
		return nil
	}
	return &inputError{err}
}

type inputError struct{ err error }

func (e *inputError) Error() string { return e.err.Error() }
func (e *inputError) Unwrap() error { return e.err }

// retryable says whether a handler's error may be retried.
func retryable(err error) bool {
	var ie *inputError
	return !errors.As(err, &ie)
}

// Main runs the program: Serve with AIGW_SERVE=1, else Exec, on the process's
// own stdin, stdout and stderr, after moving stdout to stderr. It does not
// return: it exits 0 when done, 1 after an error, whose reason is the last
// line on stderr ("<program>: <error>"; the program's name without "aigw-").
// SIGTERM and SIGINT cancel the context of set-up and of an exec-mode job.
func Main(setup Setup) {
	out, err := takeStdout()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", programName(), err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	if os.Getenv("AIGW_SERVE") == "1" {
		err = Serve(ctx, setup, os.Stdin, out, os.Stderr)
	} else {
		err = Exec(ctx, setup, os.Stdin, out, os.Stderr)
	}
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", programName(), err)
		os.Exit(1)
	}
	os.Exit(0)
}

// programName is the executable's name without an "aigw-" prefix.
func programName() string {
	return strings.TrimPrefix(filepath.Base(os.Args[0]), "aigw-")
}

// readInput reads one input document of at most MaxInput bytes.
func readInput(r io.Reader) (json.RawMessage, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxInput+1))
	if err != nil {
		return nil, fmt.Errorf("read input: %w", err)
	}
	if len(b) > MaxInput {
		return nil, InputError(fmt.Errorf("input: larger than %d MiB", MaxInput>>20))
	}
	if !json.Valid(b) {
		var v any
		err := json.Unmarshal(b, &v)
		if err == nil { // not reached: json.Valid and Unmarshal agree
			err = errors.New("not a JSON document")
		}
		return nil, InputError(fmt.Errorf("input: %w", err))
	}
	return json.RawMessage(bytes.TrimSpace(b)), nil
}
