package queue

import (
	"context"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/testenv"
)

// TestFailoverLosesNoAcknowledgedEnqueue kills a Redis master with SIGKILL while
// producers enqueue: its replica takes over, the client recovers within 10 s, and
// every acknowledged enqueue is still there (checked the way the reconciler does:
// re-adding recorded jobs finds each one already queued), then delivered once.
//
// It kills a process of the local cluster, so the Makefile runs it on its own
// before the other tests, and heals the cluster afterwards.
func TestFailoverLosesNoAcknowledgedEnqueue(t *testing.T) {
	b := setup(t, Config{Shards: 8, WaitReplicas: 1, WaitTimeout: 500 * time.Millisecond, BlockSlice: 100 * time.Millisecond})
	cc, ok := b.rdb.(*redis.ClusterClient)
	if !ok {
		testenv.FailOrSkip(t, "failover needs a Redis Cluster with replicas")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	victim, err := cc.MasterForKey(ctx, b.q.keys(b.pool, 0).ids)
	if err != nil {
		t.Fatal(err)
	}
	addr := victim.Options().Addr
	pid := testenv.LocalRedisPID(ctx, t, victim)
	t.Cleanup(func() { testenv.HealCluster(t) })
	victimShards := map[int]bool{}
	for s := 0; s < 8; s++ {
		if n, err := cc.MasterForKey(ctx, b.q.keys(b.pool, s).ids); err == nil && n.Options().Addr == addr {
			victimShards[s] = true
		}
	}

	var (
		mu          sync.Mutex
		acked       []string
		failed      int
		killedAt    time.Time
		recoveredAt time.Time
		replicated  = map[string]bool{}
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for p := 0; p < 4; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				id := job.NewID()
				mu.Lock()
				afterKill := !killedAt.IsZero()
				mu.Unlock()
				opCtx, opCancel := context.WithTimeout(ctx, 2*time.Second)
				e, err := b.q.Enqueue(opCtx, Message{JobID: id, Pool: b.pool})
				opCancel()
				mu.Lock()
				if err == nil {
					acked = append(acked, id)
					replicated[id] = e.Replicated
					// Recovered: an enqueue begun after the kill reached the failed master's shards.
					if afterKill && recoveredAt.IsZero() && victimShards[b.q.ShardOf(id)] {
						recoveredAt = time.Now()
					}
				} else {
					failed++
				}
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	killedAt = time.Now()
	mu.Unlock()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill master %s (pid %d): %v", addr, pid, err)
	}
	t.Logf("killed master %s (pid %d), which holds shards %v", addr, pid, victimShards)
	promoted := make(chan time.Time, 1)
	go func() { promoted <- waitForPromotion(ctx, cc, addr, b.q.keys(b.pool, 0).ids) }()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		done := !recoveredAt.IsZero() && time.Since(killedAt) > 2*time.Second
		mu.Unlock()
		if done {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if recoveredAt.IsZero() {
		t.Fatalf("no enqueue to the failed master's shards succeeded within 15 s of the kill")
	}
	promotedAt := <-promoted
	if promotedAt.IsZero() {
		t.Fatal("no replica took over the killed master's slots")
	}
	// The server side (failure detection, election) takes 2-4 s with
	// cluster-node-timeout 2000, more on a loaded machine; the client must
	// follow within 10 s of the replica taking over (go-redis's defaults: 60 s).
	recovery := recoveredAt.Sub(promotedAt)
	t.Logf("replica took over %s after the kill; client recovered %s after that; %d enqueues acknowledged, %d failed during the failover",
		promotedAt.Sub(killedAt).Round(time.Millisecond), recovery.Round(time.Millisecond), len(acked), failed)
	if recovery > 10*time.Second {
		t.Fatalf("client took %s after the promotion to recover, want under 10 s", recovery)
	}

	// Reconciler's view: every acknowledged (recorded) job is re-added; a job still
	// in the queue is a duplicate, a lost one would be added back.
	var missing, missingReplicated int
	for start := 0; start < len(acked); start += 200 {
		batch := make([]Message, 0, 200)
		for _, id := range acked[start:min(start+200, len(acked))] {
			batch = append(batch, Message{JobID: id, Pool: b.pool})
		}
		res, err := b.q.EnqueueBatch(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			if !r.Duplicate {
				missing++
				if replicated[batch[i].JobID] {
					missingReplicated++
				}
			}
		}
	}
	nrep := 0
	for _, r := range replicated {
		if r {
			nrep++
		}
	}
	t.Logf("%d of %d acknowledged enqueues were confirmed by a replica; %d were missing after the failover and re-added", nrep, len(acked), missing)
	if missingReplicated > 0 {
		t.Errorf("%d replica-confirmed enqueues were lost in the failover", missingReplicated)
	}

	// Drain: every acknowledged job is delivered exactly once.
	c, err := b.q.Consumer(b.pool, "drain", ConsumerOptions{Home: 0})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for {
		ds, err := c.Take(ctx, 256, 300*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 0 {
			break
		}
		for _, d := range ds {
			seen[d.JobID]++
		}
		if err := c.Ack(ctx, ds...); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range acked {
		if seen[id] != 1 {
			t.Fatalf("acknowledged job %s delivered %d times, want once", id, seen[id])
		}
	}
}

// waitForPromotion asks the surviving masters, every 100 ms for up to 30 s, who
// serves key's slot, and returns when that is no longer the killed master.
func waitForPromotion(ctx context.Context, cc *redis.ClusterClient, killed, key string) time.Time {
	slot, err := cc.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		return time.Time{}
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var owner string
		_ = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			if c.Options().Addr == killed {
				return nil
			}
			slots, err := c.ClusterSlots(ctx).Result()
			if err != nil {
				return nil
			}
			for _, s := range slots {
				if int64(s.Start) <= slot && slot <= int64(s.End) && len(s.Nodes) > 0 {
					owner = s.Nodes[0].Addr
				}
			}
			return nil
		})
		if owner != "" && owner != killed {
			return time.Now()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Time{}
}
