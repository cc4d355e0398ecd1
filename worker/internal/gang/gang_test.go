package gang

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/testenv"
)

func newGang(t *testing.T) (*Gang, context.Context) {
	t.Helper()
	rdb := testenv.Redis(t)
	g := New(rdb, testenv.UniqueName(t, 40))
	ctx := context.Background()
	t.Cleanup(func() { _ = rdb.Del(context.Background(), g.freeKey(), g.resKey()).Err() })
	return g, ctx
}

// free returns the recorded free slots by node.
func (g *Gang) free(t *testing.T, ctx context.Context) map[string]string {
	t.Helper()
	m, err := g.rdb.HGetAll(ctx, g.freeKey()).Result()
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range m {
		m[k], _, _ = strings.Cut(v, "|")
	}
	return m
}

func publish(t *testing.T, ctx context.Context, g *Gang, frees map[string]int) {
	t.Helper()
	for node, n := range frees {
		if err := g.Publish(ctx, node, n, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
}

func request(job, leader string, size int) Request {
	return Request{JobID: job, Attempt: 1, Size: size, Leader: leader, Held: 1, Addr: "10.0.0.1", Port: 29500, TTL: time.Minute}
}

func TestReserveIsAllOrNothing(t *testing.T) {
	t.Parallel()
	g, ctx := newGang(t)
	publish(t, ctx, g, map[string]int{"w2": 2, "w3": 1})
	before := g.free(t, ctx)

	// 1 held by the leader + 2 + 1 free elsewhere: 5 cannot be had.
	r, err := g.Reserve(ctx, request("big", "w1", 5))
	if err != nil || r != nil {
		t.Fatalf("reserve 5 of 4: %+v %v", r, err)
	}
	if after := g.free(t, ctx); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("a refused reservation changed the free slots: %v → %v", before, after)
	}
	if rs, _ := g.Reservations(ctx); len(rs) != 0 {
		t.Fatalf("a refused reservation left %+v", rs)
	}

	r, err = g.Reserve(ctx, request("fits", "w1", 4))
	if err != nil || r == nil {
		t.Fatalf("reserve 4 of 4: %+v %v", r, err)
	}
	var nodes []string
	for i, m := range r.Members {
		if m.Rank != i {
			t.Fatalf("members %+v", r.Members)
		}
		nodes = append(nodes, fmt.Sprintf("%s:%v", m.Node, m.Started))
	}
	// The leader is rank 0 (started: it holds the delivery), then the node
	// with most free slots.
	if got := strings.Join(nodes, " "); got != "w1:true w2:false w2:false w3:false" {
		t.Fatalf("members %s", got)
	}
	if r.State != Pending || r.Size != 4 || r.Addr != "10.0.0.1" || r.Port != 29500 || r.Leader != "w1" {
		t.Fatalf("reservation %+v", r)
	}
	if f := g.free(t, ctx); f["w2"] != "0" || f["w3"] != "0" {
		t.Fatalf("free after reserving: %v", f)
	}
	// Reserving again for the same job returns the same reservation.
	again, err := g.Reserve(ctx, request("fits", "w1", 4))
	if err != nil || again == nil || fmt.Sprint(again.Members) != fmt.Sprint(r.Members) {
		t.Fatalf("reserve again: %+v %v", again, err)
	}
	// Nothing is left for another gang.
	if r2, err := g.Reserve(ctx, request("other", "w9", 2)); err != nil || r2 != nil {
		t.Fatalf("second gang: %+v %v", r2, err)
	}
}

func TestPublishCountsUnstartedMembersAsTaken(t *testing.T) {
	t.Parallel()
	g, ctx := newGang(t)
	publish(t, ctx, g, map[string]int{"w2": 3})
	if _, err := g.Reserve(ctx, request("j", "w1", 3)); err != nil {
		t.Fatal(err)
	}
	// w2 still has 3 free by its own count, 2 of them reserved.
	publish(t, ctx, g, map[string]int{"w2": 3})
	if f := g.free(t, ctx); f["w2"] != "1" {
		t.Fatalf("free %v, want w2 1", f)
	}
	// A member started: it is the worker's busy slot now, no longer pending.
	if r, err := g.Start(ctx, "j", 1, "w2"); err != nil || r == nil || !r.Members[1].Started {
		t.Fatalf("start rank 1: %+v %v", r, err)
	}
	publish(t, ctx, g, map[string]int{"w2": 2})
	if f := g.free(t, ctx); f["w2"] != "1" {
		t.Fatalf("free %v, want w2 1", f)
	}
}

func TestStartOnlyOnceByItsNodeAndNotWhenAborted(t *testing.T) {
	t.Parallel()
	g, ctx := newGang(t)
	publish(t, ctx, g, map[string]int{"w2": 2})
	if _, err := g.Reserve(ctx, request("j", "w1", 3)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		rank int
		node string
		ok   bool
	}{
		{1, "w3", false}, // not its node
		{0, "w1", false}, // the leader's rank is started already
		{1, "w2", true},
		{1, "w2", false}, // started once
		{9, "w2", false}, // no such rank
	} {
		r, err := g.Start(ctx, "j", c.rank, c.node)
		if err != nil || (r != nil) != c.ok {
			t.Fatalf("start rank %d on %s: %+v %v, want ok=%v", c.rank, c.node, r, err, c.ok)
		}
	}
	if r, err := g.Renew(ctx, "j", time.Minute, Abort); err != nil || r == nil || r.State != Abort {
		t.Fatalf("abort: %+v %v", r, err)
	}
	if r, err := g.Start(ctx, "j", 2, "w2"); err != nil || r != nil {
		t.Fatalf("start after abort: %+v %v", r, err)
	}
	if r, err := g.Start(ctx, "gone", 1, "w2"); err != nil || r != nil {
		t.Fatalf("start of no reservation: %+v %v", r, err)
	}
}

func TestExpiredReservationIsDroppedAndItsSlotsReturn(t *testing.T) {
	t.Parallel()
	g, ctx := newGang(t)
	publish(t, ctx, g, map[string]int{"w2": 1})
	req := request("old", "w1", 2)
	req.TTL = 100 * time.Millisecond
	if r, err := g.Reserve(ctx, req); err != nil || r == nil {
		t.Fatalf("reserve: %+v %v", r, err)
	}
	time.Sleep(250 * time.Millisecond)
	// The worker publishes again (its slot was never used)...
	publish(t, ctx, g, map[string]int{"w2": 1})
	// ...and the next reservation drops the expired one and gets the slot.
	r, err := g.Reserve(ctx, request("new", "w1", 2))
	if err != nil || r == nil || r.Members[1].Node != "w2" {
		t.Fatalf("reserve after expiry: %+v %v", r, err)
	}
	rs, err := g.Reservations(ctx)
	if err != nil || len(rs) != 1 || rs[0].JobID != "new" {
		t.Fatalf("reservations %+v %v", rs, err)
	}
	if r, err := g.Renew(ctx, "old", time.Minute, ""); err != nil || r != nil {
		t.Fatalf("renew of the expired reservation: %+v %v", r, err)
	}
}

func TestCompetingGangsNeverHoldPartialReservations(t *testing.T) {
	t.Parallel()
	g, ctx := newGang(t)
	for round := range 10 {
		// 4 free slots elsewhere; 4 leaders each want 1 held + 2 more: two fit.
		publish(t, ctx, g, map[string]int{"w-a": 2, "w-b": 2})
		var wg sync.WaitGroup
		got := make([]*Reservation, 4)
		errs := make([]error, 4)
		for i := range 4 {
			wg.Go(func() {
				got[i], errs[i] = g.Reserve(ctx, request(fmt.Sprintf("r%d-j%d", round, i), fmt.Sprintf("leader%d", i), 3))
			})
		}
		wg.Wait()
		won, used := 0, map[string]int{}
		for i, r := range got {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			if r == nil {
				continue
			}
			won++
			if len(r.Members) != 3 {
				t.Fatalf("partial reservation %+v", r)
			}
			for _, m := range r.Members[1:] {
				used[m.Node]++
			}
		}
		if won != 2 || used["w-a"] > 2 || used["w-b"] > 2 {
			t.Fatalf("round %d: %d gangs reserved, slots used %v", round, won, used)
		}
		for i := range 4 {
			_ = g.Release(ctx, fmt.Sprintf("r%d-j%d", round, i))
		}
	}
}

func TestReportResultsRelease(t *testing.T) {
	t.Parallel()
	g, ctx := newGang(t)
	publish(t, ctx, g, map[string]int{"w2": 1})
	if _, err := g.Reserve(ctx, request("j", "w1", 2)); err != nil {
		t.Fatal(err)
	}
	if err := g.Report(ctx, "j", 1, MemberResult{OK: true, Output: []byte(`{"rank":1}`)}); err != nil {
		t.Fatal(err)
	}
	if err := g.Report(ctx, "j", 0, MemberResult{Code: "runtime_error", Message: "boom"}); err != nil {
		t.Fatal(err)
	}
	res, err := g.Results(ctx, "j")
	if err != nil || len(res) != 2 || !res[1].OK || string(res[1].Output) != `{"rank":1}` || res[0].OK || res[0].Message != "boom" {
		t.Fatalf("results %+v %v", res, err)
	}
	if err := g.Release(ctx, "j"); err != nil {
		t.Fatal(err)
	}
	if res, err := g.Results(ctx, "j"); err != nil || len(res) != 0 {
		t.Fatalf("results after release %+v %v", res, err)
	}
	if rs, err := g.Reservations(ctx); err != nil || len(rs) != 0 {
		t.Fatalf("reservations after release %+v %v", rs, err)
	}
	// The reservation recorded the leader's free slots too.
	for _, node := range []string{"w1", "w2"} {
		if err := g.Unpublish(ctx, node); err != nil {
			t.Fatal(err)
		}
	}
	if f := g.free(t, ctx); len(f) != 0 {
		t.Fatalf("free after unpublish %v", f)
	}
}
