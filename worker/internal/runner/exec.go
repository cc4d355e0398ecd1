package runner

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/events"
	"github.com/aigw/aigw/internal/job"
)

// resolve finds the program of an exec runtime, only where the worker's
// operator put programs (algorithm.CheckProgram): a name with a "/" inside the
// algorithms directory; a bare name in the bin directory, else one of the
// allowed interpreters. Never an absolute path, ".." or a PATH look-up. A
// program that is not allowed is a *Failure with CodeNotAllowed.
func (r *Runner) resolve(name string) (string, error) {
	if err := algorithm.CheckProgram(name); err != nil {
		return "", &Failure{Code: CodeNotAllowed, Message: "runtime.command[0]: " + err.Error()}
	}
	if strings.Contains(name, "/") {
		p := filepath.Join(r.AlgorithmsDir, name)
		if st, err := os.Stat(p); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return "", fmt.Errorf("command %q: %s is not an executable file", name, p)
		}
		return filepath.Abs(p)
	}
	if r.BinDir != "" {
		p := filepath.Join(r.BinDir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return filepath.Abs(p)
		}
	}
	for _, p := range r.Interpreters {
		if filepath.Base(p) == name {
			return p, nil
		}
	}
	return "", fmt.Errorf("command %q is neither in the bin directory %s nor one of the allowed interpreters %q (AIGW_INTERPRETERS)", name, r.BinDir, r.Interpreters)
}

// baseEnviron is a child's environment before its own variables: the
// worker's, without its own AIGW_ settings (they may carry credentials), plus
// the definition's, and CUDA_VISIBLE_DEVICES for gpus.
func baseEnviron(def *algorithm.Definition, gpus []int) map[string]string {
	env := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, "AIGW_") {
			env[k] = v
		}
	}
	for k, v := range def.Env {
		env[k] = v
	}
	list := make([]string, len(gpus))
	for i, g := range gpus {
		list[i] = strconv.Itoa(g)
	}
	env["CUDA_VISIBLE_DEVICES"] = strings.Join(list, ",")
	env["NVIDIA_VISIBLE_DEVICES"] = strings.Join(list, ",")
	return env
}

// envList turns env, with extra added last, into a sorted KEY=value list.
func envList(env, extra map[string]string) []string {
	for k, v := range extra {
		env[k] = v
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// environ is an exec run's environment: baseEnviron, the run's variables and
// the spec's.
func environ(s Spec, outDir string) []string {
	env := baseEnviron(s.Def, s.GPUs)
	env["AIGW_JOB_ID"] = s.JobID
	env["AIGW_ATTEMPT"] = strconv.Itoa(s.Attempt)
	env["AIGW_OUTPUT_DIR"] = outDir
	return envList(env, s.Env)
}

// failure is a *Failure with code's retryability.
func failure(code, format string, args ...any) *Failure {
	return &Failure{Code: code, Message: fmt.Sprintf(format, args...), Retryable: job.RetryableCode(code)}
}

// asFailure keeps a *Failure and makes any other error a CodeRuntime one.
func asFailure(err error) *Failure {
	if f := (*Failure)(nil); errors.As(err, &f) {
		return f
	}
	return failure(CodeRuntime, "%v", err)
}

// runDir makes a directory under the work directory with out/ inside it
// (only what lands in out/ becomes an artifact), both owned by the run user.
func (r *Runner) runDir(prefix string) (dir, out string, err error) {
	if dir, err = os.MkdirTemp(r.WorkDir, prefix); err != nil {
		return "", "", fmt.Errorf("create run directory: %w", err)
	}
	out = filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o700); err != nil {
		return dir, "", fmt.Errorf("create run directory: %w", err)
	}
	if err := r.chown(dir, out); err != nil {
		return dir, out, err
	}
	return dir, out, nil
}

// chown hands directories to the run user (the worker, root, still reads and
// removes them); nothing to do without one.
func (r *Runner) chown(dirs ...string) error {
	if r.RunAs == nil {
		return nil
	}
	for _, d := range dirs {
		if err := os.Chown(d, int(r.RunAs.UID), int(r.RunAs.GID)); err != nil {
			return fmt.Errorf("hand the run directory to uid %d: %w", r.RunAs.UID, err)
		}
	}
	return nil
}

// program resolves def's program and working directory (dir when the
// definition names none); a refusal is a *Failure.
func (r *Runner) program(def *algorithm.Definition, dir string) (prog, cwd string, err error) {
	cwd = dir
	if def.Runtime.Dir != "" {
		if err := algorithm.CheckDir(def.Runtime.Dir); err != nil {
			return "", "", failure(CodeNotAllowed, "runtime.dir: %v", err)
		}
		cwd = filepath.Join(r.AlgorithmsDir, def.Runtime.Dir)
	}
	if prog, err = r.resolve(def.Runtime.Command[0]); err != nil {
		return "", "", err
	}
	return prog, cwd, nil
}

// pipes are a child's stdin, stdout and stderr: the child's ends (in) and
// the worker's (out).
type pipes struct {
	inR, inW, outR, outW, errR, errW *os.File
}

func newPipes() (*pipes, error) {
	var p pipes
	var err error
	if p.inR, p.inW, err = os.Pipe(); err != nil {
		return nil, fmt.Errorf("pipe: %w", err)
	}
	if p.outR, p.outW, err = os.Pipe(); err != nil {
		closeAll(p.inR, p.inW)
		return nil, fmt.Errorf("pipe: %w", err)
	}
	if p.errR, p.errW, err = os.Pipe(); err != nil {
		closeAll(p.inR, p.inW, p.outR, p.outW)
		return nil, fmt.Errorf("pipe: %w", err)
	}
	return &p, nil
}

// start starts prog in its own process group, as the run user (HOME=home),
// on p's child ends, which it then closes; on failure it closes p entirely.
// Own pipes, not exec's copying goroutines: Wait returns when the child exits
// even if a grandchild still holds a pipe; a group kill ends that one.
func (r *Runner) start(prog string, args []string, cwd, home string, env []string, p *pipes) (*exec.Cmd, error) {
	var cmd *exec.Cmd
	var err error
	// ETXTBSY is transient: the program was just written (an operator
	// deploying it) and another fork still holds the writer's descriptor.
	for try := 0; ; try++ {
		cmd = exec.Command(prog, args...)
		cmd.Dir, cmd.Env = cwd, env
		cmd.Stdin, cmd.Stdout, cmd.Stderr = p.inR, p.outW, p.errW
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if r.RunAs != nil {
			// No supplementary groups (root's would stay otherwise); HOME is the
			// run directory, the one place the run's user may write.
			cmd.SysProcAttr.Credential = &syscall.Credential{Uid: r.RunAs.UID, Gid: r.RunAs.GID, Groups: []uint32{}}
			cmd.Env = append(cmd.Env, "HOME="+home)
		}
		err = cmd.Start()
		if !errors.Is(err, syscall.ETXTBSY) || try == 9 {
			break
		}
		time.Sleep(time.Duration(try+1) * 5 * time.Millisecond)
	}
	closeAll(p.inR, p.outW, p.errW)
	if err != nil {
		closeAll(p.inW, p.outR, p.errR)
		return nil, fmt.Errorf("start %s: %w", prog, err)
	}
	return cmd, nil
}

func (r *Runner) runExec(ctx context.Context, s Spec, h Hooks) (res Result) {
	var err error
	if res.Dir, res.OutputDir, err = r.runDir("aigw-run-" + s.JobID + "-"); err != nil {
		res.Err = failure(CodeRuntime, "%v", err)
		return res
	}
	prog, cwd, err := r.program(s.Def, res.Dir)
	if err != nil {
		res.Err = asFailure(err)
		return res
	}
	p, err := newPipes()
	if err != nil {
		res.Err = asFailure(err)
		return res
	}
	cmd, err := r.start(prog, s.Def.Runtime.Command[1:], cwd, res.Dir, environ(s, res.OutputDir), p)
	if err != nil {
		res.Err = asFailure(err)
		return res
	}
	// The input goes in while the child runs (a child that does not read it
	// all gets EPIPE here, which is not an error of the run); closing inW
	// after the run also ends a write that a stray grandchild blocks.
	inDone := make(chan struct{})
	go func() {
		defer close(inDone)
		_, _ = p.inW.Write(s.Input)
		_ = p.inW.Close()
	}()
	defer func() {
		_ = p.inW.Close()
		<-inDone
	}()
	res.PID = cmd.Process.Pid
	if h.Started != nil {
		h.Started(res.PID)
	}
	var wg sync.WaitGroup
	stdout := &limitedBuffer{limit: r.Limits.Output}
	wg.Go(func() {
		_, _ = io.Copy(stdout, p.outR)
		p.outR.Close()
	})
	tail := &tailBuffer{limit: int(r.Limits.LogTail)}
	wg.Go(func() {
		r.readStderr(p.errR, tail, h)
		p.errR.Close()
	})
	waitErr, stoppedBy, timeout := r.waitExec(ctx, s, cmd)
	wg.Wait()
	res.Log = tail.String()
	res.Output, res.Err = r.execOutcome(ctx, waitErr, stoppedBy, timeout, stdout, tail)
	return res
}

// waitExec waits for the exec run's process to exit, or stops it at its
// timeout or when ctx ends (stoppedBy says which), then kills whatever the
// child left behind in its group.
func (r *Runner) waitExec(ctx context.Context, s Spec, cmd *exec.Cmd) (waitErr error, stoppedBy string, timeout time.Duration) {
	pid := cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	timeout = s.Timeout
	if timeout <= 0 {
		timeout = s.Def.Timeout()
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case waitErr = <-exited:
	case <-timer.C:
		stoppedBy = CodeTimeout
		waitErr = r.kill(pid, exited)
	case <-ctx.Done():
		stoppedBy = CodeStopped
		waitErr = r.kill(pid, exited)
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	return waitErr, stoppedBy, timeout
}

// execOutcome turns how an exec run ended and what it printed into its
// output or failure.
func (r *Runner) execOutcome(ctx context.Context, waitErr error, stoppedBy string, timeout time.Duration,
	stdout *limitedBuffer, tail *tailBuffer) (json.RawMessage, *Failure) {
	switch {
	case stoppedBy == CodeTimeout:
		return nil, failure(CodeTimeout, "ran past its execution timeout of %s and was killed", timeout)
	case stoppedBy == CodeStopped:
		return nil, failure(CodeStopped, "stopped: %v", context.Cause(ctx))
	case waitErr != nil:
		msg := waitErr.Error()
		if last := tail.LastLine(); last != "" {
			msg += ": " + last
		}
		return nil, failure(CodeRuntime, "%s", msg)
	case stdout.over:
		return nil, failure(CodeBadOut, "output is larger than the limit of %d bytes", r.Limits.Output)
	}
	out := bytes.TrimSpace(stdout.buf.Bytes())
	if !json.Valid(out) {
		return nil, failure(CodeBadOut, "output is not a JSON document: %q", truncate(string(out), 200))
	}
	return json.RawMessage(out), nil
}

func closeAll(fs ...*os.File) {
	for _, f := range fs {
		_ = f.Close()
	}
}

// kill stops the process group: SIGTERM, then SIGKILL after the grace.
func (r *Runner) kill(pid int, exited <-chan error) error {
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	grace := r.Limits.KillGrace
	if grace <= 0 {
		grace = 5 * time.Second
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case err := <-exited:
		return err
	case <-t.C:
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		return <-exited
	}
}

// batcher batches log lines for Hooks.Logs: a batch goes out every
// FlushEvery, or once it holds FlushLines lines, and at Close.
type batcher struct {
	lines chan string
	done  chan struct{}
}

func (r *Runner) newBatcher(logs func([]string)) *batcher {
	every, maxLines := r.FlushEvery, r.FlushLines
	if every <= 0 {
		every = 250 * time.Millisecond
	}
	if maxLines <= 0 {
		maxLines = 100
	}
	b := &batcher{lines: make(chan string, 256), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		var batch []string
		flush := func() {
			if len(batch) > 0 && logs != nil {
				logs(batch)
			}
			batch = nil
		}
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case l, ok := <-b.lines:
				if !ok {
					flush()
					return
				}
				batch = append(batch, l)
				if len(batch) >= maxLines {
					flush()
				}
			case <-tick.C:
				flush()
			}
		}
	}()
	return b
}

// Add queues a line; not after Close.
func (b *batcher) Add(line string) { b.lines <- line }

// Close sends what is left and waits for it to go out.
func (b *batcher) Close() {
	close(b.lines)
	<-b.done
}

// readStderr splits stderr into lines: progress lines become progress events,
// the others are batched into log events; all of it goes to the tail.
func (r *Runner) readStderr(rd io.Reader, tail *tailBuffer, h Hooks) {
	b := r.newBatcher(h.Logs)
	defer b.Close()
	br := bufio.NewReaderSize(rd, 64<<10)
	for {
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > 0 {
			_, _ = tail.Write(chunk)
			line := strings.TrimRight(string(chunk), "\r\n")
			if p, ok := parseProgress(line); ok {
				if h.Progress != nil {
					h.Progress(p)
				}
			} else if line != "" {
				b.Add(line)
			}
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

// parseProgress reads a stderr line of the form {"progress":0.4,"message":"…"}.
func parseProgress(line string) (events.Progress, bool) {
	if !strings.HasPrefix(line, "{") || !strings.Contains(line, `"progress"`) {
		return events.Progress{}, false
	}
	var p struct {
		Progress *float64 `json:"progress"`
		Message  string   `json:"message"`
	}
	if err := json.Unmarshal([]byte(line), &p); err != nil || p.Progress == nil {
		return events.Progress{}, false
	}
	return events.Progress{Progress: min(max(*p.Progress, 0), 1), Message: p.Message, At: time.Now().UTC()}, true
}

// limitedBuffer keeps up to limit bytes and notes (then discards) the rest, so
// the child never blocks on a full pipe.
type limitedBuffer struct {
	buf   bytes.Buffer
	limit int64
	over  bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.limit - int64(b.buf.Len()); int64(len(p)) > room {
		b.over = true
		if room > 0 {
			b.buf.Write(p[:room])
		}
		return len(p), nil
	}
	return b.buf.Write(p)
}

// tailBuffer keeps the last limit bytes written.
type tailBuffer struct {
	mu    sync.Mutex
	limit int
	buf   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if t.limit > 0 && len(t.buf) > t.limit {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.limit:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// LastLine is the last non-empty line of the tail.
func (t *tailBuffer) LastLine() string {
	lines := strings.Split(strings.TrimSpace(t.String()), "\n")
	return truncate(strings.TrimSpace(lines[len(lines)-1]), 500)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
