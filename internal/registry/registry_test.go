package registry

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/testenv"
	"github.com/aigw/aigw/internal/testwait"
)

func TestHeartbeatListAndDropOut(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := testenv.Redis(t)
	r := New(rdb)
	pool := testenv.UniqueName(t, 20)
	t.Cleanup(func() {
		rdb.Del(context.Background(), WorkersKey(pool))
		rdb.SRem(context.Background(), PoolsKey, pool)
	})
	gpus := []GPU{{Index: 0, Name: "H100", Busy: true}, {Index: 1, Name: "H100"}}
	if err := r.Heartbeat(ctx, Worker{Node: "b", Pool: pool, Slots: 2, GPUs: gpus}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := r.Heartbeat(ctx, Worker{Node: "a", Pool: pool, Slots: 4}, time.Second); err != nil {
		t.Fatal(err)
	}
	ws, err := r.Workers(ctx, pool)
	if err != nil || len(ws) != 2 || ws[0].Node != "a" || ws[1].GPUsFree() != 1 || ws[1].HeartbeatAt.IsZero() {
		t.Fatalf("workers: %+v %v", ws, err)
	}
	pools, err := r.Pools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range pools {
		found = found || p == pool
	}
	if !found {
		t.Fatalf("pool %s not in %v", pool, pools)
	}
	// a's TTL passes: it drops out (a second, so a stall of the machine
	// between the heartbeat and the list above cannot drop it early).
	testwait.Poll(5*time.Second, func() bool {
		ws, err = r.Workers(ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		return len(ws) == 1
	})
	if len(ws) != 1 || ws[0].Node != "b" {
		t.Fatalf("after a's ttl: %+v", ws)
	}
	if n := rdb.HLen(ctx, WorkersKey(pool)).Val(); n != 1 {
		t.Fatalf("expired entry not removed: %d entries", n)
	}
	if err := r.Remove(ctx, pool, "b"); err != nil {
		t.Fatal(err)
	}
	if ws, _ := r.Workers(ctx, pool); len(ws) != 0 {
		t.Fatalf("after remove: %+v", ws)
	}
	if err := r.Heartbeat(ctx, Worker{Pool: pool}, time.Second); err == nil {
		t.Fatal("heartbeat without a node accepted")
	}
	if err := r.RemovePool(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if pools, _ := r.Pools(ctx); slices.Contains(pools, pool) {
		t.Fatalf("pool %s still listed after RemovePool", pool)
	}
}
