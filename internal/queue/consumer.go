package queue

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aigw/aigw/internal/job"
)

// Delivery is a job taken from the queue. Ack it when the job is done; renew its
// lease with Extend while it runs.
type Delivery struct {
	Message
	Shard   int
	EntryID string
	// Deliveries counts how often this entry was handed out (1 the first time;
	// more after a consumer died holding it).
	Deliveries int64
	// EnqueuedAt is when the entry entered its stream (from the entry id).
	EnqueuedAt time.Time
	prio       int
}

// ConsumerOptions configures a Consumer.
type ConsumerOptions struct {
	// Home is the shard the consumer blocks on when the pool is idle; consumers of
	// one pool should spread their homes over the shards (e.g. worker slot index).
	// Negative means hash(name) mod K.
	Home int
}

// Consumer takes jobs of one pool under one consumer name. A Consumer is not safe
// for concurrent use; run one per goroutine.
type Consumer struct {
	q        *Queue
	pool     string
	name     string
	home     int
	next     int
	grouped  bool
	reclaims []time.Time // per shard: last reclaim pass
}

// Consumer returns a consumer of pool named name (unique per live consumer, e.g.
// "<node>/<slot>").
func (q *Queue) Consumer(pool, name string, o ConsumerOptions) (*Consumer, error) {
	if err := ValidatePool(pool); err != nil {
		return nil, err
	}
	if name == "" {
		return nil, errors.New("queue: consumer name is empty")
	}
	home := o.Home
	if home < 0 {
		h := fnv.New32a()
		_, _ = h.Write([]byte(name))
		home = int(h.Sum32())
	}
	home %= q.cfg.Shards
	return &Consumer{q: q, pool: pool, name: name, home: home, next: home, reclaims: make([]time.Time, q.cfg.Shards)}, nil
}

// Name returns the consumer's name.
func (c *Consumer) Name() string { return c.name }

// Take returns up to max jobs, high priority first, waiting up to block for one to
// arrive when the pool is empty (block <= 0: do not wait). It also takes over jobs
// whose lease ran out (see Config.Lease) and moves malformed entries to the
// dead-letter stream. An empty result with a nil error means nothing came in time.
func (c *Consumer) Take(ctx context.Context, max int, block time.Duration) ([]Delivery, error) {
	if max <= 0 {
		return nil, fmt.Errorf("queue: take max must be positive, got %d", max)
	}
	if !c.grouped {
		if err := c.q.EnsureGroups(ctx, c.pool); err != nil {
			return nil, err
		}
		c.grouped = true
	}
	deadline := time.Now().Add(block)
	for {
		out, err := c.pass(ctx, max)
		if err != nil || len(out) > 0 {
			// Within one shard the script already serves high before normal before
			// low; across shards, order the batch so the caller starts high first.
			slices.SortStableFunc(out, func(a, b Delivery) int { return a.prio - b.prio })
			return out, err
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return nil, nil
		}
		if wait > c.q.cfg.BlockSlice {
			wait = c.q.cfg.BlockSlice
		}
		if wait < time.Millisecond {
			wait = time.Millisecond
		}
		out, err = c.blockOn(ctx, c.home, wait)
		if err != nil || len(out) > 0 {
			return out, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// pass visits every shard once (starting after the last one served), reclaiming
// expired leases where due and taking new entries, until max are collected.
func (c *Consumer) pass(ctx context.Context, max int) ([]Delivery, error) {
	var out []Delivery
	n := c.q.cfg.Shards
	for i := 0; i < n && len(out) < max; i++ {
		s := (c.next + i) % n
		if now := time.Now(); now.Sub(c.reclaims[s]) >= c.q.cfg.ReclaimEvery {
			c.reclaims[s] = now
			got, err := c.reclaim(ctx, s, max-len(out))
			if err != nil {
				return out, err
			}
			out = append(out, got...)
			if len(out) >= max {
				break
			}
		}
		got, err := c.takeShard(ctx, s, max-len(out))
		if err != nil {
			return out, err
		}
		out = append(out, got...)
		if len(got) > 0 {
			c.next = s // keep draining a shard that has work
		}
	}
	if len(out) == 0 {
		c.next = (c.next + 1) % n
	}
	return out, nil
}

func (c *Consumer) takeShard(ctx context.Context, shard, count int) ([]Delivery, error) {
	k := c.q.keys(c.pool, shard)
	run := func() (any, error) {
		return takeScript.Run(ctx, c.q.rdb,
			[]string{k.streams[0], k.streams[1], k.streams[2], k.delayed, k.ids},
			c.q.cfg.Group, c.name, count).Result()
	}
	res, err := run()
	if isNoGroup(err) { // the stream vanished (e.g. a failover lost it): recreate the group
		if err = c.q.ensureShardGroups(ctx, c.pool, shard); err == nil {
			res, err = run()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("take from pool %s shard %d: %w", c.pool, shard, err)
	}
	flat, _ := res.([]any)
	var out []Delivery
	for i := 0; i+2 < len(flat); i += 3 {
		pi, _ := flat[i].(int64)
		id, _ := flat[i+1].(string)
		fields, _ := flat[i+2].([]any)
		if d, ok := c.delivery(ctx, shard, int(pi)-1, id, fields, 1); ok {
			out = append(out, d)
		}
	}
	return out, nil
}

// blockOn waits on one shard's streams for a new entry.
func (c *Consumer) blockOn(ctx context.Context, shard int, wait time.Duration) ([]Delivery, error) {
	k := c.q.keys(c.pool, shard)
	res, err := c.q.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: c.q.cfg.Group, Consumer: c.name, Count: 1, Block: wait,
		Streams: []string{k.streams[0], k.streams[1], k.streams[2], ">", ">", ">"},
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if isNoGroup(err) {
		return nil, c.q.ensureShardGroups(ctx, c.pool, shard)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("wait on pool %s shard %d: %w", c.pool, shard, err)
	}
	var out []Delivery
	for _, st := range res {
		pi := 0
		for i, key := range k.streams {
			if key == st.Stream {
				pi = i
			}
		}
		for _, m := range st.Messages {
			fields := make([]any, 0, 2*len(m.Values))
			for f, v := range m.Values {
				fields = append(fields, f, v)
			}
			if d, ok := c.delivery(ctx, shard, pi, m.ID, fields, 1); ok {
				out = append(out, d)
			}
		}
	}
	return out, nil
}

// delivery builds a Delivery from a stream entry; a malformed entry goes to the
// dead-letter stream instead (ok false).
func (c *Consumer) delivery(ctx context.Context, shard, prio int, id string, fields []any, deliveries int64) (Delivery, bool) {
	d := Delivery{Shard: shard, EntryID: id, Deliveries: deliveries, prio: prio}
	d.Pool = c.pool
	d.Priority = job.Priorities()[prio]
	var strs []string
	for i := 0; i+1 < len(fields); i += 2 {
		f, _ := fields[i].(string)
		v, _ := fields[i+1].(string)
		strs = append(strs, f, v)
		switch f {
		case "j":
			d.JobID = v
		case "p":
			d.Payload = v
		}
	}
	if ms, _, ok := strings.Cut(id, "-"); ok {
		if n, err := strconv.ParseInt(ms, 10, 64); err == nil {
			d.EnqueuedAt = time.UnixMilli(n)
		}
	}
	if d.JobID == "" {
		// Best effort: if this fails the entry stays pending and a later reclaim
		// dead-letters it after MaxDeliveries.
		_ = c.deadLetter(ctx, d, "malformed: no job id", strs)
		return Delivery{}, false
	}
	return d, true
}

// reclaim takes over entries of this shard whose lease ran out.
func (c *Consumer) reclaim(ctx context.Context, shard, count int) ([]Delivery, error) {
	k := c.q.keys(c.pool, shard)
	var out []Delivery
	for pi, stream := range k.streams {
		if len(out) >= count {
			break
		}
		res, err := reclaimScript.Run(ctx, c.q.rdb, []string{stream, k.dead, k.ids},
			c.q.cfg.Group, c.name, c.q.cfg.Lease.Milliseconds(), count-len(out),
			c.q.cfg.MaxDeliveries, c.q.cfg.DeadLetterMaxLen).Result()
		if isNoGroup(err) {
			return out, c.q.ensureShardGroups(ctx, c.pool, shard)
		}
		if err != nil {
			return out, fmt.Errorf("reclaim in pool %s shard %d: %w", c.pool, shard, err)
		}
		flat, _ := res.([]any)
		for i := 0; i+2 < len(flat); i += 3 {
			id, _ := flat[i].(string)
			fields, _ := flat[i+1].([]any)
			n, _ := flat[i+2].(int64)
			if d, ok := c.delivery(ctx, shard, pi, id, fields, n); ok {
				out = append(out, d)
			}
		}
	}
	return out, nil
}

// Ack completes deliveries: they leave the queue for good. Deliveries of several
// shards are acknowledged in one pipelined round trip.
func (c *Consumer) Ack(ctx context.Context, ds ...Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	type group struct {
		shard, prio int
		ids, jobs   []any
	}
	groups := map[[2]int]*group{}
	var order [][2]int
	for _, d := range ds {
		key := [2]int{d.Shard, d.prio}
		g := groups[key]
		if g == nil {
			g = &group{shard: d.Shard, prio: d.prio}
			groups[key] = g
			order = append(order, key)
		}
		g.ids = append(g.ids, d.EntryID)
		g.jobs = append(g.jobs, d.JobID)
	}
	if len(order) == 1 {
		g := groups[order[0]]
		k := c.q.keys(c.pool, g.shard)
		args := append(append([]any{c.q.cfg.Group}, g.ids...), g.jobs...)
		if err := ackScript.Run(ctx, c.q.rdb, []string{k.streams[g.prio], k.ids}, args...).Err(); err != nil {
			return fmt.Errorf("ack %d jobs in pool %s: %w", len(ds), c.pool, err)
		}
		return nil
	}
	run := func() error {
		pipe := c.q.rdb.Pipeline()
		for _, key := range order {
			g := groups[key]
			k := c.q.keys(c.pool, g.shard)
			args := append(append([]any{c.q.cfg.Group}, g.ids...), g.jobs...)
			ackScript.EvalSha(ctx, pipe, []string{k.streams[g.prio], k.ids}, args...)
		}
		_, err := pipe.Exec(ctx)
		return err
	}
	err := run()
	if isNoScript(err) { // acks are idempotent: send them again
		if err = c.q.loadScripts(ctx); err == nil {
			err = run()
		}
	}
	if err != nil {
		return fmt.Errorf("ack %d jobs in pool %s: %w", len(ds), c.pool, err)
	}
	return nil
}

// Extend renews the leases of running deliveries. It returns the deliveries whose
// lease this consumer lost (they ran out and another consumer took them over): the
// caller should stop working on those.
func (c *Consumer) Extend(ctx context.Context, ds ...Delivery) (lost []Delivery, err error) {
	byStream := map[[2]int][]Delivery{}
	for _, d := range ds {
		key := [2]int{d.Shard, d.prio}
		byStream[key] = append(byStream[key], d)
	}
	for key, group := range byStream {
		k := c.q.keys(c.pool, key[0])
		args := []any{c.q.cfg.Group, c.name}
		for _, d := range group {
			args = append(args, d.EntryID)
		}
		res, err := extendScript.Run(ctx, c.q.rdb, []string{k.streams[key[1]]}, args...).StringSlice()
		if err != nil {
			return lost, fmt.Errorf("extend leases in pool %s: %w", c.pool, err)
		}
		gone := map[string]bool{}
		for _, id := range res {
			gone[id] = true
		}
		for _, d := range group {
			if gone[d.EntryID] {
				lost = append(lost, d)
			}
		}
	}
	return lost, nil
}

// DeadLetter moves a taken delivery to the pool's dead-letter stream with a reason
// (e.g. the job failed for good, or its record is missing).
func (c *Consumer) DeadLetter(ctx context.Context, d Delivery, reason string) error {
	fields := []string{"j", d.JobID}
	if d.Payload != "" {
		fields = append(fields, "p", d.Payload)
	}
	return c.deadLetter(ctx, d, reason, fields)
}

func (c *Consumer) deadLetter(ctx context.Context, d Delivery, reason string, fields []string) error {
	k := c.q.keys(c.pool, d.Shard)
	args := []any{c.q.cfg.Group, d.EntryID, reason, d.JobID, c.q.cfg.DeadLetterMaxLen}
	for _, f := range fields {
		args = append(args, f)
	}
	if err := deadLetterScript.Run(ctx, c.q.rdb, []string{k.streams[d.prio], k.dead, k.ids}, args...).Err(); err != nil {
		return fmt.Errorf("dead-letter entry %s in pool %s: %w", d.EntryID, c.pool, err)
	}
	return nil
}
