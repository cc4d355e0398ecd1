package testwait

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// recorder is a TB that keeps the failure instead of stopping the test.
type recorder struct{ failed string }

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
}

func TestEventuallyReturnsOnceTheConditionHolds(t *testing.T) {
	var n atomic.Int32
	go func() {
		for range 3 {
			n.Add(1)
		}
	}()
	r := &recorder{}
	Eventually(r, 10*time.Second, func() bool { return n.Load() == 3 }, "three increments")
	if r.failed != "" {
		t.Fatalf("failed: %s", r.failed)
	}
}

func TestEventuallyFailsNamingWhatWasAwaited(t *testing.T) {
	r := &recorder{}
	calls := 0
	Eventually(r, 30*time.Millisecond, func() bool { calls++; return false }, "job %s done", "j1")
	if !strings.Contains(r.failed, "job j1 done") || !strings.Contains(r.failed, "30ms") {
		t.Fatalf("failure %q does not name the wait", r.failed)
	}
	if calls < 2 {
		t.Fatalf("condition checked %d times, want at least 2 (once at once, again after an interval)", calls)
	}
}

func TestPollChecksAtOnce(t *testing.T) {
	if !Poll(0, func() bool { return true }) {
		t.Fatal("a condition true at once was not seen with no time to wait")
	}
	if Poll(0, func() bool { return false }) {
		t.Fatal("a false condition reported true")
	}
}

func TestReceive(t *testing.T) {
	ch := make(chan int, 1)
	ch <- 7
	r := &recorder{}
	if v := Receive(r, ch, time.Second, "a value"); v != 7 || r.failed != "" {
		t.Fatalf("got %d, failure %q", v, r.failed)
	}
	if Receive(r, ch, 20*time.Millisecond, "value %d", 2); !strings.Contains(r.failed, "value 2") {
		t.Fatalf("an empty channel's wait failed with %q", r.failed)
	}
	close(ch)
	r = &recorder{}
	if Receive(r, ch, time.Second, "after close"); !strings.Contains(r.failed, "channel closed: after close") {
		t.Fatalf("a closed channel failed with %q", r.failed)
	}
}
