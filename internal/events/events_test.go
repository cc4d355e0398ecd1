package events

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/testenv"
)

func TestPublishReadResumeAndTerminal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := testenv.Redis(t)
	s := New(rdb, Config{DoneTTL: time.Minute})
	id := job.NewID()
	t.Cleanup(func() { rdb.Del(context.Background(), Key(id), CancelKey(id)) })

	now := time.Now().UTC()
	first, err := s.PublishState(ctx, &job.Job{ID: id, State: job.Queued, Attempt: 1, UpdatedAt: now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Publish(ctx, id, TypeProgress, Progress{Progress: 0.5, Message: "half", At: now}); err != nil {
		t.Fatal(err)
	}
	if ttl := rdb.PTTL(ctx, Key(id)).Val(); ttl < time.Hour {
		t.Fatalf("active stream ttl %v, want ~24h", ttl)
	}
	all, err := s.Read(ctx, id, "", 10, 0)
	if err != nil || len(all) != 2 || all[0].ID != first || all[1].Type != TypeProgress || all[0].Terminal() {
		t.Fatalf("read all: %+v %v", all, err)
	}
	var p Progress
	if err := json.Unmarshal(all[1].Data, &p); err != nil || p.Progress != 0.5 {
		t.Fatalf("progress data %s", all[1].Data)
	}

	// A blocked reader after the last event is woken by the terminal event.
	got := make(chan []Event, 1)
	go func() {
		evs, err := s.Read(ctx, id, all[1].ID, 10, 5*time.Second)
		if err != nil {
			t.Error(err)
		}
		got <- evs
	}()
	time.Sleep(100 * time.Millisecond)
	if _, err := s.PublishState(ctx, &job.Job{ID: id, State: job.Succeeded, Attempt: 1, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	select {
	case evs := <-got:
		if len(evs) != 1 || !evs[0].Terminal() {
			t.Fatalf("woken with %+v", evs)
		}
	case <-time.After(6 * time.Second):
		t.Fatal("blocked reader not woken")
	}
	if ttl := rdb.PTTL(ctx, Key(id)).Val(); ttl > time.Minute || ttl <= 0 {
		t.Fatalf("finished stream ttl %v, want ≤ DoneTTL", ttl)
	}
	if evs, err := s.Read(ctx, id, "", 10, 0); err != nil || len(evs) != 3 {
		t.Fatalf("replay: %d %v", len(evs), err)
	}
	if evs, err := s.Read(ctx, job.NewID(), "", 10, 0); err != nil || evs != nil {
		t.Fatalf("unknown job: %+v %v", evs, err)
	}
}

func TestCancelRequests(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := testenv.Redis(t)
	s := New(rdb, Config{})
	a, b := job.NewID(), job.NewID()
	t.Cleanup(func() { rdb.Del(context.Background(), CancelKey(a)) })
	if err := s.RequestCancel(ctx, a); err != nil {
		t.Fatal(err)
	}
	got, err := s.CancelRequested(ctx, a, b)
	if err != nil || !got[a] || got[b] || len(got) != 1 {
		t.Fatalf("cancel requested: %v %v", got, err)
	}
}

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{"1-0": true, "1700000000000-12": true, "": false, "1": false, "a-b": false, "1-0x": false, "01-0": false, "-1-0": false} {
		if ValidID(id) != want {
			t.Errorf("ValidID(%q) = %v", id, !want)
		}
	}
}
