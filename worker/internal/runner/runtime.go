// Package runner runs one attempt of an algorithm: an exec runtime (a child
// process in its own process group: input on stdin, output on stdout, log and
// progress on stderr, files in $AIGW_OUTPUT_DIR), a serve runtime (a warm
// process kept between jobs, speaking docs/serve-protocol.md; see serve.go)
// or an http runtime (a POST to a model server on the node). It knows nothing
// of queues or job records: the agent turns a Result into a transition.
package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/events"
	"github.com/aigw/aigw/internal/job"
)

// Failure codes of an attempt: internal/job's, where every failure code and
// its retryability are defined once.
const (
	CodeRuntime    = job.CodeRuntime    // could not start, or exited non-zero: retried
	CodeTimeout    = job.CodeTimeout    // ran past its execution timeout: retried
	CodeBadOut     = job.CodeBadOutput  // output not JSON or over the limit: not retried
	CodeHTTP       = job.CodeHTTP       // the model server answered non-2xx: 5xx retried, 4xx not
	CodeStopped    = job.CodeStopped    // stopped from outside (cancel, lost lease, shutdown): see context.Cause
	CodeArtifact   = job.CodeArtifact   // the run's files could not be stored: retried
	CodeNotAllowed = job.CodeNotAllowed // a program or directory outside the worker's allowed places: not retried
)

// Failure is why an attempt failed.
type Failure struct {
	Code      string
	Message   string
	Retryable bool
}

func (f *Failure) Error() string { return f.Code + ": " + f.Message }

// Spec is one attempt to run.
type Spec struct {
	JobID   string
	Attempt int
	Input   json.RawMessage
	Def     *algorithm.Definition
	// Timeout bounds the attempt (the job's, else the definition's).
	Timeout time.Duration
	// GPUs are the indices assigned (CUDA_VISIBLE_DEVICES).
	GPUs []int
	// Env is added last (e.g. the gang's WORLD_SIZE, RANK, MASTER_ADDR,
	// MASTER_PORT). A serve spec with Env gets a process of its own.
	Env map[string]string
	// Lease (serve) is the warm process to run on (Acquire); nil: the run
	// acquires one itself.
	Lease *Lease
}

// Hooks receive what a run reports while it runs; either may be nil. They are
// called from the runtime's goroutines, one call at a time per hook.
type Hooks struct {
	Progress func(events.Progress)
	Logs     func(lines []string)
	// Started is called once the process is running (exec) or the request is sent (http).
	Started func(pid int)
}

// Result is the outcome of an attempt.
type Result struct {
	Output json.RawMessage
	// Log is the tail of the run's log (stderr).
	Log string
	// OutputDir holds the files the run wrote ("" for http runs); the caller
	// stores them, then calls RemoveDir.
	OutputDir string
	Dir       string
	// Artifacts are filled in by the caller once it stored OutputDir's files.
	Artifacts []job.Artifact
	// Err is nil on success.
	Err *Failure
	// PID of the exec run's process (its process group id too), or of the
	// serve run's warm process; 0 for http.
	PID int
	// ColdStart (serve) is how long the job waited for a process to start
	// and get ready; 0 for a warm hit.
	ColdStart time.Duration
}

// RemoveDir removes the run's directory (Dir). Most runs leave it as it was
// made, the directory and its empty out/, which two rmdir calls remove;
// RemoveAll's walk, several times the system calls, is only for what a run
// left behind.
func (r Result) RemoveDir() {
	if r.Dir == "" {
		return
	}
	if syscall.Rmdir(r.OutputDir) == nil && syscall.Rmdir(r.Dir) == nil {
		return
	}
	_ = os.RemoveAll(r.Dir)
}

// Limits bound what a run may produce.
type Limits struct {
	Output    int64         // stdout / response bytes
	LogTail   int64         // stderr bytes kept in Result.Log
	KillGrace time.Duration // SIGTERM → SIGKILL
}

// Credential is the user and group a run executes as.
type Credential struct {
	UID, GID uint32
}

// Runner runs attempts.
type Runner struct {
	AlgorithmsDir, BinDir, WorkDir string
	// Interpreters are absolute paths of programs a command may name by their
	// base name (e.g. /usr/bin/python3 as python3) when the bin directory has
	// no program of that name.
	Interpreters []string
	// RunAs, when set, is the user exec runs execute as (the worker must be
	// root); nil runs them as the worker's user.
	RunAs  *Credential
	Limits Limits
	// FlushEvery and FlushLines batch log lines (defaults 250ms, 100 lines).
	FlushEvery time.Duration
	FlushLines int
	// Log receives the serve runtime's process events and the stderr of its
	// processes outside jobs (nil: discarded).
	Log *slog.Logger
	// Serve receives the serve runtime's set-up outcomes.
	Serve ServeEvents
	// ServeBackoff and ServeBackoffMax bound the wait before a group's next
	// process start after a failed set-up or a crash (defaults 1 s and 60 s).
	ServeBackoff, ServeBackoffMax time.Duration

	poolMu sync.Mutex
	pool   *pool
}

// Run runs spec with its definition's runtime. Stopping ctx stops the run (the
// exec runtime's process group gets SIGTERM, then SIGKILL after the grace):
// the Result then fails with CodeStopped and the caller reads context.Cause.
func (r *Runner) Run(ctx context.Context, s Spec, h Hooks) Result {
	switch s.Def.Runtime.Type {
	case algorithm.Exec:
		return r.runExec(ctx, s, h)
	case algorithm.HTTP:
		return r.runHTTP(ctx, s, h)
	case algorithm.Serve:
		return r.runServe(ctx, s, h)
	}
	return Result{Err: &Failure{Code: CodeRuntime, Message: fmt.Sprintf("unknown runtime type %q", s.Def.Runtime.Type)}}
}

// errTimeout is the cause of a run context that ran out of time.
var errTimeout = errors.New("execution timeout")
