package procs

import (
	"bytes"
	"sync"
	"time"

	"github.com/openfaas/faas-provider/logs"
)

// LogRing keeps the last lines a function's processes printed, for /system/logs,
// and hands new lines to followers.
type LogRing struct {
	name string
	mu   sync.Mutex
	buf  []logs.Message
	next int // index of the oldest line once the ring is full
	full bool
	subs map[chan logs.Message]struct{}
}

// NewLogRing returns a ring of size lines for the function name.
func NewLogRing(name string, size int) *LogRing {
	return &LogRing{name: name, buf: make([]logs.Message, 0, size), subs: map[chan logs.Message]struct{}{}}
}

// Append records one line. Followers that do not keep up lose lines rather than
// block the function's output.
func (l *LogRing) Append(instance, text string) {
	m := logs.Message{Name: l.name, Namespace: Namespace, Instance: instance, Timestamp: time.Now().UTC(), Text: text}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) < cap(l.buf) {
		l.buf = append(l.buf, m)
	} else {
		l.buf[l.next] = m
		l.next = (l.next + 1) % len(l.buf)
		l.full = true
	}
	for ch := range l.subs {
		select {
		case ch <- m:
		default:
		}
	}
}

// Snapshot returns the kept lines, oldest first, newer than since (zero: all),
// at most tail of them (0: all).
func (l *LogRing) Snapshot(since time.Time, tail int) []logs.Message {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.snapshotLocked(since, tail)
}

func (l *LogRing) snapshotLocked(since time.Time, tail int) []logs.Message {
	all := make([]logs.Message, 0, len(l.buf))
	all = append(all, l.buf[l.next:]...)
	all = append(all, l.buf[:l.next]...)
	out := all[:0]
	for _, m := range all {
		if since.IsZero() || m.Timestamp.After(since) {
			out = append(out, m)
		}
	}
	if tail > 0 && len(out) > tail {
		out = out[len(out)-tail:]
	}
	return out
}

// Follow returns the kept lines (as Snapshot) and a channel of the lines that
// follow, atomically; cancel unsubscribes.
func (l *LogRing) Follow(since time.Time, tail int) (past []logs.Message, next <-chan logs.Message, cancel func()) {
	ch := make(chan logs.Message, 256)
	l.mu.Lock()
	past = l.snapshotLocked(since, tail)
	l.subs[ch] = struct{}{}
	l.mu.Unlock()
	return past, ch, func() {
		l.mu.Lock()
		delete(l.subs, ch)
		l.mu.Unlock()
	}
}

// lineWriter splits a process's output into lines for the ring.
type lineWriter struct {
	ring     *LogRing
	instance string
	mu       sync.Mutex
	partial  []byte
}

const maxLine = 64 << 10

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.partial = append(w.partial, p...)
			if len(w.partial) >= maxLine {
				w.flushLocked()
			}
			break
		}
		w.partial = append(w.partial, p[:i]...)
		w.flushLocked()
		p = p[i+1:]
	}
	return n, nil
}

func (w *lineWriter) flushLocked() {
	w.ring.Append(w.instance, string(bytes.TrimRight(w.partial, "\r")))
	w.partial = w.partial[:0]
}

// Close flushes an unterminated last line.
func (w *lineWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.partial) > 0 {
		w.flushLocked()
	}
	return nil
}
