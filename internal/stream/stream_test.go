package stream

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aigw/aigw/internal/testenv"
	"github.com/aigw/aigw/internal/testwait"
)

func setup(t *testing.T) (context.Context, redis.UniversalClient, Group) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	rdb := testenv.Redis(t)
	g := Group{Stream: "aigw:{" + testenv.UniqueName(t, 40) + "}:s", Name: "g"}
	t.Cleanup(func() { _ = rdb.Del(context.Background(), g.Stream).Err() })
	if err := g.Create(ctx, rdb); err != nil {
		t.Fatal(err)
	}
	if err := g.Create(ctx, rdb); err != nil {
		t.Fatalf("creating an existing group: %v", err)
	}
	return ctx, rdb, g
}

func add(t *testing.T, ctx context.Context, rdb redis.UniversalClient, g Group, v string) string {
	t.Helper()
	id, err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: g.Stream, Values: []any{"v", v}}).Result()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestReadRecoversLostStream: after the stream is deleted (a failover that lost
// it) and a producer re-creates it with XADD, without the group, Read creates the
// group again and delivers what was added since.
func TestReadRecoversLostStream(t *testing.T) {
	t.Parallel()
	ctx, rdb, g := setup(t)
	if err := rdb.Del(ctx, g.Stream).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: g.Name, Consumer: "c", Streams: []string{g.Stream, ">"}, Block: -1}).Result(); !Lost(err) {
		t.Fatalf("plain read of a lost stream: %v, want NOGROUP", err)
	}
	id := add(t, ctx, rdb, g, "after")
	msgs, err := g.Read(ctx, rdb, "c", ">", 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || msgs[0].ID != id || msgs[0].Values["v"] != "after" {
		t.Fatalf("read after the loss: %+v, want entry %s", msgs, id)
	}
	// Delivered to c: pending, and not delivered again.
	if again, err := g.Read(ctx, rdb, "c", ">", 10, 0); err != nil || len(again) != 0 {
		t.Fatalf("second read: %+v %v", again, err)
	}
	if own, err := g.Read(ctx, rdb, "c", "0", 10, 0); err != nil || len(own) != 1 || own[0].ID != id {
		t.Fatalf("own pending: %+v %v", own, err)
	}
}

// TestBlockedReadSurvivesDelete: a read blocked when its stream is deleted is
// woken with an error (UNBLOCKED), creates the group again and goes on waiting, so an entry
// added afterwards reaches it.
func TestBlockedReadSurvivesDelete(t *testing.T) {
	t.Parallel()
	ctx, rdb, g := setup(t)
	type result struct {
		msgs []redis.XMessage
		err  error
	}
	done := make(chan result, 1)
	go func() {
		msgs, err := g.Read(ctx, rdb, "c", ">", 1, 2*time.Second)
		done <- result{msgs, err}
	}()
	// The read is usually blocked by now (UNBLOCKED); if not yet, it meets the
	// lost stream when it starts (NOGROUP). Either way it must recover.
	time.Sleep(300 * time.Millisecond)
	if err := rdb.Del(ctx, g.Stream).Err(); err != nil {
		t.Fatal(err)
	}
	testwait.Eventually(t, 10*time.Second, func() bool {
		groups, err := rdb.XInfoGroups(ctx, g.Stream).Result()
		return err == nil && len(groups) == 1
	}, "the group created again")
	id := add(t, ctx, rdb, g, "late")
	r := testwait.Receive(t, done, 10*time.Second, "the blocked read's result")
	if r.err != nil || len(r.msgs) != 1 || r.msgs[0].ID != id {
		t.Fatalf("blocked read: %+v %v, want entry %s", r.msgs, r.err, id)
	}
}

// TestReclaim: entries idle longer than minIdle move to the claiming consumer; a
// lost stream is created again and has nothing to reclaim.
func TestReclaim(t *testing.T) {
	t.Parallel()
	ctx, rdb, g := setup(t)
	id := add(t, ctx, rdb, g, "x")
	if msgs, err := g.Read(ctx, rdb, "dead", ">", 10, 0); err != nil || len(msgs) != 1 {
		t.Fatalf("read: %+v %v", msgs, err)
	}
	if msgs, _, err := g.Reclaim(ctx, rdb, "live", time.Hour, "0-0", 10); err != nil || len(msgs) != 0 {
		t.Fatalf("reclaim of a fresh entry: %+v %v", msgs, err)
	}
	time.Sleep(20 * time.Millisecond)
	msgs, next, err := g.Reclaim(ctx, rdb, "live", 10*time.Millisecond, "0-0", 10)
	if err != nil || len(msgs) != 1 || msgs[0].ID != id || next != "0-0" {
		t.Fatalf("reclaim: %+v next %q %v", msgs, next, err)
	}
	if err := rdb.Del(ctx, g.Stream).Err(); err != nil {
		t.Fatal(err)
	}
	if msgs, _, err := g.Reclaim(ctx, rdb, "live", 0, "0-0", 10); err != nil || len(msgs) != 0 {
		t.Fatalf("reclaim on a lost stream: %+v %v", msgs, err)
	}
	if n, err := rdb.Exists(ctx, g.Stream).Result(); err != nil || n != 1 {
		t.Fatalf("stream after reclaim on a lost one: exists %d %v", n, err)
	}
}

func TestBlock(t *testing.T) {
	for in, want := range map[time.Duration]time.Duration{
		0: -1, -5: -1, time.Microsecond: time.Millisecond, time.Second: time.Second,
	} {
		if got := Block(in); got != want {
			t.Errorf("Block(%v) = %v, want %v", in, got, want)
		}
	}
}

func TestLost(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("NOGROUP No such key 'k' or consumer group 'g'"), true},
		{errors.New("UNBLOCKED the stream key no longer exists"), true},
		{errors.New("BUSYGROUP Consumer Group name already exists"), false},
		{redis.Nil, false},
	} {
		if got := Lost(c.err); got != c.want {
			t.Errorf("Lost(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
