package procs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Group is one generation of a function: replicas running the same Spec.
// An update starts a new Group and drains the old one.
type Group struct {
	spec Spec
	opts Options
	gen  string

	mu       sync.Mutex
	replicas []*Replica
	seq      int
	rr       atomic.Uint64
}

// ErrNotReady is returned when replicas do not become healthy in time.
var ErrNotReady = errors.New("function not ready")

var genSeq atomic.Uint64

// StartGroup starts n replicas of spec and returns at once; WaitReady waits for them.
func StartGroup(spec Spec, n int, opts Options) *Group {
	opts.defaults()
	g := &Group{spec: spec, opts: opts, gen: fmt.Sprintf("%d", genSeq.Add(1))}
	g.mu.Lock()
	defer g.mu.Unlock()
	for range n {
		g.addLocked()
	}
	return g
}

func (g *Group) addLocked() {
	g.seq++
	g.replicas = append(g.replicas, startReplica(&g.spec, &g.opts, fmt.Sprintf("%s-%s-%d", g.spec.Name, g.gen, g.seq)))
}

// Spec returns what the group runs.
func (g *Group) Spec() Spec { return g.spec }

// WaitReady waits until every replica answers its health check, or timeout.
func (g *Group) WaitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		total, ready := g.Counts()
		if ready == total {
			return nil
		}
		select {
		case <-ctx.Done():
			tail := g.spec.Logs.Snapshot(time.Time{}, 5)
			lines := make([]string, 0, len(tail))
			for _, m := range tail {
				lines = append(lines, m.Text)
			}
			msg := fmt.Sprintf("%d of %d replicas of %s answered GET %s with 200 within %s", ready, total, g.spec.Name, HealthPath, timeout)
			if len(lines) > 0 {
				msg += "; last output: " + strings.Join(lines, " | ")
			}
			return fmt.Errorf("%w: %s", ErrNotReady, msg)
		case <-t.C:
		}
	}
}

// Counts returns the number of replicas and of ready ones.
func (g *Group) Counts() (total, ready int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, r := range g.replicas {
		if r.Ready() {
			ready++
		}
	}
	return len(g.replicas), ready
}

// Replicas returns the current replicas.
func (g *Group) Replicas() []*Replica {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]*Replica(nil), g.replicas...)
}

// Pick returns a ready replica, round-robin, counted in flight (call Release),
// skipping those in skip; false when none is ready. When every running replica
// fails its health checks, it picks among those (as Envoy's panic threshold
// does): the function's own answer, e.g. a 503 naming the database it cannot
// reach, says more than the gateway's "no replica ready".
func (g *Group) Pick(skip map[*Replica]bool) (*Replica, bool) {
	g.mu.Lock()
	reps := g.replicas
	g.mu.Unlock()
	n := len(reps)
	if n == 0 {
		return nil, false
	}
	start := int(g.rr.Add(1) % uint64(n))
	for _, sickToo := range []bool{false, true} {
		for i := range n {
			r := reps[(start+i)%n]
			if skip[r] {
				continue
			}
			if r.acquire(sickToo) {
				return r, true
			}
		}
	}
	return nil, false
}

// Scale starts or drains and stops replicas until there are n.
func (g *Group) Scale(ctx context.Context, n int) {
	g.mu.Lock()
	for len(g.replicas) < n {
		g.addLocked()
	}
	var gone []*Replica
	if len(g.replicas) > n {
		gone = append(gone, g.replicas[n:]...)
		g.replicas = g.replicas[:n:n]
	}
	g.mu.Unlock()
	g.stopAll(ctx, gone)
}

// Stop drains every replica (waiting at most drain for requests in flight) and
// stops the processes. It may be called more than once.
func (g *Group) Stop(ctx context.Context, drain time.Duration) {
	g.mu.Lock()
	gone := g.replicas
	g.replicas = nil
	g.mu.Unlock()
	g.stopAllWithin(ctx, gone, drain)
}

func (g *Group) stopAll(ctx context.Context, reps []*Replica) {
	g.stopAllWithin(ctx, reps, g.opts.StopGrace)
}

func (g *Group) stopAllWithin(ctx context.Context, reps []*Replica, drain time.Duration) {
	var wg sync.WaitGroup
	for _, r := range reps {
		wg.Go(func() { r.drainAndStop(ctx, drain) })
	}
	wg.Wait()
}
