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

// environ is the child's environment: the worker's, without its own AIGW_
// settings (they may carry credentials), plus the definition's, the run's and
// the spec's variables.
func environ(s Spec, outDir string) []string {
	env := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, "AIGW_") {
			env[k] = v
		}
	}
	for k, v := range s.Def.Env {
		env[k] = v
	}
	gpus := make([]string, len(s.GPUs))
	for i, g := range s.GPUs {
		gpus[i] = strconv.Itoa(g)
	}
	env["AIGW_JOB_ID"] = s.JobID
	env["AIGW_ATTEMPT"] = strconv.Itoa(s.Attempt)
	env["AIGW_OUTPUT_DIR"] = outDir
	env["CUDA_VISIBLE_DEVICES"] = strings.Join(gpus, ",")
	env["NVIDIA_VISIBLE_DEVICES"] = strings.Join(gpus, ",")
	for k, v := range s.Env {
		env[k] = v
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

func (r *Runner) runExec(ctx context.Context, s Spec, h Hooks) (res Result) {
	fail := func(code, format string, args ...any) Result {
		res.Err = &Failure{Code: code, Message: fmt.Sprintf(format, args...), Retryable: job.RetryableCode(code)}
		return res
	}
	// One directory per run: the child's working directory, with the output
	// directory inside it (only what lands in out/ becomes an artifact).
	dir, err := os.MkdirTemp(r.WorkDir, "aigw-run-"+s.JobID+"-")
	if err != nil {
		return fail(CodeRuntime, "create run directory: %v", err)
	}
	res.Dir, res.OutputDir = dir, filepath.Join(dir, "out")
	if err := os.Mkdir(res.OutputDir, 0o700); err != nil {
		return fail(CodeRuntime, "create run directory: %v", err)
	}
	if r.RunAs != nil {
		// The run's user owns its directory and out/ (the worker, root, still
		// reads and removes them).
		for _, d := range []string{dir, res.OutputDir} {
			if err := os.Chown(d, int(r.RunAs.UID), int(r.RunAs.GID)); err != nil {
				return fail(CodeRuntime, "hand the run directory to uid %d: %v", r.RunAs.UID, err)
			}
		}
	}
	cwd := dir
	if s.Def.Runtime.Dir != "" {
		if err := algorithm.CheckDir(s.Def.Runtime.Dir); err != nil {
			return fail(CodeNotAllowed, "runtime.dir: %v", err)
		}
		cwd = filepath.Join(r.AlgorithmsDir, s.Def.Runtime.Dir)
	}
	prog, err := r.resolve(s.Def.Runtime.Command[0])
	if err != nil {
		if f := (*Failure)(nil); errors.As(err, &f) {
			res.Err = f
			return res
		}
		return fail(CodeRuntime, "%v", err)
	}
	// Own pipes, not exec's copying goroutines: Wait returns when the child
	// exits even if a grandchild still holds a pipe; the group kill below ends it.
	inR, inW, err := os.Pipe()
	if err != nil {
		return fail(CodeRuntime, "pipe: %v", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		closeAll(inR, inW)
		return fail(CodeRuntime, "pipe: %v", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		closeAll(inR, inW, outR, outW)
		return fail(CodeRuntime, "pipe: %v", err)
	}
	var cmd *exec.Cmd
	// ETXTBSY is transient: the program was just written (an operator
	// deploying it) and another fork still holds the writer's descriptor.
	for try := 0; ; try++ {
		cmd = exec.Command(prog, s.Def.Runtime.Command[1:]...)
		cmd.Dir, cmd.Env = cwd, environ(s, res.OutputDir)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if r.RunAs != nil {
			// No supplementary groups (root's would stay otherwise); HOME is the
			// run directory, the one place the run's user may write.
			cmd.SysProcAttr.Credential = &syscall.Credential{Uid: r.RunAs.UID, Gid: r.RunAs.GID, Groups: []uint32{}}
			cmd.Env = append(cmd.Env, "HOME="+dir)
		}
		err = cmd.Start()
		if !errors.Is(err, syscall.ETXTBSY) || try == 9 {
			break
		}
		time.Sleep(time.Duration(try+1) * 5 * time.Millisecond)
	}
	closeAll(inR, outW, errW)
	if err != nil {
		closeAll(inW, outR, errR)
		return fail(CodeRuntime, "start %s: %v", prog, err)
	}
	// The input goes in while the child runs (a child that does not read it
	// all gets EPIPE here, which is not an error of the run); closing inW
	// after the run also ends a write that a stray grandchild blocks.
	inDone := make(chan struct{})
	go func() {
		defer close(inDone)
		_, _ = inW.Write(s.Input)
		_ = inW.Close()
	}()
	defer func() {
		_ = inW.Close()
		<-inDone
	}()
	pid := cmd.Process.Pid
	res.PID = pid
	if h.Started != nil {
		h.Started(pid)
	}

	var wg sync.WaitGroup
	stdout := &limitedBuffer{limit: r.Limits.Output}
	wg.Go(func() {
		_, _ = io.Copy(stdout, outR)
		outR.Close()
	})
	tail := &tailBuffer{limit: int(r.Limits.LogTail)}
	wg.Go(func() {
		r.readStderr(errR, tail, h)
		errR.Close()
	})

	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = s.Def.Timeout()
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var waitErr error
	var stoppedBy string
	select {
	case waitErr = <-exited:
	case <-timer.C:
		stoppedBy = CodeTimeout
		waitErr = r.kill(pid, exited)
	case <-ctx.Done():
		stoppedBy = CodeStopped
		waitErr = r.kill(pid, exited)
	}
	// Whatever the child left behind in its group goes with it.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	wg.Wait()
	res.Log = tail.String()

	switch {
	case stoppedBy == CodeTimeout:
		return fail(CodeTimeout, "ran past its execution timeout of %s and was killed", timeout)
	case stoppedBy == CodeStopped:
		return fail(CodeStopped, "stopped: %v", context.Cause(ctx))
	case waitErr != nil:
		msg := waitErr.Error()
		if last := tail.LastLine(); last != "" {
			msg += ": " + last
		}
		return fail(CodeRuntime, "%s", msg)
	case stdout.over:
		return fail(CodeBadOut, "output is larger than the limit of %d bytes", r.Limits.Output)
	}
	out := bytes.TrimSpace(stdout.buf.Bytes())
	if !json.Valid(out) {
		return fail(CodeBadOut, "output is not a JSON document: %q", truncate(string(out), 200))
	}
	res.Output = json.RawMessage(out)
	return res
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

// readStderr splits stderr into lines: progress lines become progress events,
// the others are batched into log events; all of it goes to the tail.
func (r *Runner) readStderr(rd io.Reader, tail *tailBuffer, h Hooks) {
	every, maxLines := r.FlushEvery, r.FlushLines
	if every <= 0 {
		every = 250 * time.Millisecond
	}
	if maxLines <= 0 {
		maxLines = 100
	}
	lines := make(chan string, 256)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var batch []string
		flush := func() {
			if len(batch) > 0 && h.Logs != nil {
				h.Logs(batch)
			}
			batch = nil
		}
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case l, ok := <-lines:
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
				lines <- line
			}
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			break
		}
	}
	close(lines)
	<-done
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
