package executorapi

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Provider is where executors come from: it brings up an executor holding a
// credential (Provision creates it) and takes it down again. Local runs them
// as processes of this machine; Remote leaves them to other machines (a
// NuNet ensemble, a desktop, a server elsewhere) and says what to run there.
type Provider interface {
	// Start brings up the executor of credential c and says how it joins.
	Start(ctx context.Context, c Created) (Executor, error)
	// Stop takes it down (a no-op for executors this machine does not run;
	// revoking the credential stops those at their next call).
	Stop(ctx context.Context, e Executor) error
}

// Executor is an executor a Provider brought up.
type Executor struct {
	ID, Pool, Name string
	// Token is the executor's credential (shown once: hand it over, do not log it).
	Token string
	// Command joins the pool: aigw-worker --join URL --token T.
	Command []string
	// PID is the local process (Local only; 0 otherwise).
	PID int
}

// JoinCommand is the command an executor of credential c runs to join the
// executor API at url, with the aigw-worker binary bin.
func JoinCommand(bin, url string, c Created) []string {
	return []string{bin, "--join", url, "--token", c.Token}
}

// Provision creates a credential for an executor of pool named name (admin
// is a client with the admin token) and has p bring the executor up. A
// failed start revokes the credential again.
func Provision(ctx context.Context, admin *Client, p Provider, pool, name string) (Executor, error) {
	c, err := admin.Create(ctx, pool, name)
	if err != nil {
		return Executor{}, err
	}
	e, err := p.Start(ctx, c)
	if err != nil {
		return Executor{}, errors.Join(err, admin.Revoke(context.WithoutCancel(ctx), c.ID))
	}
	return e, nil
}

// Decommission revokes e's credential (its jobs go back to the queue at
// once) and has p stop it.
func Decommission(ctx context.Context, admin *Client, p Provider, e Executor) error {
	return errors.Join(admin.Revoke(ctx, e.ID), p.Stop(ctx, e))
}

// Remote is a Provider for executors on other machines: Start only says
// what to run there (Command), since this machine cannot start them.
type Remote struct {
	// URL is the executor API as the remote machine reaches it
	// (AIGW_EXECUTORS_URL: https://<gateway>/function/executors).
	URL string
	// Bin is the worker binary there (default aigw-worker).
	Bin string
}

// Start returns the executor with the command to run on its machine.
func (r Remote) Start(_ context.Context, c Created) (Executor, error) {
	if r.URL == "" {
		return Executor{}, errors.New("remote provider: the executor API's URL is required")
	}
	bin := r.Bin
	if bin == "" {
		bin = "aigw-worker"
	}
	return Executor{ID: c.ID, Pool: c.Pool, Name: c.Name, Token: c.Token, Command: JoinCommand(bin, r.URL, c)}, nil
}

// Stop does nothing: revoking the credential stops a remote executor.
func (Remote) Stop(context.Context, Executor) error { return nil }

// Local is a Provider that runs executors as processes of this machine:
// aigw-worker --join, started with Env (AIGW_SLOTS, AIGW_ALGORITHMS_DIR, …;
// no Redis or MongoDB setting is needed or passed on) and, when set, behind
// Wrap (e.g. ip netns exec NS, to run it in a network namespace).
type Local struct {
	Bin  string   // the aigw-worker binary
	URL  string   // the executor API as this machine reaches it
	Env  []string // the processes' environment (nil: none)
	Wrap []string // a command the worker runs under
	// Logs, when set, makes each executor's stdout and stderr file.
	Logs func(name string) (*os.File, error)

	mu    sync.Mutex
	procs map[int]*localProc
}

type localProc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts the executor's process.
func (l *Local) Start(_ context.Context, c Created) (Executor, error) {
	argv := append(append([]string{}, l.Wrap...), JoinCommand(l.Bin, l.URL, c)...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = l.Env
	if l.Logs != nil {
		f, err := l.Logs(c.Name)
		if err != nil {
			return Executor{}, err
		}
		cmd.Stdout, cmd.Stderr = f, f
		defer f.Close()
	}
	if err := cmd.Start(); err != nil {
		return Executor{}, fmt.Errorf("start executor %s: %w", c.Name, err)
	}
	p := &localProc{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	l.mu.Lock()
	if l.procs == nil {
		l.procs = map[int]*localProc{}
	}
	l.procs[cmd.Process.Pid] = p
	l.mu.Unlock()
	return Executor{ID: c.ID, Pool: c.Pool, Name: c.Name, Token: c.Token, Command: redact(JoinCommand(l.Bin, l.URL, c)),
		PID: cmd.Process.Pid}, nil
}

// Done is closed when executor e's process has exited (nil: not one of l's).
func (l *Local) Done(e Executor) <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p := l.procs[e.PID]; p != nil {
		return p.done
	}
	return nil
}

// Stop asks the process to drain (SIGINT: its runs get the worker's
// shutdown grace) and kills it when it has not exited once ctx ends.
func (l *Local) Stop(ctx context.Context, e Executor) error {
	l.mu.Lock()
	p := l.procs[e.PID]
	delete(l.procs, e.PID)
	l.mu.Unlock()
	if p == nil {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		_ = p.cmd.Process.Kill()
		<-p.done
		return nil
	case <-time.After(time.Minute):
		_ = p.cmd.Process.Kill()
		<-p.done
		return nil
	}
}

// redact hides the token in a command shown to people.
func redact(argv []string) []string {
	out := append([]string{}, argv...)
	for i := range out {
		if i > 0 && out[i-1] == "--token" {
			out[i] = strings.Repeat("*", 8)
		}
	}
	return out
}
