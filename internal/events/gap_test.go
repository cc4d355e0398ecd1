package events

import (
	"context"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/testenv"
)

// TestReadResumeTellsOfTrimmedEvents: a resume after an event the cap
// trimmed away (or from the start of a trimmed stream) gets a Gap naming the
// oldest event kept and the events from there; a resume within what is kept,
// or on a stream never trimmed, gets none.
func TestReadResumeTellsOfTrimmedEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := testenv.Redis(t)
	s := New(rdb, Config{MaxLen: 10})
	id, whole := job.NewID(), job.NewID()
	t.Cleanup(func() { rdb.Del(context.Background(), Key(id), Key(whole)) })

	// Approximate trimming drops whole stream nodes (100 entries each by
	// default): 350 events leave a trimmed stream.
	const n = 350
	ids := make([]string, n)
	for i := range ids {
		var err error
		if ids[i], err = s.Publish(ctx, id, TypeProgress, Progress{Progress: float64(i) / n, At: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	kept, err := s.Read(ctx, id, "", n, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(kept) == 0 || len(kept) >= n {
		t.Fatalf("kept %d of %d events: the stream was not trimmed", len(kept), n)
	}
	first := kept[0].ID
	for _, after := range []string{ids[0], "", "0", "0-1"} {
		evs, gap, err := s.ReadResume(ctx, id, after, 5)
		if err != nil {
			t.Fatal(err)
		}
		if gap == nil || gap.FirstID != first || gap.Dropped != int64(n-len(kept)) {
			t.Fatalf("after %q: gap %+v, want first %s, %d dropped", after, gap, first, n-len(kept))
		}
		if len(evs) != 5 || evs[0].ID != first {
			t.Fatalf("after %q: events %+v, want 5 from %s", after, evs, first)
		}
	}
	for _, after := range []string{first, kept[1].ID, ids[n-1]} {
		evs, gap, err := s.ReadResume(ctx, id, after, 5)
		if err != nil || gap != nil {
			t.Fatalf("after %s (kept): gap %+v, %v", after, gap, err)
		}
		if after != ids[n-1] && (len(evs) == 0 || compareIDs(evs[0].ID, after) <= 0) {
			t.Fatalf("after %s: events %+v", after, evs)
		}
	}

	// Never trimmed: no gap, even from the start; no stream: neither.
	one, err := s.Publish(ctx, whole, TypeProgress, Progress{Progress: 1, At: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	for _, after := range []string{"", "0-1"} {
		evs, gap, err := s.ReadResume(ctx, whole, after, 5)
		if err != nil || gap != nil || len(evs) != 1 || evs[0].ID != one {
			t.Fatalf("untrimmed after %q: %+v %+v %v", after, evs, gap, err)
		}
	}
	evs, gap, err := s.ReadResume(ctx, job.NewID(), "1-0", 5)
	if err != nil || gap != nil || len(evs) != 0 {
		t.Fatalf("no stream: %+v %+v %v", evs, gap, err)
	}
}

func TestCompareIDs(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"1-0", "1-0", 0}, {"1-1", "1-0", 1}, {"9-0", "10-0", -1}, {"0", "0-1", -1}, {"", "1-0", -1}, {"1700000000000-5", "1700000000000-12", -1},
	} {
		if got := compareIDs(c.a, c.b); got != c.want {
			t.Errorf("compareIDs(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}
