package queue

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/redisconn"
	"github.com/aigw/aigw/internal/testenv"
	"github.com/aigw/aigw/internal/testwait"
)

type bundle struct {
	ctx  context.Context
	rdb  redis.UniversalClient
	q    *Queue
	pool string
}

func setup(t *testing.T, cfg Config) *bundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	rdb := testenv.Redis(t)
	q := New(rdb, cfg)
	pool := testenv.UniqueName(t, 48)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := q.Purge(ctx, pool); err != nil {
			t.Errorf("purge pool %s: %v", pool, err)
		}
	})
	return &bundle{ctx: ctx, rdb: rdb, q: q, pool: pool}
}

func (b *bundle) consumer(t *testing.T, name string) *Consumer {
	t.Helper()
	c, err := b.q.Consumer(b.pool, name, ConsumerOptions{Home: -1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (b *bundle) enqueue(t *testing.T, m Message) Enqueued {
	t.Helper()
	m.Pool = b.pool
	e, err := b.q.Enqueue(b.ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// The local cluster must really be a cluster of 3 masters: the sharding claims are
// only tested when the test servers are that cluster.
func TestRunsAgainstExpectedMasters(t *testing.T) {
	want := os.Getenv("AIGW_EXPECT_REDIS_MASTERS")
	if want == "" {
		if testenv.Required() {
			t.Fatal("AIGW_EXPECT_REDIS_MASTERS is not set (scripts/env.sh sets it for the local cluster)")
		}
		t.Skip("AIGW_EXPECT_REDIS_MASTERS not set")
	}
	rdb := testenv.Redis(t)
	// The failover test, run just before, restarts the master it killed: for a
	// moment that node still calls itself a master in some nodes' views, until
	// the cluster makes it a replica.
	var n int
	var err error
	if !testwait.Poll(15*time.Second, func() bool {
		n, err = redisconn.Masters(context.Background(), rdb)
		return err == nil && strconv.Itoa(n) == want
	}) {
		t.Fatalf("test servers have %d masters (%v), want %s", n, err, want)
	}
	if _, ok := rdb.(*redis.ClusterClient); !ok {
		t.Fatalf("client is %T, want a cluster client", rdb)
	}
}

func TestShardsSpreadOverMasters(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{Shards: 8})
	cc, ok := b.rdb.(*redis.ClusterClient)
	if !ok {
		t.Skip("single-node Redis: nothing to spread over")
	}
	masters := map[string]int{}
	for s := 0; s < 8; s++ {
		node, err := cc.MasterForKey(b.ctx, b.q.keys("spread", s).ids)
		if err != nil {
			t.Fatal(err)
		}
		masters[node.Options().Addr]++
	}
	n, _ := redisconn.Masters(b.ctx, b.rdb)
	if n >= 3 && len(masters) < 2 {
		t.Fatalf("8 shards of pool 'spread' all on one master: %v", masters)
	}
	t.Logf("shards per master: %v", masters)
}

func TestEnqueueTakeAckRoundTrip(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{Shards: 4})
	var ids []string
	for i := 0; i < 20; i++ {
		id := job.NewID()
		ids = append(ids, id)
		e := b.enqueue(t, Message{JobID: id, Payload: "p" + strconv.Itoa(i)})
		if e.Duplicate || e.EntryID == "" {
			t.Fatalf("enqueue %d: %+v", i, e)
		}
	}
	c := b.consumer(t, "c1")
	got := map[string]Delivery{}
	for len(got) < 20 {
		ds, err := c.Take(b.ctx, 7, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 0 {
			t.Fatalf("took %d of 20, then nothing", len(got))
		}
		if len(ds) > 7 {
			t.Fatalf("asked for 7, got %d", len(ds))
		}
		for _, d := range ds {
			if _, dup := got[d.JobID]; dup {
				t.Fatalf("job %s delivered twice", d.JobID)
			}
			if d.Deliveries != 1 || d.Pool != b.pool || d.EnqueuedAt.IsZero() {
				t.Fatalf("delivery %+v", d)
			}
			got[d.JobID] = d
		}
		if err := c.Ack(b.ctx, ds...); err != nil {
			t.Fatal(err)
		}
	}
	for i, id := range ids {
		if got[id].Payload != "p"+strconv.Itoa(i) {
			t.Errorf("job %s payload %q", id, got[id].Payload)
		}
		if in, err := b.q.Contains(b.ctx, b.pool, id); err != nil || in {
			t.Errorf("acked job %s still in queue (%v, %v)", id, in, err)
		}
	}
	st, err := b.q.Stats(b.ctx, b.pool)
	if err != nil {
		t.Fatal(err)
	}
	if st.Depth() != 0 || st.Running != 0 {
		t.Fatalf("after acking all: %+v", st)
	}
}

func TestEnqueueIsIdempotentPerJob(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	id := job.NewID()
	if e := b.enqueue(t, Message{JobID: id}); e.Duplicate {
		t.Fatal("first enqueue reported duplicate")
	}
	if e := b.enqueue(t, Message{JobID: id, Priority: job.High}); !e.Duplicate {
		t.Fatal("second enqueue of the same job was added again")
	}
	res, err := b.q.EnqueueBatch(b.ctx, []Message{{JobID: id, Pool: b.pool}, {JobID: job.NewID(), Pool: b.pool}})
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].Duplicate || res[1].Duplicate {
		t.Fatalf("batch: %+v", res)
	}
	c := b.consumer(t, "c")
	var ds []Delivery
	for {
		got, err := c.Take(b.ctx, 10, 100*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			break
		}
		ds = append(ds, got...)
	}
	if len(ds) != 2 {
		t.Fatalf("took %d jobs, want 2 (no duplicates)", len(ds))
	}
}

func TestPrioritiesHighFirst(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{Shards: 1})
	prios := []job.Priority{job.Low, job.Normal, job.High, job.Low, job.High, job.Normal}
	for _, p := range prios {
		b.enqueue(t, Message{JobID: job.NewID(), Priority: p})
	}
	c := b.consumer(t, "c")
	var order []job.Priority
	for len(order) < len(prios) {
		ds, err := c.Take(b.ctx, 1, time.Second)
		if err != nil || len(ds) != 1 {
			t.Fatalf("take: %v %v", ds, err)
		}
		order = append(order, ds[0].Priority)
		_ = c.Ack(b.ctx, ds...)
	}
	want := []job.Priority{job.High, job.High, job.Normal, job.Normal, job.Low, job.Low}
	if fmt.Sprint(order) != fmt.Sprint(want) {
		t.Fatalf("order %v, want %v", order, want)
	}
}

func TestBatchIsOrderedByPriorityAcrossShards(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{Shards: 8})
	for i := 0; i < 30; i++ {
		b.enqueue(t, Message{JobID: job.NewID(), Priority: job.Priorities()[i%3]})
	}
	c := b.consumer(t, "c")
	total, multiShard := 0, false
	for total < 30 {
		ds, err := c.Take(b.ctx, 30, time.Second)
		if err != nil || len(ds) == 0 {
			t.Fatalf("take after %d of 30: %d %v", total, len(ds), err)
		}
		total += len(ds)
		for i := 1; i < len(ds); i++ {
			multiShard = multiShard || ds[i].Shard != ds[0].Shard
			if ds[i].prio() < ds[i-1].prio() {
				t.Fatalf("batch not ordered by priority at %d: %s after %s", i, ds[i].Priority, ds[i-1].Priority)
			}
		}
	}
	if !multiShard {
		t.Log("every batch came from one shard")
	}
}

// idOnShard returns a new job id that lives on shard s.
func (b *bundle) idOnShard(s int) string {
	for {
		if id := job.NewID(); b.q.ShardOf(id) == s {
			return id
		}
	}
}

// TestPriorityHoldsAcrossShards: a consumer whose home shard holds low jobs takes
// the high jobs of other shards first, then its own lows, in batches ordered by
// priority; also when its last batch came up short (it goes to a read of its home
// shard then).
func TestPriorityHoldsAcrossShards(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{Shards: 4})
	c, err := b.q.Consumer(b.pool, "c", ConsumerOptions{Home: 0})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Take(b.ctx, 1, 0); err != nil { // groups exist; the consumer has read once
		t.Fatal(err)
	}
	var lows []string
	for range 5 {
		id := b.idOnShard(0)
		lows = append(lows, id)
		b.enqueue(t, Message{JobID: id, Priority: job.Low})
	}
	high, high2 := b.idOnShard(2), b.idOnShard(3)
	b.enqueue(t, Message{JobID: high, Priority: job.High})
	b.enqueue(t, Message{JobID: high2, Priority: job.High})

	var order []string
	for _, limit := range []int{1, 1, 3} {
		ds, err := c.Take(b.ctx, limit, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			order = append(order, d.JobID)
		}
		if err := c.Ack(b.ctx, ds...); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{high, high2, lows[0], lows[1], lows[2]}
	if fmt.Sprint(order) != fmt.Sprint(want) {
		t.Fatalf("took %v, want the highs (shards 2, 3), then the home shard's lows in order: %v", order, want)
	}

	// The same when the consumer's last batch was short (it drained the pool), so
	// that it would go straight to a read of its home shard.
	ds, err := c.Take(b.ctx, 10, 0)
	if err != nil || len(ds) != 2 {
		t.Fatalf("take of the last two lows: %v %v", ds, err)
	}
	if err := c.Ack(b.ctx, ds...); err != nil {
		t.Fatal(err)
	}
	b.enqueue(t, Message{JobID: b.idOnShard(0), Priority: job.Low})
	extra := b.idOnShard(1)
	b.enqueue(t, Message{JobID: extra, Priority: job.High})
	ds, err = c.Take(b.ctx, 1, time.Second)
	if err != nil || len(ds) != 1 || ds[0].JobID != extra {
		t.Fatalf("take after a short batch: %v %v, want the high job %s of shard 1", ds, err, extra)
	}
}

func TestBlockingTakeWakesOnEnqueue(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{Shards: 1})
	c := b.consumer(t, "c")
	if _, err := c.Take(b.ctx, 1, 0); err != nil { // creates the groups
		t.Fatal(err)
	}
	id := job.NewID()
	go func() {
		time.Sleep(200 * time.Millisecond)
		_, _ = b.q.Enqueue(b.ctx, Message{JobID: id, Pool: b.pool})
	}()
	start := time.Now()
	ds, err := c.Take(b.ctx, 1, 5*time.Second)
	if err != nil || len(ds) != 1 || ds[0].JobID != id {
		t.Fatalf("take: %v %v", ds, err)
	}
	if waited := time.Since(start); waited > 2*time.Second {
		t.Fatalf("blocking take returned after %s, want soon after the enqueue at 200ms", waited)
	}
}

// TestIdleConsumerIsWokenForAnotherShard: a consumer blocked on its home shard
// takes a job produced onto another shard of the pool as soon as it is queued,
// woken by the producer, not at its next look at every shard (which would come
// only after a block slice of 2s: the test tells the two apart by counting the
// looks, not by timing); a job produced onto its home shard reaches it without
// a wake-up.
func TestIdleConsumerIsWokenForAnotherShard(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{Shards: 4, BlockSlice: 2 * time.Second})
	c, err := b.q.Consumer(b.pool, "c", ConsumerOptions{Home: 0})
	if err != nil {
		t.Fatal(err)
	}
	// An empty take that blocks looks at every shard and registers the
	// consumer as idle.
	if ds, err := c.Take(b.ctx, 1, time.Millisecond); err != nil || len(ds) != 0 {
		t.Fatalf("take from the empty pool: %v %v", ds, err)
	}
	k := b.q.keys(b.pool, 0)
	for _, tc := range []struct {
		name  string
		shard int
		wakes int64 // wake-up entries the enqueue adds
	}{
		{"other shard", 2, 1},
		{"home shard", 0, 0},
		{"another shard again", 3, 1},
	} {
		wakes := func() int64 {
			info, err := b.rdb.XInfoStream(b.ctx, k.wake).Result()
			if err != nil {
				t.Fatal(err)
			}
			return info.EntriesAdded
		}
		wakesBefore := wakes()
		scans := c.scans
		type result struct {
			ds  []Delivery
			err error
		}
		got := make(chan result, 1)
		go func() {
			ds, err := c.Take(b.ctx, 1, time.Minute)
			got <- result{ds, err}
		}()
		// Whether the enqueue comes before or during the consumer's blocking
		// read, the read returns the wake-up at once (it reads every entry new to
		// the group).
		id := b.idOnShard(tc.shard)
		b.enqueue(t, Message{JobID: id})
		r := testwait.Receive(t, got, 30*time.Second, "the take (%s)", tc.name)
		if r.err != nil || len(r.ds) != 1 || r.ds[0].JobID != id {
			t.Fatalf("%s: took %v %v, want job %s", tc.name, r.ds, r.err, id)
		}
		if c.scans != scans {
			t.Fatalf("%s: the consumer found the job by looking at every shard (%d looks), not by a wake-up", tc.name, c.scans-scans)
		}
		if err := c.Ack(b.ctx, r.ds...); err != nil {
			t.Fatal(err)
		}
		if n := wakes() - wakesBefore; n != tc.wakes {
			t.Fatalf("%s: %d wake-up entries added, want %d", tc.name, n, tc.wakes)
		}
	}
	// Wake-up entries are acknowledged and deleted with the consumer's next call
	// on its home shard.
	if _, err := c.Take(b.ctx, 1, 0); err != nil {
		t.Fatal(err)
	}
	if n := b.rdb.XLen(b.ctx, k.wake).Val(); n != 0 {
		t.Fatalf("%d wake-up entries left after their reader's next call, want 0", n)
	}
}

// TestWakeUpForATakenJobGoesBackToWaiting: when the consumer blocked on a
// job's shard takes it, the idle consumer a producer woke elsewhere finds
// nothing and blocks again, without a look at every shard (which would
// register it as idle again, and so keep an idle pool waking consumers).
func TestWakeUpForATakenJobGoesBackToWaiting(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{Shards: 2, BlockSlice: 2 * time.Second})
	cs := make([]*Consumer, 2)
	for i := range cs {
		c, err := b.q.Consumer(b.pool, "c"+strconv.Itoa(i), ConsumerOptions{Home: i})
		if err != nil {
			t.Fatal(err)
		}
		cs[i] = c
	}
	if _, err := cs[1].Take(b.ctx, 1, time.Millisecond); err != nil { // c1 registers as idle
		t.Fatal(err)
	}
	// The job goes to shard 0, where no idle consumer is homed, so the
	// producer wakes c1; c0 (busy, not registered) takes the job first.
	id := b.idOnShard(0)
	b.enqueue(t, Message{JobID: id})
	if ds, err := cs[0].Take(b.ctx, 1, 0); err != nil || len(ds) != 1 || ds[0].JobID != id {
		t.Fatalf("c0 took %v %v, want %s", ds, err, id)
	}
	scans := cs[1].scans
	ctx1, cancel1 := context.WithCancel(b.ctx)
	defer cancel1()
	type result struct {
		ds  []Delivery
		err error
	}
	woken := make(chan result, 1)
	go func() {
		ds, err := cs[1].Take(ctx1, 1, time.Minute)
		woken <- result{ds, err}
	}()
	// c1 reads the wake-up, finds shard 0 empty, and acknowledges the entry
	// with its next call on its home shard: its next blocking read, or the
	// look at every shard this test forbids (which counts before it acks).
	wake := b.q.keys(b.pool, 1).wake
	testwait.Eventually(t, 10*time.Second, func() bool {
		info, err := b.rdb.XInfoStream(b.ctx, wake).Result()
		return err == nil && info.EntriesAdded == 1 && info.Length == 0
	}, "c1 woken and done with the wake-up")
	cancel1()
	r := testwait.Receive(t, woken, 30*time.Second, "c1's take")
	if len(r.ds) != 0 {
		t.Fatalf("c1 took %v", r.ds)
	}
	if n := cs[1].scans - scans; n != 0 {
		t.Fatalf("the woken consumer looked at every shard %d times after finding nothing, want 0", n)
	}
}

func TestEmptyTakeReturnsAfterBlock(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{Shards: 2, BlockSlice: 50 * time.Millisecond})
	ds, err := b.consumer(t, "c").Take(b.ctx, 5, 150*time.Millisecond)
	if err != nil || len(ds) != 0 {
		t.Fatalf("take on an empty pool: %v %v", ds, err)
	}
}

func TestDelayedJobWaitsForNotBefore(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{Shards: 2})
	id := job.NewID()
	e := b.enqueue(t, Message{JobID: id, NotBefore: time.Now().Add(700 * time.Millisecond), Payload: "a|b"})
	if e.EntryID != "delayed" {
		t.Fatalf("enqueue with future not_before: %+v", e)
	}
	st, _ := b.q.Stats(b.ctx, b.pool)
	if st.Delayed != 1 {
		t.Fatalf("stats %+v, want 1 delayed", st)
	}
	if e := b.enqueue(t, Message{JobID: id}); !e.Duplicate {
		t.Fatal("a delayed job was enqueued a second time")
	}
	c := b.consumer(t, "c")
	ds, err := c.Take(b.ctx, 1, 0)
	if err != nil || len(ds) != 0 {
		t.Fatalf("took a job before its not_before: %v %v", ds, err)
	}
	time.Sleep(800 * time.Millisecond)
	ds, err = c.Take(b.ctx, 1, time.Second)
	if err != nil || len(ds) != 1 || ds[0].JobID != id || ds[0].Payload != "a|b" {
		t.Fatalf("after not_before: %v %v", ds, err)
	}
}

// A take promotes delayed jobs by the due time the shard records ("|d" in the
// membership hash), without looking at the delayed zset otherwise: delayed
// enqueues and requeues keep it at the earliest, takes move it on and clear it
// when the zset is empty; an entry written without it (an older version) is
// still served by the consumers' own checks.
func TestDelayedJobsAreServedByTheRecordedDueTime(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{Shards: 1, BlockSlice: 50 * time.Millisecond})
	k := b.q.keys(b.pool, 0)
	due := func() string { return b.rdb.HGet(b.ctx, k.ids, "|d").Val() }
	now := time.Now()
	late, early := job.NewID(), job.NewID()
	b.enqueue(t, Message{JobID: late, NotBefore: now.Add(2 * time.Second)})
	if got, want := due(), strconv.FormatInt(now.Add(2*time.Second).UnixMilli(), 10); got != want {
		t.Fatalf("due time after a delayed enqueue: %q, want %q", got, want)
	}
	b.enqueue(t, Message{JobID: early, NotBefore: now.Add(300 * time.Millisecond)})
	if got, want := due(), strconv.FormatInt(now.Add(300*time.Millisecond).UnixMilli(), 10); got != want {
		t.Fatalf("due time after an earlier delayed enqueue: %q, want %q", got, want)
	}
	c := b.consumer(t, "c")
	var order []string
	for len(order) < 2 {
		ds, err := c.AckTake(b.ctx, nil, 4, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			order = append(order, d.JobID)
			if len(order) == 1 && d.JobID == early {
				// Handed back with a delay that ends before late's.
				if err := c.Requeue(b.ctx, d, time.Now().Add(200*time.Millisecond)); err != nil {
					t.Fatal(err)
				}
			} else if err := c.Ack(b.ctx, d); err != nil {
				t.Fatal(err)
			}
		}
	}
	for len(order) < 3 {
		ds, err := c.AckTake(b.ctx, nil, 4, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			order = append(order, d.JobID)
		}
		if err := c.Ack(b.ctx, ds...); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{early, early, late}; !slices.Equal(order, want) {
		t.Fatalf("taken %v, want %v", order, want)
	}
	if _, err := c.Take(b.ctx, 1, 0); err != nil {
		t.Fatal(err)
	}
	if d := due(); d != "" || b.rdb.ZCard(b.ctx, k.delayed).Val() != 0 {
		t.Fatalf("due time %q with the delayed zset drained", d)
	}

	// An entry an older version delayed, with no due time recorded.
	legacy := job.NewID()
	b.rdb.HSet(b.ctx, k.ids, legacy, "delayed")
	b.rdb.ZAdd(b.ctx, k.delayed, redis.Z{Score: float64(time.Now().UnixMilli()), Member: "normal|" + legacy + "|"})
	fresh := b.consumer(t, "fresh")
	ds, err := fresh.Take(b.ctx, 1, 2*time.Second)
	if err != nil || len(ds) != 1 || ds[0].JobID != legacy {
		t.Fatalf("a delayed entry without a recorded due time: %v %v", ds, err)
	}
}

func TestExpiredLeaseIsReclaimedAndExtendKeepsIt(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{Shards: 1, Lease: time.Second, ReclaimEvery: 10 * time.Millisecond})
	kept, dropped := job.NewID(), job.NewID()
	b.enqueue(t, Message{JobID: kept})
	b.enqueue(t, Message{JobID: dropped})
	a := b.consumer(t, "worker-a")
	ds, err := a.Take(b.ctx, 2, time.Second)
	if err != nil || len(ds) != 2 {
		t.Fatalf("take: %v %v", ds, err)
	}
	var keep Delivery
	for _, d := range ds {
		if d.JobID == kept {
			keep = d
		}
	}
	// a keeps renewing one lease and abandons the other (as if it had died).
	other := b.consumer(t, "worker-b")
	deadline := time.Now().Add(2500 * time.Millisecond)
	var reclaimed []Delivery
	for time.Now().Before(deadline) {
		lost, err := a.Extend(b.ctx, keep)
		if err != nil || len(lost) != 0 {
			t.Fatalf("extend: lost %v, %v", lost, err)
		}
		if len(reclaimed) == 0 { // b takes over once, then holds it
			got, err := other.Take(b.ctx, 5, 0)
			if err != nil {
				t.Fatal(err)
			}
			reclaimed = append(reclaimed, got...)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(reclaimed) != 1 || reclaimed[0].JobID != dropped || reclaimed[0].Deliveries != 2 {
		t.Fatalf("reclaimed %+v, want only the abandoned job, delivery 2", reclaimed)
	}
	// The abandoned delivery is b's now: a's renewal of it reports it lost.
	var drop Delivery
	for _, d := range ds {
		if d.JobID == dropped {
			drop = d
		}
	}
	lost, err := a.Extend(b.ctx, drop)
	if err != nil || len(lost) != 1 {
		t.Fatalf("extend of a reclaimed delivery: lost %v, %v", lost, err)
	}
}

func TestTooManyDeliveriesGoToDeadLetter(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{Shards: 1, Lease: 100 * time.Millisecond, ReclaimEvery: time.Millisecond, MaxDeliveries: 2})
	id := job.NewID()
	b.enqueue(t, Message{JobID: id})
	deliveries := 0
	for i := 0; i < 10; i++ { // each consumer takes the job and "dies"
		c := b.consumer(t, "doomed-"+strconv.Itoa(i))
		ds, err := c.Take(b.ctx, 1, 0)
		if err != nil {
			t.Fatal(err)
		}
		deliveries += len(ds)
		time.Sleep(150 * time.Millisecond)
	}
	if deliveries != 2 {
		t.Fatalf("delivered %d times, want MaxDeliveries=2", deliveries)
	}
	dls, err := b.q.DeadLetters(b.ctx, b.pool, 10)
	if err != nil || len(dls) != 1 || dls[0].JobID != id || dls[0].Reason != "max_deliveries" {
		t.Fatalf("dead letters %+v, %v", dls, err)
	}
	if in, _ := b.q.Contains(b.ctx, b.pool, id); in {
		t.Fatal("dead-lettered job still counted as queued")
	}
	st, _ := b.q.Stats(b.ctx, b.pool)
	if st.Dead != 1 || st.Running != 0 || st.Depth() != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestMalformedEntryGoesToDeadLetterAndConsumerGoesOn(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{Shards: 1})
	c := b.consumer(t, "c")
	if _, err := c.Take(b.ctx, 1, 0); err != nil {
		t.Fatal(err)
	}
	k := b.q.keys(b.pool, 0)
	if err := b.rdb.XAdd(b.ctx, &redis.XAddArgs{Stream: k.streams[1], Values: []string{"garbage", "x"}}).Err(); err != nil {
		t.Fatal(err)
	}
	good := job.NewID()
	b.enqueue(t, Message{JobID: good})
	ds, err := c.Take(b.ctx, 10, time.Second)
	if err != nil || len(ds) != 1 || ds[0].JobID != good {
		t.Fatalf("take past a malformed entry: %+v %v", ds, err)
	}
	dls, err := b.q.DeadLetters(b.ctx, b.pool, 10)
	if err != nil || len(dls) != 1 || dls[0].Fields["garbage"] != "x" || dls[0].Reason != "malformed: no job id" {
		t.Fatalf("dead letters %+v %v", dls, err)
	}
	st, _ := b.q.Stats(b.ctx, b.pool)
	if st.Running != 1 || st.Dead != 1 {
		t.Fatalf("stats %+v: want the good job running and one dead letter", st)
	}
}

func TestStatsCountsReadyRunningAndOldestWait(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{Shards: 4})
	for i := 0; i < 6; i++ {
		b.enqueue(t, Message{JobID: job.NewID(), Priority: job.Priorities()[i%3]})
	}
	time.Sleep(50 * time.Millisecond)
	st, err := b.q.Stats(b.ctx, b.pool)
	if err != nil {
		t.Fatal(err)
	}
	if st.Ready[job.High] != 2 || st.Ready[job.Normal] != 2 || st.Ready[job.Low] != 2 || st.Running != 0 {
		t.Fatalf("stats %+v", st)
	}
	if st.OldestWait < 40*time.Millisecond || st.OldestWait > 10*time.Second {
		t.Fatalf("oldest wait %s", st.OldestWait)
	}
	ds, _ := b.consumer(t, "c").Take(b.ctx, 4, 0)
	st, _ = b.q.Stats(b.ctx, b.pool)
	if st.Running != int64(len(ds)) || st.Depth() != int64(6-len(ds)) {
		t.Fatalf("after taking %d: %+v", len(ds), st)
	}
}

func TestBadInputIsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	for _, m := range []Message{
		{JobID: "x", Pool: ""}, {JobID: "x", Pool: "Bad{Pool}"}, {JobID: "x", Pool: "a#b"},
		{JobID: "", Pool: "ok"}, {JobID: "a|b", Pool: "ok"}, {JobID: "x", Pool: "ok", Priority: "urgent"},
	} {
		_, err := b.q.Enqueue(b.ctx, m)
		if !errors.Is(err, ErrBadPool) && !errors.Is(err, ErrBadMessage) {
			t.Errorf("Enqueue(%+v) = %v, want a bad-input error", m, err)
		}
	}
	if _, err := b.q.Consumer("no spaces", "c", ConsumerOptions{}); !errors.Is(err, ErrBadPool) {
		t.Errorf("consumer of a bad pool: %v", err)
	}
	if _, err := b.consumer(t, "c").Take(b.ctx, 0, 0); err == nil {
		t.Error("take of 0 jobs accepted")
	}
}

// Producers and consumers race; every job is delivered and acknowledged exactly once.
func TestConcurrentProducersAndConsumersDeliverEachJobOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{Shards: 8, BlockSlice: 100 * time.Millisecond})
	const producers, consumers, perProducer = 8, 8, 250
	total := producers * perProducer
	var mu sync.Mutex
	seen := map[string]int{}
	done := make(chan struct{})
	var closeOnce sync.Once
	finish := func() { closeOnce.Do(func() { close(done) }) }
	var wg sync.WaitGroup
	for i := 0; i < consumers; i++ {
		c, err := b.q.Consumer(b.pool, "c"+strconv.Itoa(i), ConsumerOptions{Home: i})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				ds, err := c.Take(b.ctx, 16, 200*time.Millisecond)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, d := range ds {
					seen[d.JobID]++
				}
				n := len(seen)
				mu.Unlock()
				if err := c.Ack(b.ctx, ds...); err != nil {
					t.Error(err)
					return
				}
				if n == total {
					finish()
				}
			}
		}()
	}
	var pwg sync.WaitGroup
	for p := 0; p < producers; p++ {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			for i := 0; i < perProducer; i++ {
				if _, err := b.q.Enqueue(b.ctx, Message{JobID: job.NewID(), Pool: b.pool}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	pwg.Wait()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		finish()
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != total {
		t.Fatalf("delivered %d distinct jobs, want %d", len(seen), total)
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("job %s delivered %d times", id, n)
		}
	}
}

// A delivery rebuilt from its exported fields (e.g. after a worker kept it on disk)
// acknowledges the right stream.
func TestAckOfARebuiltDelivery(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{Shards: 2})
	id := job.NewID()
	b.enqueue(t, Message{JobID: id, Priority: job.Low})
	c := b.consumer(t, "c")
	ds, err := c.Take(b.ctx, 1, time.Second)
	if err != nil || len(ds) != 1 {
		t.Fatalf("take: %v %v", ds, err)
	}
	rebuilt := Delivery{Message: Message{JobID: id, Pool: b.pool, Priority: job.Low}, Shard: ds[0].Shard, EntryID: ds[0].EntryID}
	if err := c.Ack(b.ctx, rebuilt); err != nil {
		t.Fatal(err)
	}
	st, err := b.q.Stats(b.ctx, b.pool)
	if err != nil || st.Running != 0 || st.Depth() != 0 {
		t.Fatalf("after ack: %+v %v", st, err)
	}
	if in, _ := b.q.Contains(b.ctx, b.pool, id); in {
		t.Fatal("acknowledged job still in the queue")
	}
}

// Concurrent Enqueue calls with several pipelines per master hand the flusher
// slots from caller to caller; two leaders handing off at once once picked the
// same waiting caller, and the second hand-off blocked holding the batcher's
// lock, so every Enqueue after it waited for ever.
func TestConcurrentEnqueuesWithManyPipelinesAllReturn(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{Shards: 8, EnqueuePipelines: 8})
	const producers, perProducer = 32, 300
	var wg sync.WaitGroup
	var returned sync.Map
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perProducer {
				if _, err := b.q.Enqueue(b.ctx, Message{JobID: job.NewID(), Pool: b.pool}); err != nil {
					t.Error(err)
					return
				}
				returned.Store(p, i+1)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(45 * time.Second):
		n := 0
		returned.Range(func(_, v any) bool { n += v.(int); return true })
		t.Fatalf("after 45 s only %d of %d Enqueue calls had returned: the enqueue batcher is stuck", n, producers*perProducer)
	}
	st, err := b.q.Stats(b.ctx, b.pool)
	if err != nil {
		t.Fatal(err)
	}
	if st.Depth() != producers*perProducer {
		t.Fatalf("%d jobs waiting, want %d", st.Depth(), producers*perProducer)
	}
}
