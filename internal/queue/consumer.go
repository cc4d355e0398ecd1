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
}

// prio is the index of the delivery's priority stream (0 high, 1 normal, 2 low).
func (d Delivery) prio() int {
	i, _ := prioIndex(d.Priority)
	return i
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
	q           *Queue
	pool        string
	name        string
	home        int
	next        int // the shard being drained: home, or one a sweep found work on
	grouped     bool
	buf         []Delivery  // read ahead beyond a call's limit; served first next time
	short       bool        // the last call returned fewer than asked for (see Config.Linger)
	reclaims    []time.Time // per shard: last reclaim pass
	reclaimNext int
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
func (c *Consumer) Take(ctx context.Context, limit int, block time.Duration) ([]Delivery, error) {
	return c.AckTake(ctx, nil, limit, block)
}

// AckTake acknowledges done, then takes as Take does. Acknowledgements on the shard
// it reads first (usually all of them: a consumer drains one shard at a time)
// travel in the same round trip as the read, so a busy consumer pays about one
// round trip per batch, acknowledgements included.
//
// Within a shard, high is served before normal before low, and a returned batch is
// ordered by priority.
func (c *Consumer) AckTake(ctx context.Context, done []Delivery, limit int, block time.Duration) ([]Delivery, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("queue: take limit must be positive, got %d", limit)
	}
	short := c.short
	if short && c.q.cfg.Linger > 0 {
		time.Sleep(c.q.cfg.Linger)
	}
	if !c.grouped {
		if err := c.q.EnsureGroups(ctx, c.pool); err != nil {
			return nil, err
		}
		c.grouped = true
	}
	acks := map[int][]Delivery{}
	for _, d := range done {
		acks[d.Shard] = append(acks[d.Shard], d)
	}
	var other []Delivery
	for s, ds := range acks {
		if s != c.home && s != c.next {
			other = append(other, ds...)
			delete(acks, s)
		}
	}
	if err := c.Ack(ctx, other...); err != nil {
		return nil, err
	}

	out := c.buf
	c.buf = nil
	if len(out) < limit {
		got, err := c.reclaimDue(ctx, limit-len(out))
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	if c.next != c.home {
		// Draining a shard found by a sweep: go on while it has work.
		got, err := c.takeShard(ctx, c.next, limit-len(out), acks[c.next])
		if err != nil {
			return nil, err
		}
		delete(acks, c.next)
		if len(got) == 0 {
			c.next = c.home
		}
		out = append(out, got...)
	}
	if len(out) > 0 {
		return c.finish(ctx, out, limit, acks[c.home])
	}
	if !short {
		// The home shard had a backlog last time: take from it with the script,
		// which serves priorities strictly and never more than limit.
		got, err := c.takeShard(ctx, c.home, limit, acks[c.home])
		delete(acks, c.home)
		if err != nil {
			return nil, err
		}
		if len(got) > 0 {
			c.next = c.home
			return c.finish(ctx, got, limit, nil)
		}
	}

	deadline := time.Now().Add(block)
	for {
		wait := time.Duration(-1) // no BLOCK: answer at once
		if block > 0 {
			wait = min(max(time.Until(deadline), time.Millisecond), c.q.cfg.BlockSlice)
		}
		// Acknowledge and read the home shard in one round trip; the read blocks
		// until an entry arrives. Consumers of a pool spread their homes, so
		// every shard has a consumer waiting on it; a job on a shard nobody waits
		// on is found by the sweep below, after at most BlockSlice.
		got, err := c.readHome(ctx, acks[c.home], limit, wait)
		delete(acks, c.home)
		if err != nil {
			return nil, err
		}
		if len(got) > 0 {
			c.next = c.home
			return c.finish(ctx, got, limit, nil)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if got, err = c.sweep(ctx, limit); err != nil {
			return nil, err
		}
		if len(got) > 0 {
			return c.finish(ctx, got, limit, nil)
		}
		if block <= 0 || !time.Now().Before(deadline) {
			c.short = true
			return nil, nil
		}
	}
}

// finish acknowledges what is left to acknowledge and returns at most limit
// deliveries, high priority first; the rest (at most two, see readHome) wait in
// the consumer's buffer for its next call.
func (c *Consumer) finish(ctx context.Context, out []Delivery, limit int, acks []Delivery) ([]Delivery, error) {
	if err := c.Ack(ctx, acks...); err != nil {
		return nil, err
	}
	slices.SortStableFunc(out, func(a, b Delivery) int { return a.prio() - b.prio() })
	c.short = len(out) < limit
	if len(out) > limit {
		c.buf = slices.Clone(out[limit:])
		out = out[:limit]
	}
	return out, nil
}

// readHome acknowledges acks of the home shard (promoting due delayed jobs) and
// reads new entries of its three streams, waiting up to wait (negative: not at
// all), in one pipelined round trip to the shard's master. It is used when the
// shard was drained last time, so an arriving job usually finds one stream with
// one entry. XREADGROUP's COUNT applies per stream, so it asks for ceil(limit/3)
// of each: at most limit+2 (finish keeps the surplus for the next call).
func (c *Consumer) readHome(ctx context.Context, acks []Delivery, limit int, wait time.Duration) ([]Delivery, error) {
	k := c.q.keys(c.pool, c.home)
	pipe := c.q.rdb.Pipeline()
	sc := takeScript.EvalSha(ctx, pipe, []string{k.streams[0], k.streams[1], k.streams[2], k.delayed, k.ids}, c.takeArgs(0, acks)...)
	xr := pipe.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: c.q.cfg.Group, Consumer: c.name, Count: int64((limit + 2) / 3), Block: wait,
		Streams: []string{k.streams[0], k.streams[1], k.streams[2], ">", ">", ">"},
	})
	_, _ = pipe.Exec(ctx) // errors are per command, read below
	if err := sc.Err(); err != nil && !errors.Is(err, redis.Nil) {
		if !isNoScript(err) && !isNoGroup(err) {
			return nil, fmt.Errorf("ack in pool %s shard %d: %w", c.pool, c.home, err)
		}
		if isNoScript(err) {
			// The read ran anyway; acknowledge the normal way (it loads the script).
			if err := c.Ack(ctx, acks...); err != nil {
				return nil, err
			}
		}
	}
	res, err := xr.Result()
	switch {
	case errors.Is(err, redis.Nil):
		return nil, nil
	case isNoGroup(err): // the stream vanished (e.g. lost in a failover): recreate the group
		return nil, c.q.ensureShardGroups(ctx, c.pool, c.home)
	case err != nil:
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("read pool %s shard %d: %w", c.pool, c.home, err)
	}
	var out []Delivery
	for _, st := range res {
		pi := slices.Index(k.streams[:], st.Stream)
		for _, m := range st.Messages {
			fields := make([]any, 0, 2*len(m.Values))
			for f, v := range m.Values {
				fields = append(fields, f, v)
			}
			if d, ok := c.delivery(ctx, c.home, max(pi, 0), m.ID, fields, 1); ok {
				out = append(out, d)
			}
		}
	}
	return out, nil
}

// reclaimDue runs the reclaim of one shard whose turn has come (every shard once
// per ReclaimEvery), so expired leases are recovered however busy the pool is.
func (c *Consumer) reclaimDue(ctx context.Context, limit int) ([]Delivery, error) {
	s := c.reclaimNext
	if time.Since(c.reclaims[s]) < c.q.cfg.ReclaimEvery {
		return nil, nil
	}
	c.reclaims[s] = time.Now()
	c.reclaimNext = (s + 1) % c.q.cfg.Shards
	return c.reclaim(ctx, s, limit)
}

// sweep visits every shard but the current one, taking new entries until max are
// collected; the last shard that had work becomes the current one.
func (c *Consumer) sweep(ctx context.Context, limit int) ([]Delivery, error) {
	var out []Delivery
	n := c.q.cfg.Shards
	for i := 1; i < n && len(out) < limit; i++ {
		s := (c.next + i) % n
		got, err := c.takeShard(ctx, s, limit-len(out), nil)
		if err != nil {
			return out, err
		}
		if len(got) > 0 {
			c.next = s
		}
		out = append(out, got...)
	}
	return out, nil
}

// takeArgs builds the take script's arguments: count, then the acks.
func (c *Consumer) takeArgs(count int, acks []Delivery) []any {
	args := make([]any, 0, 4+3*len(acks))
	args = append(args, c.q.cfg.Group, c.name, count, len(acks))
	for _, d := range acks {
		args = append(args, d.prio()+1, d.EntryID, d.JobID)
	}
	return args
}

func (c *Consumer) takeShard(ctx context.Context, shard, count int, acks []Delivery) ([]Delivery, error) {
	if count <= 0 && len(acks) == 0 {
		return nil, nil
	}
	k := c.q.keys(c.pool, shard)
	keys := []string{k.streams[0], k.streams[1], k.streams[2], k.delayed, k.ids}
	res, err := takeScript.Run(ctx, c.q.rdb, keys, c.takeArgs(count, acks)...).Result()
	if isNoGroup(err) { // the stream vanished (e.g. a failover lost it): recreate the group
		if err = c.q.ensureShardGroups(ctx, c.pool, shard); err == nil {
			res, err = takeScript.Run(ctx, c.q.rdb, keys, c.takeArgs(count, acks)...).Result()
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

// delivery builds a Delivery from a stream entry; a malformed entry goes to the
// dead-letter stream instead (ok false).
func (c *Consumer) delivery(ctx context.Context, shard, prio int, id string, fields []any, deliveries int64) (Delivery, bool) {
	d := Delivery{Shard: shard, EntryID: id, Deliveries: deliveries}
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
// shards are acknowledged in one pipelined round trip. Acknowledging is idempotent.
func (c *Consumer) Ack(ctx context.Context, ds ...Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	byShard := map[int][]Delivery{}
	for _, d := range ds {
		byShard[d.Shard] = append(byShard[d.Shard], d)
	}
	run := func() error {
		pipe := c.q.rdb.Pipeline()
		for shard, acks := range byShard {
			k := c.q.keys(c.pool, shard)
			takeScript.EvalSha(ctx, pipe, []string{k.streams[0], k.streams[1], k.streams[2], k.delayed, k.ids}, c.takeArgs(0, acks)...)
		}
		_, err := pipe.Exec(ctx)
		return err
	}
	err := run()
	if isNoScript(err) {
		if err = c.q.loadScripts(ctx); err == nil {
			err = run()
		}
	}
	if err != nil && !errors.Is(err, redis.Nil) {
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
		key := [2]int{d.Shard, d.prio()}
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
	if err := deadLetterScript.Run(ctx, c.q.rdb, []string{k.streams[d.prio()], k.dead, k.ids}, args...).Err(); err != nil {
		return fmt.Errorf("dead-letter entry %s in pool %s: %w", d.EntryID, c.pool, err)
	}
	return nil
}
