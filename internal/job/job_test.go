package job

import (
	"errors"
	"os"
	"sort"
	"strings"
	"testing"
	"time"
)

// Every pair of states is checked against the expected table, written out here
// independently of the implementation.
func TestTransitionTableCoversEveryState(t *testing.T) {
	allowed := map[[2]State]bool{
		{Queued, Running}: true, {Queued, Canceled}: true, {Queued, Expired}: true, {Queued, Failed}: true,
		{Running, Succeeded}: true, {Running, Failed}: true, {Running, Canceled}: true, {Running, Queued}: true,
		{Failed, Queued}: true, {Expired, Queued}: true,
	}
	for _, from := range States() {
		if _, ok := transitions[from]; !ok {
			t.Errorf("state %q is missing from the transition table", from)
		}
		for _, to := range States() {
			want := allowed[[2]State{from, to}]
			if got := CanTransition(from, to); got != want {
				t.Errorf("CanTransition(%q, %q) = %v, want %v", from, to, got, want)
			}
			err := CheckTransition(from, to)
			if want && err != nil {
				t.Errorf("CheckTransition(%q, %q) = %v, want nil", from, to, err)
			}
			if !want {
				var ite *InvalidTransitionError
				if !errors.Is(err, ErrInvalidTransition) || !errors.As(err, &ite) || ite.From != from || ite.To != to {
					t.Errorf("CheckTransition(%q, %q) = %v, want *InvalidTransitionError", from, to, err)
				}
			}
		}
	}
	if len(transitions) != len(States()) {
		t.Errorf("table has %d states, want %d", len(transitions), len(States()))
	}
}

func TestTerminalStatesLeaveOnlyByManualRetry(t *testing.T) {
	for _, s := range States() {
		if !s.Terminal() {
			continue
		}
		for _, to := range Next(s) {
			if to != Queued {
				t.Errorf("terminal %q may go to %q; only a manual retry (queued) may leave a terminal state", s, to)
			}
		}
	}
	if Queued.Terminal() || Running.Terminal() {
		t.Error("queued and running must not be terminal")
	}
}

func TestInvalidTransitionMessageNamesTheWayOut(t *testing.T) {
	err := CheckTransition(Succeeded, Running)
	if want := `job cannot go from "succeeded" to "running" ("succeeded" is final)`; err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}
	err = CheckTransition(Queued, Succeeded)
	if want := `job cannot go from "queued" to "succeeded" (allowed from "queued": [running canceled expired failed])`; err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}
	if err := CheckTransition("bogus", Running); !errors.Is(err, ErrInvalidTransition) {
		t.Errorf("unknown from-state: got %v", err)
	}
}

func TestParseState(t *testing.T) {
	for _, s := range States() {
		got, err := ParseState(string(s))
		if err != nil || got != s {
			t.Errorf("ParseState(%q) = %q, %v", s, got, err)
		}
	}
	for _, bad := range []string{"", "Queued", "done", "running "} {
		if _, err := ParseState(bad); err == nil {
			t.Errorf("ParseState(%q) accepted", bad)
		}
	}
}

func TestParsePriority(t *testing.T) {
	cases := map[string]Priority{"": Normal, "high": High, "normal": Normal, "low": Low}
	for in, want := range cases {
		if got, err := ParsePriority(in); err != nil || got != want {
			t.Errorf("ParsePriority(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParsePriority("urgent"); err == nil {
		t.Error("ParsePriority(urgent) accepted")
	}
}

func TestIDsSortByCreation(t *testing.T) {
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = NewID()
	}
	if !sort.StringsAreSorted(ids) {
		t.Fatal("ids made in sequence do not sort in sequence")
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] || !ValidID(id) {
			t.Fatalf("id %q duplicated or invalid", id)
		}
		seen[id] = true
	}
	early := NewIDAt(time.Now().Add(-time.Hour))
	if early >= ids[0] {
		t.Errorf("an id from an hour ago (%s) sorts after a new one (%s)", early, ids[0])
	}
	for _, bad := range []string{"", "x", "01ARZ3NDEKTSV4RRFFQ69G5FA", "../../etc/passwd"} {
		if ValidID(bad) {
			t.Errorf("ValidID(%q) = true", bad)
		}
	}
}

func TestDispatchHint(t *testing.T) {
	hook := func(events ...string) *Webhook { return &Webhook{URL: "https://example.com/h", Events: events} }
	for _, c := range []struct {
		name string
		j    Job
		want string
	}{
		{"plain", Job{Algorithm: "echo", Version: "1.0.0"}, "echo@1.0.0"},
		{"gang of 1", Job{Algorithm: "echo", Version: "1.0.0", GangSize: 1}, "echo@1.0.0"},
		{"terminal webhook", Job{Algorithm: "echo", Version: "1.0.0", Webhook: hook()}, "echo@1.0.0"},
		{"gang", Job{Algorithm: "echo", Version: "1.0.0", GangSize: 2}, ""},
		{"running webhook", Job{Algorithm: "echo", Version: "1.0.0", Webhook: hook("running")}, ""},
		{"no version", Job{Algorithm: "echo"}, ""},
	} {
		got := c.j.DispatchHint()
		if got != c.want {
			t.Errorf("%s: hint %q, want %q", c.name, got, c.want)
			continue
		}
		name, version, ok := ParseDispatchHint(got)
		if ok != (c.want != "") || (ok && (name != c.j.Algorithm || version != c.j.Version)) {
			t.Errorf("%s: parsed %q %q %v", c.name, name, version, ok)
		}
	}
	for _, bad := range []string{"", "echo", "@1", "echo@"} {
		if _, _, ok := ParseDispatchHint(bad); ok {
			t.Errorf("%q parsed as a hint", bad)
		}
	}
}

// The drawn state machine (docs/state_machine.md) has exactly the table's arrows.
func TestStateMachinePictureMatchesTable(t *testing.T) {
	doc, err := os.ReadFile("../../docs/state_machine.md")
	if err != nil {
		t.Fatal(err)
	}
	drawn := map[[2]State]bool{}
	for _, line := range strings.Split(string(doc), "\n") {
		from, rest, ok := strings.Cut(strings.TrimSpace(line), " --> ")
		if !ok {
			continue
		}
		to, _, _ := strings.Cut(rest, ":")
		f, t2 := State(strings.TrimSpace(from)), State(strings.TrimSpace(to))
		if !f.Valid() || !t2.Valid() {
			continue // [*] arrows
		}
		drawn[[2]State{f, t2}] = true
	}
	for _, from := range States() {
		for _, to := range States() {
			if got, want := drawn[[2]State{from, to}], CanTransition(from, to); got != want {
				t.Errorf("docs/state_machine.md draws %s --> %s: %v, the table allows it: %v", from, to, got, want)
			}
		}
	}
}
