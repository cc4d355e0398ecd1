package router

import (
	"encoding/json"
	"testing"

	"github.com/aigw/aigw/internal/events"
)

// TestEventsResumeAfterTrimSaysGap: a resume whose Last-Event-ID the stream's
// cap has trimmed away starts with `event: gap` (no id) naming the oldest
// event kept, then goes on from that event.
func TestEventsResumeAfterTrimSaysGap(t *testing.T) {
	t.Parallel()
	e := setup(t, testConfig())
	e.register(t)
	j := e.submit(t, `{"input":{"message":"hi"}}`)
	queued, err := e.events.Read(e.ctx, j.ID, "", 1, 0)
	if err != nil || len(queued) != 1 {
		t.Fatalf("queued event: %+v %v", queued, err)
	}
	// A small cap, so 350 events trim the stream (whole nodes of 100).
	small := events.New(e.rdb, events.Config{MaxLen: 10})
	for i := range 350 {
		if _, err := small.Publish(e.ctx, j.ID, events.TypeProgress, events.Progress{Progress: float64(i) / 350}); err != nil {
			t.Fatal(err)
		}
	}
	kept, err := e.events.Read(e.ctx, j.ID, "", 1, 0)
	if err != nil || len(kept) != 1 || kept[0].ID == queued[0].ID {
		t.Fatalf("the stream was not trimmed: %+v %v", kept, err)
	}

	s := e.openEvents(t, j.ID, queued[0].ID)
	defer s.resp.Body.Close()
	gap := s.nextEvent(t)
	var g events.Gap
	if gap.event != "gap" || gap.id != "" || json.Unmarshal([]byte(gap.data), &g) != nil {
		t.Fatalf("first event %+v, want an id-less gap event", gap)
	}
	if g.After != queued[0].ID || g.FirstID != kept[0].ID || g.Dropped <= 0 {
		t.Fatalf("gap %+v, want after %s, first %s", g, queued[0].ID, kept[0].ID)
	}
	if next := s.nextEvent(t); next.id != kept[0].ID || next.event != string(events.TypeProgress) {
		t.Fatalf("after the gap: %+v, want event %s", next, kept[0].ID)
	}
}
