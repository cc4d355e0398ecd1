// Package procs supervises the local processes that run a function: it starts
// replicas on their own loopback ports, waits for their health endpoint, restarts
// them with backoff when they crash, drains them before a stop, and stops them
// with SIGTERM, then SIGKILL after a grace, as a process group.
package procs

import (
	"context"
	"errors"
	"fmt"
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
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

var probeClient = &http.Client{Timeout: time.Second}

// Replica is one supervised process of a function.
type Replica struct {
	ID   string
	spec *Spec
	opts *Options

	addr     atomic.Pointer[string]
	ready    atomic.Bool
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

// Ready reports whether the replica answered its health check and has not
// exited since.
func (r *Replica) Ready() bool { return r.ready.Load() && !r.draining.Load() }

// Restarts counts the times the process was started again after an exit.
func (r *Replica) Restarts() int64 { return r.restarts.Load() }

// acquire counts a request in flight; false when the replica drains. The
// increment comes before the check, and drain sets the flag before it reads the
// count, so a request is either refused or waited for.
func (r *Replica) acquire() bool {
	r.inflight.Add(1)
	if r.draining.Load() || !r.ready.Load() {
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
	go r.probe(probeCtx, addr)

	select {
	case err := <-waited:
		r.ready.Store(false)
		if err == nil {
			err = errors.New("exit status 0")
		}
		return err, nil
	case <-r.stop:
		r.ready.Store(false)
		cancelProbe()
		terminate(cmd.Process.Pid, waited, r.opts.StopGrace, log)
		return nil, nil
	}
}

// probe polls the health endpoint until it answers 200, then marks the replica ready.
func (r *Replica) probe(ctx context.Context, addr string) {
	t := time.NewTicker(r.opts.HealthPeriod)
	defer t.Stop()
	url := "http://" + addr + HealthPath
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return
		}
		if res, err := probeClient.Do(req); err == nil {
			_ = res.Body.Close()
			if res.StatusCode == http.StatusOK {
				r.ready.Store(true)
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
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
