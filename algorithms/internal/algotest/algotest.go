// Package algotest holds checks shared by the reference algorithms' tests.
package algotest

import (
	"bufio"
	"encoding/json"
	"strings"
	"testing"
)

// CheckProgress checks that every line of an algorithm's stderr is a progress
// event ({"progress": p, "message": m} with p in [0, 1] and a message), that
// there are at least two, and that the last one says 1.
func CheckProgress(t testing.TB, stderr string) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(stderr))
	n, last := 0, -1.0
	for sc.Scan() {
		var ev struct {
			Progress *float64 `json:"progress"`
			Message  string   `json:"message"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev.Progress == nil || ev.Message == "" {
			t.Fatalf("stderr line %q is not a progress event", sc.Text())
		}
		if *ev.Progress < 0 || *ev.Progress > 1 {
			t.Fatalf("progress %v out of range", *ev.Progress)
		}
		n, last = n+1, *ev.Progress
	}
	if n < 2 || last != 1 {
		t.Fatalf("%d progress lines, the last at %v:\n%s", n, last, stderr)
	}
}
