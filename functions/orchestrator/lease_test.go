package orchestrator

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/testwait"
)

// A tick whose holder died mid-cycle (a restart, a failover) must not block
// the ticks after it for long: before the lease, its lock lived 2 minutes.
func TestTickRunsSoonAfterAHolderDiedMidCycle(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if ttl := b.svc.ticker.lease.ttl; ttl > 15*time.Second {
		t.Fatalf("default lease TTL = %s: a dead holder would stop the orchestrator that long", ttl)
	}
	// A holder that took the lease and died: it never renews nor releases.
	if _, ok, err := b.svc.ticker.lease.acquire(b.ctx); err != nil || !ok {
		t.Fatalf("acquire: %v %v", ok, err)
	}
	died := time.Now()
	if s, err := b.svc.Tick(b.ctx); err != nil || !s.Skipped {
		t.Fatalf("tick under a live lease = %+v, %v", s, err)
	}
	testwait.Eventually(t, 30*time.Second, func() bool {
		s, err := b.svc.Tick(b.ctx)
		if err != nil {
			t.Fatal(err)
		}
		return !s.Skipped
	}, "a tick that runs after the holder died (ticks still skipped)")
	t.Logf("a tick ran %s after the holder died", time.Since(died).Round(100*time.Millisecond))
}

// A holder that keeps working keeps its short lease; released, it is free.
func TestTickLeaseRenewedWhileWorkingAndReleased(t *testing.T) {
	t.Parallel()
	b := setup(t)
	l := b.svc.ticker.lease
	l.ttl = 300 * time.Millisecond
	h, ok, err := l.acquire(b.ctx)
	if err != nil || !ok {
		t.Fatalf("acquire: %v %v", ok, err)
	}
	ctx, lose := context.WithCancelCause(b.ctx)
	kept := make(chan struct{})
	go func() { defer close(kept); h.keep(ctx, lose) }()
	time.Sleep(5 * l.ttl)
	if context.Cause(ctx) != nil {
		t.Fatalf("lease lost while renewed: %v", context.Cause(ctx))
	}
	if got := b.rdb.Get(b.ctx, l.key).Val(); got != h.token {
		t.Fatalf("lease key = %q after %s, want the holder's token", got, 5*l.ttl)
	}
	if _, ok, err := l.acquire(b.ctx); err != nil || ok {
		t.Fatalf("a second holder acquired a renewed lease: %v %v", ok, err)
	}
	lose(nil)
	<-kept
	if err := h.release(b.ctx); err != nil {
		t.Fatal(err)
	}
	if n := b.rdb.Exists(b.ctx, l.key).Val(); n != 0 {
		t.Fatal("lease key still there after release")
	}
}

// A holder whose lease was taken over stops its work and neither renews
// nor frees the new holder's lease.
func TestTickLeaseFencesAHolderThatLostIt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	l := b.svc.ticker.lease
	l.ttl = 300 * time.Millisecond
	h, ok, err := l.acquire(b.ctx)
	if err != nil || !ok {
		t.Fatalf("acquire: %v %v", ok, err)
	}
	// The lease lapsed (e.g. its master failed over) and another took it.
	if err := b.rdb.Set(b.ctx, l.key, "another-holder", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	ctx, lose := context.WithCancelCause(b.ctx)
	done := make(chan struct{})
	go func() { defer close(done); h.keep(ctx, lose) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("keep still running after its lease was taken")
	}
	if cause := context.Cause(ctx); !errors.Is(cause, errLeaseLost) {
		t.Fatalf("work context cause = %v, want %v", cause, errLeaseLost)
	}
	if ours, err := h.renew(b.ctx); err != nil || ours {
		t.Fatalf("renew of a lost lease = %v, %v", ours, err)
	}
	if err := h.release(b.ctx); err != nil {
		t.Fatal(err)
	}
	if got := b.rdb.Get(b.ctx, l.key).Val(); got != "another-holder" {
		t.Fatalf("lease key = %q: the old holder touched the new holder's lease", got)
	}
}

// RunTicker ended by shutdown leaves the lease free for the next process.
func TestRunTickerReleasesTheLeaseOnShutdown(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithCancel(b.ctx)
	stopped := make(chan struct{})
	go func() { defer close(stopped); b.svc.RunTicker(ctx, 20*time.Millisecond) }()
	// Stop it while it ticks: wait for a lease to be held, then cancel.
	testwait.Eventually(t, 30*time.Second, func() bool {
		return b.rdb.Exists(b.ctx, b.svc.ticker.lease.key).Val() != 0
	}, "a tick that takes the lease")
	cancel()
	<-stopped
	if n := b.rdb.Exists(b.ctx, b.svc.ticker.lease.key).Val(); n != 0 {
		t.Fatal("lease still held after RunTicker returned")
	}
}
