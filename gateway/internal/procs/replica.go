// Package procs supervises the local processes that run a function: it starts
// replicas on their own loopback ports, waits for their health endpoint, keeps
// checking it (a replica answering non-200 leaves the rotation, one that stops
// answering at all is restarted, as Kubernetes' readiness and liveness probes
// do), restarts them with backoff when they crash, drains them before a stop,
// and stops them with SIGTERM, then SIGKILL after a grace, as a process group.
package procs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Namespace is the one namespace the gateway has, as OpenFaaS names it.
const Namespace = "openfaas-fn"

// HealthPath is the function contract's health endpoint.
const HealthPath = "/_/health"

// Spec is what one generation of a function runs.
type Spec struct {
	Name   string
	Binary string
	// Env is the process environment (KEY=value), PORT is added per replica.
	Env []string
	// Logs receives the processes' stdout and stderr lines.
	Logs *LogRing
}

// Options tunes the supervisor; zero values take the defaults noted.
type Options struct {
	StopGrace    time.Duration // SIGTERM → SIGKILL (default 10s)
	MinBackoff   time.Duration // first restart delay (default 100ms)
	MaxBackoff   time.Duration // longest restart delay (default 5s)
	HealthPeriod time.Duration // probe period until ready (default 50ms)
	// CheckPeriod is the probe period once ready (default 2s).
	CheckPeriod time.Duration
	// FailureThreshold is how many checks in a row must fail before a ready
	// replica leaves the rotation (a non-200 answer) or is restarted (no
	// answer within CheckTimeout) (default 3).
	FailureThreshold int
	// CheckTimeout bounds one check once ready (default 5s).
	CheckTimeout time.Duration
	Logger       *slog.Logger
}

func (o *Options) defaults() {
	if o.StopGrace == 0 {
		o.StopGrace = 10 * time.Second
	}
	if o.MinBackoff == 0 {
		o.MinBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 5 * time.Second
	}
	if o.HealthPeriod == 0 {
		o.HealthPeriod = 50 * time.Millisecond
	}
	if o.CheckPeriod == 0 {
		o.CheckPeriod = 2 * time.Second
	}
	if o.FailureThreshold == 0 {
		o.FailureThreshold = 3
	}
	if o.CheckTimeout == 0 {
		o.CheckTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// probeClient has no timeout of its own: each check bounds itself (1 s until
// ready, CheckTimeout after).
var probeClient = &http.Client{}

// Replica is one supervised process of a function.
type Replica struct {
	ID   string
	spec *Spec
	opts *Options

	addr     atomic.Pointer[string]
	ready    atomic.Bool // answered 200 since it started
	sick     atomic.Bool // answered non-200 FailureThreshold checks in a row since
	draining atomic.Bool
	inflight atomic.Int64
	restarts atomic.Int64

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

func startReplica(spec *Spec, opts *Options, id string) *Replica {
	r := &Replica{ID: id, spec: spec, opts: opts, stop: make(chan struct{}), done: make(chan struct{})}
	go r.supervise()
	return r
}

// Addr is the replica's current host:port ("" before its first start).
func (r *Replica) Addr() string {
	if p := r.addr.Load(); p != nil {
		return *p
	}
	return ""
}

// Ready reports whether the replica answered its health check, has not
// exited since, and its checks since do not fail.
func (r *Replica) Ready() bool { return r.ready.Load() && !r.sick.Load() && !r.draining.Load() }

// Restarts counts the times the process was started again after an exit.
func (r *Replica) Restarts() int64 { return r.restarts.Load() }

// acquire counts a request in flight; false when the replica drains, is not
// ready, or (unless sickToo) fails its checks. The increment comes before the
// check, and drain sets the flag before it reads the count, so a request is
// either refused or waited for.
func (r *Replica) acquire(sickToo bool) bool {
	r.inflight.Add(1)
	if r.draining.Load() || !r.ready.Load() || (!sickToo && r.sick.Load()) {
		r.inflight.Add(-1)
		return false
	}
	return true
}

// Release ends a request that Pick counted.
func (r *Replica) Release() { r.inflight.Add(-1) }

// drainAndStop refuses new requests, waits for those in flight (at most
// maxWait), then stops the process and waits for the supervisor to end.
func (r *Replica) drainAndStop(ctx context.Context, maxWait time.Duration) {
	r.draining.Store(true)
	deadline := time.Now().Add(maxWait)
	for r.inflight.Load() > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	r.stopOnce.Do(func() { close(r.stop) })
	<-r.done
}

func (r *Replica) supervise() {
	defer close(r.done)
	log := r.opts.Logger.With("function", r.spec.Name, "replica", r.ID)
	backoff := r.opts.MinBackoff
	for first := true; ; first = false {
		if !first {
			r.restarts.Add(1)
		}
		started := time.Now()
		exited, err := r.runOnce(log)
		if err != nil {
			log.Warn("function process failed to start", "err", err)
		}
		if exited == nil { // stopped on request
			return
		}
		if time.Since(started) > 10*time.Second {
			backoff = r.opts.MinBackoff
		}
		log.Warn("function process exited; restarting", "err", exited, "backoff", backoff)
		select {
		case <-r.stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, r.opts.MaxBackoff)
	}
}

// runOnce runs the process until it exits (returns the exit error, never nil)
// or a stop is asked (returns nil after the process has gone).
func (r *Replica) runOnce(log *slog.Logger) (exited error, startErr error) {
	port, err := freePort()
	if err != nil {
		return err, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	r.addr.Store(&addr)
	out := &lineWriter{ring: r.spec.Logs, instance: r.ID}
	defer out.Close()
	cmd := exec.Command(r.spec.Binary)
	cmd.Env = append(append([]string(nil), r.spec.Env...), "PORT="+strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return err, err
	}
	log.Debug("function process started", "pid", cmd.Process.Pid, "addr", addr)
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	probeCtx, cancelProbe := context.WithCancel(context.Background())
	defer cancelProbe()
	hung := make(chan struct{})
	go r.probe(probeCtx, addr, log, hung)

	select {
	case err := <-waited:
		r.ready.Store(false)
		if err == nil {
			err = errors.New("exit status 0")
		}
		return err, nil
	case <-hung:
		r.ready.Store(false)
		cancelProbe()
		terminate(cmd.Process.Pid, waited, r.opts.StopGrace, log)
		return fmt.Errorf("no answer to GET %s in %d checks in a row: killed", HealthPath, r.opts.FailureThreshold), nil
	case <-r.stop:
		r.ready.Store(false)
		cancelProbe()
		terminate(cmd.Process.Pid, waited, r.opts.StopGrace, log)
		return nil, nil
	}
}

// probe polls the health endpoint every HealthPeriod until it answers 200 and
// marks the replica ready; then it checks it every CheckPeriod. After
// FailureThreshold failed checks in a row the replica is sick (out of the
// rotation; back in at the next 200) when it answered, and hung is closed
// (the process gets restarted) when it did not answer at all.
func (r *Replica) probe(ctx context.Context, addr string, log *slog.Logger, hung chan<- struct{}) {
	url := "http://" + addr + HealthPath
	check := func(timeout time.Duration) (status int, err error) {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(cctx, http.MethodGet, url, nil)
		if err != nil {
			return 0, err
		}
		res, err := probeClient.Do(req)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 4<<10))
		_ = res.Body.Close()
		return res.StatusCode, nil
	}
	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	for {
		if status, err := check(time.Second); err == nil && status == http.StatusOK {
			r.ready.Store(true)
			break
		}
		if !wait(r.opts.HealthPeriod) {
			return
		}
	}
	failed, silent := 0, 0
	for wait(r.opts.CheckPeriod) {
		status, err := check(r.opts.CheckTimeout)
		if ctx.Err() != nil {
			return
		}
		switch {
		case err == nil && status == http.StatusOK:
			if r.sick.Swap(false) {
				log.Info("function replica healthy again: back in the rotation")
			}
			failed, silent = 0, 0
			continue
		case err != nil:
			failed++
			silent++
		default:
			failed++
			silent = 0
		}
		if silent >= r.opts.FailureThreshold {
			log.Warn("function replica does not answer its health check; restarting it", "checks", silent, "err", err)
			close(hung)
			return
		}
		if failed >= r.opts.FailureThreshold && !r.sick.Swap(true) {
			if err != nil {
				log.Warn("function replica fails its health check: out of the rotation", "checks", failed, "err", err)
			} else {
				log.Warn("function replica fails its health check: out of the rotation", "checks", failed, "status", status)
			}
		}
	}
}

// terminate sends SIGTERM to the process group, then SIGKILL after grace.
func terminate(pid int, waited <-chan error, grace time.Duration, log *slog.Logger) {
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-waited:
	case <-time.After(grace):
		log.Warn("function process ignored SIGTERM; killing", "pid", pid, "grace", grace)
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-waited
	}
	// Children left in the group after the leader exited.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("no free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
