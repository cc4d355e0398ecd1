// Package testlog is the logger of tests: slog's text format written to the
// test's log (t.Log), so a component's logs show with the test that ran it,
// and only when it fails or runs with -v. A record written after the test has
// ended (a goroutine still stopping) is dropped rather than panicking: the
// writer stops at the cleanup it registers when made, which runs after every
// cleanup registered later (such as the one stopping the component).
package testlog

import (
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// New returns a logger at debug level that writes to t.Log.
func New(t testing.TB) *slog.Logger { return AtLevel(t, slog.LevelDebug) }

// AtLevel returns a logger that writes records at level and above to t.Log.
func AtLevel(t testing.TB, level slog.Leveler) *slog.Logger {
	return slog.New(slog.NewTextHandler(Writer(t), &slog.HandlerOptions{Level: level}))
}

// Writer is an io.Writer that logs each write as one t.Log line (a trailing
// newline dropped), for loggers other than slog and for processes' output.
func Writer(t testing.TB) io.Writer {
	w := &writer{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.done = true
	})
	return w
}

type writer struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}
