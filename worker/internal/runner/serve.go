package runner

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/events"
)

// The serve runtime (docs/serve-protocol.md): warm processes that do their
// set-up once and then run job after job, one at a time, speaking framed JSON
// on stdin/stdout. A Runner keeps them in a pool, one group per algorithm
// version and GPU set: a job takes an idle process of its group (a warm hit)
// or waits for one to start (a cold start).

// ServeProtocol is the protocol version, the value of AIGW_SERVE.
const ServeProtocol = "1"

// maxLine bounds one protocol line (64 MiB).
const maxLine = 64 << 20

// Set-up backoff defaults: 1 s, doubling, at most 60 s.
const (
	DefaultServeBackoff    = time.Second
	DefaultServeBackoffMax = time.Minute
)

// ServeEvents receive what the warm processes do; any may be nil. They are
// called from the pool's goroutines.
type ServeEvents struct {
	// Ready: a process of def finished its set-up, which took setup.
	Ready func(def *algorithm.Definition, pid int, setup time.Duration)
	// SetupFailed: a process of def did not get ready (it was killed); the
	// group's next start waits for the backoff.
	SetupFailed func(def *algorithm.Definition, err error)
}

// NotReadyError is Acquire's answer while no process of the group can
// start: its last set-up failed (or a process crashed) and the backoff runs
// until RetryAt.
type NotReadyError struct {
	RetryAt time.Time
	Reason  string
}

func (e *NotReadyError) Error() string {
	return fmt.Sprintf("no warm process: %s (next start at %s)", e.Reason, e.RetryAt.UTC().Format(time.RFC3339Nano))
}

// ErrClosed is Acquire's answer once the runner is closed.
var ErrClosed = errors.New("runner closed: its warm processes are stopped")

// Lease is a ready warm process that Acquire handed out for one job: pass it
// in Spec.Lease, or Release it unused.
type Lease struct {
	p  *proc
	pl *pool
	// Cold is how long Acquire waited because no process was ready (0: a warm hit).
	Cold time.Duration
	used bool
}

// PID is the process's pid.
func (l *Lease) PID() int { return l.p.pid }

// Release hands an unused lease back: the process becomes idle again.
func (l *Lease) Release() {
	if l != nil && !l.used {
		l.used = true
		l.pl.release(l.p)
	}
}

// Acquire returns a ready process of def on gpus: an idle one, else the first
// that gets ready (one is started for each waiting job beyond those
// starting). While the group is backing off after a failed set-up or a crash
// it answers a *NotReadyError at once; a failed set-up while waiting answers
// one too. Stopping ctx stops the wait.
//
// env is the process's own environment, fixed for its life and part of what
// it is (e.g. the paths of the algorithm's assets, AIGW_ASSET_<NAME>).
func (r *Runner) Acquire(ctx context.Context, def *algorithm.Definition, gpus []int, env map[string]string) (*Lease, error) {
	return r.servePool().acquire(ctx, def, gpus, env)
}

// Refused is the command_not_allowed failure of a definition whose program
// or directory lies outside the worker's allowed places (see
// algorithm.CheckProgram), nil otherwise: a job of it fails, as an exec one
// does, and no process starts.
func Refused(def *algorithm.Definition) *Failure {
	if len(def.Runtime.Command) == 0 {
		return failure(CodeRuntime, "runtime.command is empty")
	}
	if err := algorithm.CheckProgram(def.Runtime.Command[0]); err != nil {
		return failure(CodeNotAllowed, "runtime.command[0]: %v", err)
	}
	if err := algorithm.CheckDir(def.Runtime.Dir); err != nil {
		return failure(CodeNotAllowed, "runtime.dir: %v", err)
	}
	return nil
}

// IdleGPUSets returns the GPU sets of def's idle warm processes (a job
// assigned one of them runs without a cold start).
func (r *Runner) IdleGPUSets(def *algorithm.Definition) [][]int {
	pl := r.servePool()
	pl.mu.Lock()
	defer pl.mu.Unlock()
	prefix := defKey(def)
	var out [][]int
	for key, g := range pl.groups {
		if strings.HasPrefix(key, prefix) && len(g.idle) > 0 {
			out = append(out, slices.Clone(g.gpus))
		}
	}
	return out
}

// KeepWarm asks for one process of def on each of sets (min_warm of them;
// a set may repeat, nil is no GPU) and none beyond them for def's earlier
// registrations: the pool starts what is missing (after any backoff) and
// leaves them alone at their idle timeout.
func (r *Runner) KeepWarm(def *algorithm.Definition, sets [][]int) {
	pl := r.servePool()
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if pl.closed {
		return
	}
	name := def.Name + "@" + def.Version + "#"
	for key, g := range pl.groups {
		if strings.HasPrefix(key, name) {
			g.want = 0
		}
	}
	for _, s := range sets {
		pl.group(def, s, nil).want++
	}
	pl.tend(time.Now())
}

// WarmProcesses counts def's live warm processes (starting, idle or busy).
func (r *Runner) WarmProcesses(def *algorithm.Definition) int {
	pl := r.servePool()
	pl.mu.Lock()
	defer pl.mu.Unlock()
	n := 0
	prefix := defKey(def)
	for key, g := range pl.groups {
		if strings.HasPrefix(key, prefix) {
			n += g.live + g.starting
		}
	}
	return n
}

// Close stops every warm process (stdin closed, then SIGTERM and SIGKILL to
// its group after the grace) and waits for them to exit. The runner starts no
// process afterwards.
func (r *Runner) Close() {
	r.poolMu.Lock()
	pl := r.pool
	r.poolMu.Unlock()
	if pl != nil {
		pl.close()
	}
}

func (r *Runner) servePool() *pool {
	r.poolMu.Lock()
	defer r.poolMu.Unlock()
	if r.pool == nil {
		r.pool = newPool(r)
	}
	return r.pool
}

func (r *Runner) grace() time.Duration {
	if r.Limits.KillGrace <= 0 {
		return 5 * time.Second
	}
	return r.Limits.KillGrace
}

func (r *Runner) log() *slog.Logger {
	if r.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Log
}

// defKey names a registration of an algorithm version (a re-registered one
// gets fresh processes); groupKey adds the GPU set.
func defKey(def *algorithm.Definition) string {
	return def.Name + "@" + def.Version + "#" + strconv.FormatInt(def.UpdatedAt.UnixNano(), 36) + "|"
}

func groupKey(def *algorithm.Definition, gpus []int, env map[string]string) string {
	parts := make([]string, len(gpus))
	for i, g := range gpus {
		parts[i] = strconv.Itoa(g)
	}
	key := defKey(def) + strings.Join(parts, ",")
	if len(env) > 0 {
		key += "|" + strings.Join(envList(maps.Clone(env), nil), "\x00")
	}
	return key
}

// processEnv splits a spec's environment: the variables a warm process is
// started with (AIGW_ASSET_<NAME>, the same for every job of its algorithm)
// and the rest, which only a process of the job's own can take (a gang
// member's rank).
func processEnv(env map[string]string) (proc, run map[string]string) {
	for k, v := range env {
		m := &run
		if strings.HasPrefix(k, "AIGW_ASSET_") {
			m = &proc
		}
		if *m == nil {
			*m = map[string]string{}
		}
		(*m)[k] = v
	}
	return proc, run
}

// pool holds a runner's warm processes.
type pool struct {
	r      *Runner
	mu     sync.Mutex
	groups map[string]*group
	closed bool
	quit   chan struct{}
	wg     sync.WaitGroup // every goroutine of the pool and its processes
}

// group is the processes of one algorithm registration on one GPU set.
type group struct {
	key      string
	def      *algorithm.Definition
	gpus     []int
	env      map[string]string // the processes' own environment (Acquire)
	idle     []*proc           // ready, no job; the most recently used last
	live     int               // ready processes, idle or busy
	starting int
	waiters  []*waiter
	want     int // min_warm processes asked for by KeepWarm
	failures int // set-ups failed or processes crashed since the last ready
	retryAt  time.Time
	lastErr  string
}

type waiter struct{ ch chan grant }

type grant struct {
	p   *proc
	err error
}

// Process states.
const (
	starting = iota
	idle
	busy
	stopping
)

// proc is one warm process.
type proc struct {
	g       *group
	cmd     *exec.Cmd
	pid     int
	dir     string
	stdin   *os.File
	outR    *os.File
	errR    *os.File
	started time.Time
	// exited is closed once the process exited (exitErr is then set).
	exited  chan struct{}
	exitErr error
	// ready is closed on its ready message; trouble carries garbage seen
	// while no job runs.
	ready     chan struct{}
	readyOnce sync.Once
	trouble   chan string
	bad       atomic.Bool   // garbage seen while its job ended: not reused
	tail      *tailBuffer   // its stderr
	errDone   chan struct{} // closed when its stderr ends
	errIdle   atomic.Bool   // its stderr reader waits for more
	cur       atomic.Pointer[jobRun]
	// guarded by pool.mu:
	state     int
	jobs      int
	idleSince time.Time
}

func newPool(r *Runner) *pool {
	pl := &pool{r: r, groups: map[string]*group{}, quit: make(chan struct{})}
	pl.wg.Go(pl.janitor)
	return pl
}

// group returns (making it) the group of def on gpus; mu held.
func (pl *pool) group(def *algorithm.Definition, gpus []int, env map[string]string) *group {
	key := groupKey(def, gpus, env)
	g := pl.groups[key]
	if g == nil {
		g = &group{key: key, def: def, gpus: slices.Clone(gpus), env: maps.Clone(env)}
		pl.groups[key] = g
	}
	return g
}

func (pl *pool) acquire(ctx context.Context, def *algorithm.Definition, gpus []int, env map[string]string) (*Lease, error) {
	t0 := time.Now()
	pl.mu.Lock()
	if pl.closed {
		pl.mu.Unlock()
		return nil, ErrClosed
	}
	g := pl.group(def, gpus, env)
	if n := len(g.idle); n > 0 {
		p := g.idle[n-1]
		g.idle = g.idle[:n-1]
		p.state = busy
		pl.mu.Unlock()
		return &Lease{p: p, pl: pl}, nil
	}
	if t0.Before(g.retryAt) {
		err := &NotReadyError{RetryAt: g.retryAt, Reason: g.lastErr}
		pl.mu.Unlock()
		return nil, err
	}
	w := &waiter{ch: make(chan grant, 1)}
	g.waiters = append(g.waiters, w)
	if g.starting < len(g.waiters) {
		pl.evict(g)
		g.starting++
		pl.launch(g)
	}
	pl.mu.Unlock()
	select {
	case gr := <-w.ch:
		if gr.err != nil {
			return nil, gr.err
		}
		return &Lease{p: gr.p, pl: pl, Cold: max(time.Since(t0), time.Millisecond)}, nil
	case <-ctx.Done():
		pl.mu.Lock()
		i := slices.Index(g.waiters, w)
		if i >= 0 {
			g.waiters = slices.Delete(g.waiters, i, i+1)
		}
		pl.mu.Unlock()
		if i < 0 {
			if gr := <-w.ch; gr.p != nil {
				pl.release(gr.p)
			}
		}
		return nil, context.Cause(ctx)
	}
}

// launch starts a process of g in the background (g.starting counts it);
// mu held. Once ready it goes to the first waiter, else it is idle; a failed
// set-up fails the waiters and backs the group off.
func (pl *pool) launch(g *group) {
	pl.wg.Go(func() {
		p, setup, err := pl.spawnReady(g, nil)
		pl.mu.Lock()
		g.starting--
		if err == nil && pl.closed {
			err = ErrClosed
		}
		if err != nil {
			pl.setupFailed(g, err)
			pl.mu.Unlock()
			if p != nil {
				pl.terminate(p, false)
			}
			return
		}
		g.failures, g.lastErr = 0, ""
		g.live++
		pl.handOver(p)
		pl.mu.Unlock()
		pl.r.log().Info("warm process ready", "algorithm", g.def.Name, "version", g.def.Version, "pid", p.pid,
			"gpus", fmt.Sprint(g.gpus), "setup_ms", setup.Milliseconds())
		if f := pl.r.Serve.Ready; f != nil {
			f(g.def, p.pid, setup)
		}
		pl.wg.Go(func() { pl.monitor(p) })
	})
}

// evict stops the idle processes of other groups that hold any of g's GPUs,
// before a process of g loads its model there; mu held.
func (pl *pool) evict(g *group) {
	if len(g.gpus) == 0 {
		return
	}
	for _, h := range pl.groups {
		if h == g || !slices.ContainsFunc(h.gpus, func(i int) bool { return slices.Contains(g.gpus, i) }) {
			continue
		}
		for len(h.idle) > 0 {
			p := h.idle[0]
			pl.dropLocked(p)
			pl.r.log().Info("idle warm process stopped: its GPUs go to another algorithm", "algorithm", h.def.Name,
				"version", h.def.Version, "pid", p.pid, "gpus", fmt.Sprint(h.gpus), "for", g.def.Name)
			pl.terminate(p, false)
		}
	}
}

// setupFailed backs g off and fails its waiters; mu held.
func (pl *pool) setupFailed(g *group, err error) {
	if errors.Is(err, ErrClosed) {
		for _, w := range g.waiters {
			w.ch <- grant{err: err}
		}
		g.waiters = nil
		return
	}
	until := pl.backOff(g, err.Error())
	for _, w := range g.waiters {
		w.ch <- grant{err: &NotReadyError{RetryAt: until, Reason: g.lastErr}}
	}
	g.waiters = nil
	pl.r.log().Error("warm process did not get ready: killed", "algorithm", g.def.Name, "version", g.def.Version,
		"gpus", fmt.Sprint(g.gpus), "err", err, "failures", g.failures, "next_start_in", time.Until(until).Round(time.Millisecond).String())
	if f := pl.r.Serve.SetupFailed; f != nil {
		f(g.def, err)
	}
}

// backOff counts a failure of g and returns when its next start may be; mu held.
func (pl *pool) backOff(g *group, reason string) time.Time {
	base, ceil := pl.r.ServeBackoff, pl.backoffMax()
	if base <= 0 {
		base = DefaultServeBackoff
	}
	g.failures++
	d := base
	for i := 1; i < g.failures && d < ceil; i++ {
		d *= 2
	}
	g.retryAt = time.Now().Add(min(d, ceil))
	g.lastErr = reason
	return g.retryAt
}

func (pl *pool) backoffMax() time.Duration {
	if pl.r.ServeBackoffMax <= 0 {
		return DefaultServeBackoffMax
	}
	return pl.r.ServeBackoffMax
}

// handOver gives ready process p to g's first waiter, else makes it idle; mu held.
func (pl *pool) handOver(p *proc) {
	g := p.g
	if len(g.waiters) > 0 {
		w := g.waiters[0]
		g.waiters = g.waiters[1:]
		p.state = busy
		w.ch <- grant{p: p}
		return
	}
	p.state = idle
	p.idleSince = time.Now()
	g.idle = append(g.idle, p)
}

// release takes back a process whose job ended with it still usable.
func (pl *pool) release(p *proc) {
	pl.mu.Lock()
	if pl.closed || p.bad.Load() {
		pl.dropLocked(p)
		pl.mu.Unlock()
		pl.terminate(p, false)
		return
	}
	pl.handOver(p)
	pl.mu.Unlock()
}

// drop takes p out of its group for good (the caller terminates it); a
// crash also backs the group off.
func (pl *pool) drop(p *proc, crashed string) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	pl.dropLocked(p)
	if crashed != "" {
		pl.backOff(p.g, crashed)
	}
	pl.tend(time.Now())
}

func (pl *pool) dropLocked(p *proc) {
	g := p.g
	switch p.state {
	case idle:
		if i := slices.Index(g.idle, p); i >= 0 {
			g.idle = slices.Delete(g.idle, i, i+1)
		}
		g.live--
	case busy:
		g.live--
	}
	p.state = stopping
}

// monitor stops a ready process that exits or writes garbage while idle (a
// busy one's job sees that itself).
func (pl *pool) monitor(p *proc) {
	for {
		var why string
		exited := false
		select {
		case <-p.exited:
			why, exited = "exited while idle: "+exitText(p), true
		case t := <-p.trouble:
			why = "wrote " + t + " while idle"
		}
		pl.mu.Lock()
		st := p.state
		switch {
		case st == idle:
			pl.dropLocked(p)
			if exited {
				pl.backOff(p.g, why)
			}
		case st == busy && !exited:
			p.bad.Store(true) // its job has just ended: release drops it
		}
		pl.mu.Unlock()
		if st == idle {
			pl.r.log().Warn("warm process stopped", "algorithm", p.g.def.Name, "version", p.g.def.Version, "pid", p.pid, "why", why)
			pl.terminate(p, false)
			return
		}
		if exited || st == stopping {
			return
		}
	}
}

// janitor stops idle processes past their idle timeout and starts those
// KeepWarm asks for.
func (pl *pool) janitor() {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-pl.quit:
			return
		case now := <-t.C:
			pl.mu.Lock()
			pl.tend(now)
			pl.mu.Unlock()
		}
	}
}

// tend applies idle timeouts and min_warm to every group; mu held.
func (pl *pool) tend(now time.Time) {
	if pl.closed {
		return
	}
	for key, g := range pl.groups {
		timeout := g.def.Runtime.IdleTimeout()
		for len(g.idle) > 0 && g.live > g.want && now.Sub(g.idle[0].idleSince) >= timeout {
			p := g.idle[0]
			pl.dropLocked(p)
			pl.r.log().Info("idle warm process stopped", "algorithm", g.def.Name, "version", g.def.Version, "pid", p.pid,
				"idle_timeout", timeout.String())
			pl.terminate(p, true)
		}
		for g.live+g.starting < g.want && !now.Before(g.retryAt) {
			g.starting++
			pl.launch(g)
		}
		// An unused group goes, once its failures are old enough to forget.
		if g.live == 0 && g.starting == 0 && len(g.waiters) == 0 && g.want == 0 &&
			(g.failures == 0 || now.Sub(g.retryAt) > pl.backoffMax()) {
			delete(pl.groups, key)
		}
	}
}

func (pl *pool) close() {
	pl.mu.Lock()
	if pl.closed {
		pl.mu.Unlock()
		pl.wg.Wait()
		return
	}
	pl.closed = true
	close(pl.quit)
	var stop []*proc
	for _, g := range pl.groups {
		stop = append(stop, g.idle...)
		for _, p := range g.idle {
			p.state = stopping
		}
		g.live -= len(g.idle)
		g.idle = nil
		for _, w := range g.waiters {
			w.ch <- grant{err: ErrClosed}
		}
		g.waiters = nil
	}
	pl.mu.Unlock()
	for _, p := range stop {
		pl.terminate(p, true)
	}
	pl.wg.Wait()
}

// spawnReady starts a process of g (extra: more environment, e.g. a
// gang's) and waits for its set-up. On failure the process, if any, is
// returned for the caller to terminate.
func (pl *pool) spawnReady(g *group, extra map[string]string) (*proc, time.Duration, error) {
	p, err := pl.spawn(g, extra)
	if err != nil {
		return nil, 0, err
	}
	limit := g.def.Runtime.SetupTimeout()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case <-p.ready:
		return p, time.Since(p.started), nil
	case <-p.exited:
		return p, 0, fmt.Errorf("exited during set-up: %s", exitText(p))
	case t := <-p.trouble:
		return p, 0, fmt.Errorf("wrote %s during set-up", t)
	case <-timer.C:
		return p, 0, fmt.Errorf("set-up did not finish within runtime.setup_timeout_ms (%s)", limit)
	case <-pl.quit:
		return p, 0, ErrClosed
	}
}

// exitText says how p exited, with the last line of its stderr (read to
// its end, unless a process it left behind holds it open).
func exitText(p *proc) string {
	waitFor(p.errDone, 200*time.Millisecond)
	msg := "exited"
	if p.exitErr != nil {
		msg = p.exitErr.Error()
	}
	if last := p.tail.LastLine(); last != "" {
		msg += ": " + last
	}
	return msg
}

// spawn starts a process of g, in a fresh directory of its own, and its
// readers.
func (pl *pool) spawn(g *group, extra map[string]string) (*proc, error) {
	r := pl.r
	dir, err := os.MkdirTemp(r.WorkDir, "aigw-serve-"+g.def.Name+"-")
	if err != nil {
		return nil, fmt.Errorf("create process directory: %w", err)
	}
	if err := r.chown(dir); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	prog, cwd, err := r.program(g.def, dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	env := baseEnviron(g.def, g.gpus)
	env["AIGW_SERVE"] = ServeProtocol
	env["AIGW_ALGORITHM"] = g.def.Name
	env["AIGW_VERSION"] = g.def.Version
	pp, err := newPipes()
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	maps.Copy(env, g.env)
	cmd, err := r.start(prog, g.def.Runtime.Command[1:], cwd, dir, envList(env, extra), pp)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	p := &proc{g: g, cmd: cmd, pid: cmd.Process.Pid, dir: dir, stdin: pp.inW, outR: pp.outR, errR: pp.errR,
		started: time.Now(), exited: make(chan struct{}), ready: make(chan struct{}), trouble: make(chan string, 1),
		tail: &tailBuffer{limit: int(max(r.Limits.LogTail, 4<<10))}, errDone: make(chan struct{})}
	pl.wg.Go(func() {
		p.exitErr = cmd.Wait()
		close(p.exited)
	})
	pl.wg.Go(func() { pl.readStdout(p) })
	pl.wg.Go(func() {
		defer close(p.errDone)
		pl.readStderr(p)
	})
	return p, nil
}

// terminate stops p: its stdin is closed (a graceful stop then waits the
// grace for it to exit), then its group gets SIGTERM and, after the grace,
// SIGKILL; then its directory goes.
func (pl *pool) terminate(p *proc, graceful bool) {
	pl.wg.Go(func() {
		_ = p.stdin.Close()
		grace := pl.r.grace()
		if graceful && waitFor(p.exited, grace) {
			grace = 0
		}
		if grace > 0 {
			_ = syscall.Kill(-p.pid, syscall.SIGTERM)
			if !waitFor(p.exited, grace) {
				_ = syscall.Kill(-p.pid, syscall.SIGKILL)
				<-p.exited
			}
		}
		// Whatever it left behind in its group goes with it; its pipes'
		// read ends close, which ends the readers.
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
		_ = p.outR.Close()
		_ = p.errR.Close()
		_ = os.RemoveAll(p.dir)
	})
}

func waitFor(ch <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
		return false
	}
}

// message is one protocol line from a process.
type message struct {
	Type     string          `json:"type"`
	ID       string          `json:"id"`
	Progress *float64        `json:"progress"`
	Message  string          `json:"message"`
	Line     string          `json:"line"`
	Output   json.RawMessage `json:"output"`
	Error    *struct {
		Message   string `json:"message"`
		Retryable *bool  `json:"retryable"`
	} `json:"error"`
	// bad says why the line breaks the protocol ("" when it does not).
	bad string
}

// parseMessage reads one stdout line.
func parseMessage(line []byte, tooLong bool) message {
	if tooLong {
		return message{bad: fmt.Sprintf("a line over %d bytes", maxLine)}
	}
	var m message
	if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &m) != nil {
		return message{bad: fmt.Sprintf("a line that is not a JSON object: %q", truncate(string(line), 200))}
	}
	switch m.Type {
	case "ready", "progress", "log", "done":
	default:
		return message{bad: fmt.Sprintf("a message of unknown type %q", truncate(m.Type, 100))}
	}
	return m
}

// readLine reads one line of at most limit bytes; a longer one is consumed
// and reported tooLong.
func readLine(br *bufio.Reader, limit int) (line []byte, tooLong bool, err error) {
	for {
		chunk, err := br.ReadSlice('\n')
		if !tooLong {
			if len(line)+len(chunk) > limit {
				tooLong, line = true, nil
			} else {
				line = append(line, chunk...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return bytes.TrimRight(line, "\r\n"), tooLong, err
	}
}

// readStdout reads p's protocol lines and routes them: to its job, else to
// its set-up (ready) or its monitor (garbage).
func (pl *pool) readStdout(p *proc) {
	br := bufio.NewReaderSize(p.outR, 64<<10)
	for {
		line, tooLong, err := readLine(br, maxLine)
		if len(bytes.TrimSpace(line)) > 0 || tooLong {
			p.route(parseMessage(bytes.TrimSpace(line), tooLong))
		}
		if err != nil {
			return
		}
	}
}

func (p *proc) route(m message) {
	if jr := p.cur.Load(); jr != nil {
		jr.handle(m)
		return
	}
	switch {
	case m.bad != "":
		p.warn(m.bad)
	case m.Type == "ready":
		p.readyOnce.Do(func() { close(p.ready) })
	case m.Type == "done":
		p.warn("a done message with no job running")
	}
	// progress and log lines of a job that has ended are dropped
}

func (p *proc) warn(why string) {
	select {
	case p.trouble <- why:
	default:
	}
}

// readStderr sends p's stderr lines to its job's log, else to the worker's.
func (pl *pool) readStderr(p *proc) {
	br := bufio.NewReaderSize(p.errR, 64<<10)
	log := pl.r.log().With("algorithm", p.g.def.Name, "version", p.g.def.Version, "pid", p.pid)
	for {
		p.errIdle.Store(br.Buffered() == 0)
		line, _, err := readLine(br, 64<<10)
		p.errIdle.Store(false)
		if len(line) > 0 {
			_, _ = p.tail.Write(append(line, '\n'))
			if jr := p.cur.Load(); jr != nil {
				jr.logLine(string(line))
			} else {
				log.Info("warm process output", "line", string(line))
			}
		}
		if err != nil {
			return
		}
	}
}

// settleStderr waits, 20 ms at most, until what p wrote to stderr before
// its done message has been read (so that it lands in the job's log, not the
// worker's): stdout and stderr are two pipes, read apart.
func (p *proc) settleStderr() {
	rc, err := p.errR.SyscallConn()
	if err != nil {
		return
	}
	deadline := time.Now().Add(20 * time.Millisecond)
	for {
		var n int32
		cerr := rc.Control(func(fd uintptr) {
			if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCINQ, uintptr(unsafe.Pointer(&n))); e != 0 {
				n = 0
			}
		})
		if cerr != nil || (n == 0 && p.errIdle.Load()) || time.Now().After(deadline) {
			return
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// jobRun is the job a process runs: where its messages go.
type jobRun struct {
	id     string
	h      Hooks
	limit  int64
	mu     sync.Mutex
	closed bool
	logs   *batcher
	tail   *tailBuffer
	end    chan message // its done message, or garbage
}

func (jr *jobRun) handle(m message) {
	jr.mu.Lock()
	defer jr.mu.Unlock()
	if jr.closed {
		return
	}
	switch {
	case m.bad != "":
	case m.Type == "done" && m.ID != jr.id:
		m.bad = fmt.Sprintf("a done message for job %q while job %q runs", truncate(m.ID, 60), jr.id)
	case m.ID != jr.id:
		return
	case m.Type == "progress":
		if jr.h.Progress != nil && m.Progress != nil {
			jr.h.Progress(events.Progress{Progress: min(max(*m.Progress, 0), 1), Message: m.Message, At: time.Now().UTC()})
		}
		return
	case m.Type == "log":
		_, _ = jr.tail.Write([]byte(m.Line + "\n"))
		jr.logs.Add(m.Line)
		return
	case m.Type == "done" && int64(len(m.Output)) > jr.limit:
		m.bad = fmt.Sprintf("output is larger than the limit of %d bytes", jr.limit)
	case m.Type != "done":
		return
	}
	select {
	case jr.end <- m:
	default:
	}
}

func (jr *jobRun) logLine(line string) {
	jr.mu.Lock()
	defer jr.mu.Unlock()
	_, _ = jr.tail.Write([]byte(line + "\n"))
	if !jr.closed {
		jr.logs.Add(line)
	}
}

// close stops taking messages and sends the last log lines.
func (jr *jobRun) close() {
	jr.mu.Lock()
	jr.closed = true
	jr.mu.Unlock()
	jr.logs.Close()
}

// runServe runs s on a warm process: s.Lease's, else one Acquire waits for.
// A spec with an environment of its own (a gang member's rank) gets a
// process of its own, stopped after the job; a lease whose process was
// started without the spec's process environment (see processEnv) is
// handed back for one that was.
func (r *Runner) runServe(ctx context.Context, s Spec, h Hooks) Result {
	if f := Refused(s.Def); f != nil {
		return Result{Err: f}
	}
	pl := r.servePool()
	procEnv, runEnv := processEnv(s.Env)
	if len(runEnv) > 0 {
		return pl.runOnce(ctx, s, h)
	}
	l := s.Lease
	if l != nil && !maps.Equal(l.p.g.env, procEnv) {
		l.Release()
		l = nil
	}
	if l == nil {
		var err error
		if l, err = pl.acquire(ctx, s.Def, s.GPUs, procEnv); err != nil {
			if ctx.Err() != nil {
				return Result{Err: failure(CodeStopped, "stopped: %v", context.Cause(ctx))}
			}
			return Result{Err: failure(CodeRuntime, "%v", err)}
		}
	}
	l.used = true
	res, keep := pl.run(ctx, l.p, s, h)
	res.ColdStart = l.Cold
	pl.after(l.p, keep)
	return res
}

// runOnce runs s on a process started for it alone.
func (pl *pool) runOnce(ctx context.Context, s Spec, h Hooks) Result {
	g := &group{key: groupKey(s.Def, s.GPUs, nil), def: s.Def, gpus: slices.Clone(s.GPUs)}
	p, setup, err := pl.spawnReady(g, s.Env)
	if err != nil {
		if p != nil {
			pl.terminate(p, false)
		}
		return Result{Err: asFailure(err)}
	}
	p.state = busy
	res, _ := pl.run(ctx, p, s, h)
	res.ColdStart = setup
	pl.terminate(p, true)
	return res
}

// keep says what becomes of a process after its job.
type keep int

const (
	keepIt  keep = iota // reuse it (or recycle it at max_jobs)
	stopIt              // stop it now (timeout, cancel, garbage)
	crashed             // it exited: back the group off
)

// after returns a process to the pool, recycles it at max_jobs, or stops it.
func (pl *pool) after(p *proc, k keep) {
	if k == keepIt {
		pl.mu.Lock()
		p.jobs++
		recycle := p.g.def.Runtime.MaxJobs > 0 && p.jobs >= p.g.def.Runtime.MaxJobs
		pl.mu.Unlock()
		if !recycle {
			pl.release(p)
			return
		}
		pl.r.log().Info("warm process recycled after max_jobs", "algorithm", p.g.def.Name, "version", p.g.def.Version,
			"pid", p.pid, "max_jobs", p.g.def.Runtime.MaxJobs)
		pl.drop(p, "")
		pl.terminate(p, true)
		return
	}
	why := ""
	if k == crashed {
		why = "crashed during a job: " + exitText(p)
	}
	pl.drop(p, why)
	pl.terminate(p, false)
}

// run sends one job to ready process p and waits for its end, its timeout,
// or ctx; keep says whether p may run another.
func (pl *pool) run(ctx context.Context, p *proc, s Spec, h Hooks) (res Result, k keep) {
	r := pl.r
	res.PID = p.pid
	var err error
	if res.Dir, res.OutputDir, err = r.runDir("aigw-run-" + s.JobID + "-"); err != nil {
		res.Err = failure(CodeRuntime, "%v", err)
		return res, keepIt
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = s.Def.Timeout()
	}
	line, err := json.Marshal(map[string]any{"type": "run", "id": s.JobID, "attempt": s.Attempt, "input": s.Input,
		"output_dir": res.OutputDir, "timeout_ms": timeout.Milliseconds()})
	if err != nil {
		res.Err = failure(CodeRuntime, "encode the run message: %v", err)
		return res, keepIt
	}
	jr := &jobRun{id: s.JobID, h: h, limit: r.Limits.Output, logs: r.newBatcher(h.Logs),
		tail: &tailBuffer{limit: int(r.Limits.LogTail)}, end: make(chan message, 1)}
	p.cur.Store(jr)
	out, k := pl.await(ctx, p, jr, append(line, '\n'), timeout, h)
	if k == keepIt {
		p.settleStderr()
	}
	p.cur.Store(nil)
	jr.close()
	res.Log = jr.tail.String()
	res.Output, res.Err = out.Output, out.Err
	return res, k
}

// await writes the run message and waits for the job's end. Started is
// called just before the write: nothing of the job can come back earlier.
func (pl *pool) await(ctx context.Context, p *proc, jr *jobRun, line []byte, timeout time.Duration, h Hooks) (Result, keep) {
	if h.Started != nil {
		h.Started(p.pid)
	}
	wrote := make(chan error, 1)
	pl.wg.Go(func() {
		_, err := p.stdin.Write(line)
		wrote <- err
	})
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case err := <-wrote:
			wrote = nil
			if err != nil {
				// Its stdin is gone: it exited, or is about to.
				waitFor(p.exited, pl.r.grace())
			}
		case m := <-jr.end:
			return pl.outcome(m)
		case <-p.exited:
			// A done written just before the exit still counts.
			if m, ok := jr.lastWord(); ok {
				return pl.outcome(m)
			}
			return Result{Err: failure(CodeRuntime, "the process exited during the job: %s", exitText(p))}, crashed
		case <-timer.C:
			return Result{Err: failure(CodeTimeout, "ran past its execution timeout of %s; its process was stopped", timeout)}, stopIt
		case <-ctx.Done():
			pl.cancel(p, jr)
			return Result{Err: failure(CodeStopped, "stopped: %v", context.Cause(ctx))}, stopIt
		}
	}
}

// lastWord waits briefly for the reader to finish p's stdout after an exit
// and reports a done message it delivered.
func (jr *jobRun) lastWord() (message, bool) {
	t := time.NewTimer(100 * time.Millisecond)
	defer t.Stop()
	select {
	case m := <-jr.end:
		return m, true
	case <-t.C:
		return message{}, false
	}
}

// cancel asks p to stop its job and waits up to the grace for its answer;
// the caller stops p either way.
func (pl *pool) cancel(p *proc, jr *jobRun) {
	msg, _ := json.Marshal(map[string]string{"type": "cancel", "id": jr.id})
	pl.wg.Go(func() { _, _ = p.stdin.Write(append(msg, '\n')) })
	t := time.NewTimer(pl.r.grace())
	defer t.Stop()
	select {
	case <-jr.end:
	case <-p.exited:
	case <-t.C:
	}
}

// outcome turns a done message (or garbage) into the job's result.
func (pl *pool) outcome(m message) (Result, keep) {
	switch {
	case m.bad != "":
		return Result{Err: failure(CodeBadOut, "the process wrote %s; it was stopped", m.bad)}, stopIt
	case m.Error != nil:
		retry := m.Error.Retryable == nil || *m.Error.Retryable
		return Result{Err: &Failure{Code: CodeRuntime, Message: m.Error.Message, Retryable: retry}}, keepIt
	case len(m.Output) == 0:
		return Result{Output: json.RawMessage("null")}, keepIt
	}
	return Result{Output: m.Output}, keepIt
}
