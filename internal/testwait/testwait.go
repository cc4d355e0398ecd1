// Package testwait is how tests wait for something that happens on its own
// time (a goroutine, a server, a TTL): poll a condition, or receive from a
// channel, up to a deadline generous enough for a loaded machine, and fail the
// test with a message naming what did not happen. Tests use it instead of
// deadline loops of their own and instead of sleeping for a guess.
package testwait

import (
	"fmt"
	"time"
)

// Interval is how often Eventually checks its condition.
const Interval = 20 * time.Millisecond

// TB is the part of testing.TB the waiters use.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// Eventually checks cond every Interval, at once first, until it returns true,
// and fails the test (t.Fatalf, so call it from the test's goroutine) when
// timeout passes first, with format and args saying what was awaited. cond runs
// on the caller's goroutine and may use t.
func Eventually(t TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	if !Poll(timeout, cond) {
		t.Fatalf("not within %s: %s", timeout, fmt.Sprintf(format, args...))
	}
}

// Poll checks cond every Interval, at once first, until it returns true or
// timeout passes, and reports whether it did. For conditions whose failure the
// caller reports itself.
func Poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if !time.Now().Before(deadline) {
			return false
		}
		time.Sleep(Interval)
	}
}

// Receive returns the next value from ch, and fails the test when none comes
// within timeout or ch is closed, with format and args saying what was awaited.
func Receive[T any](t TB, ch <-chan T, timeout time.Duration, format string, args ...any) T {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case v, ok := <-ch:
		if !ok {
			t.Fatalf("channel closed: %s", fmt.Sprintf(format, args...))
		}
		return v
	case <-timer.C:
		t.Fatalf("not within %s: %s", timeout, fmt.Sprintf(format, args...))
	}
	var zero T
	return zero
}
