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
	"github.com/aigw/aigw/internal/stream"
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
	// Home is the shard the consumer prefers among shards with work of the same
	// priority, and blocks on when the pool is idle; consumers of one pool should
	// spread their homes over the shards (e.g. worker slot index). Negative means
	// hash(name) mod K.
	Home int
}

// Consumer takes jobs of one pool under one consumer name. A Consumer is not safe
// for concurrent use; run one per goroutine.
type Consumer struct {
	q           *Queue
	pool        string
	name        string
	home        int
	next        int // the shard being drained: home, or another one a scan found work on
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

// Take returns up to max jobs, high priority first across the whole pool,
// waiting up to block for one to arrive when the pool is empty (block <= 0: do not
// wait). It also takes over jobs whose lease ran out (see Config.Lease) and moves
// malformed entries to the dead-letter stream. An empty result with a nil error
// means nothing came in time.
func (c *Consumer) Take(ctx context.Context, limit int, block time.Duration) ([]Delivery, error) {
	return c.AckTake(ctx, nil, limit, block)
}

// AckTake acknowledges done, then takes as Take does. Acknowledgements on the shard
// it reads first (usually all of them: a consumer drains one shard at a time)
// travel in the same round trip as the read, so a busy consumer pays about one
// round trip per batch, acknowledgements included.
//
// Priority holds across the pool: while a shard of the pool holds a high job
// (as its producer's hint says, see takeScript), a consumer looks at every shard
// and takes high jobs before any normal or low one, and then normal before low.
// Without high jobs waiting, a consumer drains its home shard by priority, then
// others. A returned batch is ordered by priority.
func (c *Consumer) AckTake(ctx context.Context, done []Delivery, limit int, block time.Duration) ([]Delivery, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("queue: take limit must be positive, got %d", limit)
	}
	if c.short && c.q.cfg.Linger > 0 {
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
	// The shard being drained, then the home shard, without waiting: a take that
	// obeys the hint, so that a high job elsewhere goes first. (Even when the home
	// shard came up short last time: a blocking read would take its low jobs.)
	shards := []int{c.next}
	if c.next != c.home {
		shards = append(shards, c.home)
	}
	hinted := false
	for _, s := range shards {
		got, _, hint, err := c.takeShard(ctx, s, limit-len(out), 3, false, acks[s])
		if err != nil {
			return nil, err
		}
		delete(acks, s)
		if s == c.next && len(got) == 0 {
			c.next = c.home
		}
		out = append(out, got...)
		if hint != "" && len(out) < limit {
			hinted = true // the take stopped at high: a high job may wait elsewhere
			break
		}
	}
	if hinted {
		got, err := c.takeByPriority(ctx, limit-len(out))
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	if len(out) > 0 {
		return c.finish(ctx, out, limit, acks[c.home])
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
		// on is found by the look at every shard below, after at most BlockSlice.
		got, hint, err := c.readHome(ctx, acks[c.home], limit, wait)
		delete(acks, c.home)
		if err != nil {
			return nil, err
		}
		if len(got) > 0 {
			c.next = c.home
			if hint != "" && slices.ContainsFunc(got, func(d Delivery) bool { return d.prio() > 0 }) {
				// A high job may wait elsewhere: it goes first (finish keeps the
				// surplus of this batch for the next call).
				highs, err := c.takeByPriority(ctx, limit)
				if err != nil {
					return nil, err
				}
				got = append(got, highs...)
			}
			return c.finish(ctx, got, limit, nil)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if got, err = c.takeByPriority(ctx, limit); err != nil {
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
// deliveries, high priority first; the rest wait in the consumer's buffer for its
// next call.
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

// takeByPriority takes up to limit new entries, high before normal before low
// across all shards: one pipelined round trip looks at every shard (scan), then
// it takes each priority from the shards that have it, the home shard first and
// then the next ones round the ring. The last other shard it took from becomes
// the one being drained. When no shard has a high job, it clears the pool's
// high-waiting hints.
func (c *Consumer) takeByPriority(ctx context.Context, limit int) ([]Delivery, error) {
	waiting, hints, err := c.scan(ctx)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(waiting, 1) && !slices.Contains(waiting, -1) && slices.ContainsFunc(hints, func(h string) bool { return h != "" }) {
		if err := c.clearHints(ctx, hints); err != nil {
			return nil, err
		}
	}
	var out []Delivery
	n := c.q.cfg.Shards
	for level := 1; level <= 3 && len(out) < limit; level++ {
		for i := 0; i < n && len(out) < limit; i++ {
			s := (c.home + i) % n
			if waiting[s] != level {
				continue
			}
			got, w, _, err := c.takeShard(ctx, s, limit-len(out), level, true, nil)
			if err != nil {
				return out, err
			}
			waiting[s] = w
			if len(got) > 0 && s != c.home {
				c.next = s
			}
			out = append(out, got...)
		}
	}
	return out, nil
}

// scan promotes due delayed jobs and learns which priority each shard has
// waiting (1 high … 3 low, 0 none, -1 the shard did not answer) and its
// high-waiting hint, with the take script at count 0 on every shard, in one
// pipelined round trip (the cluster client sends each master its part at once).
// A shard that does not answer (e.g. its master just died) is left out, unless
// none answers.
func (c *Consumer) scan(ctx context.Context) (waiting []int, hints []string, err error) {
	n := c.q.cfg.Shards
	run := func() []*redis.Cmd {
		cmds := make([]*redis.Cmd, n)
		pipe := c.q.rdb.Pipeline()
		for s := range n {
			cmds[s] = takeScript.EvalSha(ctx, pipe, c.q.keys(c.pool, s).takeKeys(), c.takeArgs(0, 3, true, nil)...)
		}
		_, _ = pipe.Exec(ctx) // errors are per command, read below
		return cmds
	}
	cmds := run()
	if slices.ContainsFunc(cmds, func(cmd *redis.Cmd) bool { return isNoScript(cmd.Err()) }) {
		// A new master (e.g. after a failover) lacks the script: load it, send again.
		if err := c.q.loadScripts(ctx); err != nil {
			return nil, nil, fmt.Errorf("scan pool %s: %w", c.pool, err)
		}
		cmds = run()
	}
	waiting, hints = make([]int, n), make([]string, n)
	var errs []error
	for s, cmd := range cmds {
		res, err := cmd.Result()
		if err != nil {
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			waiting[s] = -1
			errs = append(errs, fmt.Errorf("scan pool %s shard %d: %w", c.pool, s, err))
			continue
		}
		waiting[s], hints[s], _ = parseTake(res)
	}
	if len(errs) == n {
		return nil, nil, errors.Join(errs...)
	}
	return waiting, hints, nil
}

// clearHints clears each shard's high-waiting hint that still has the value the
// scan saw (a producer that incremented it since keeps it set).
func (c *Consumer) clearHints(ctx context.Context, seen []string) error {
	pipe := c.q.rdb.Pipeline()
	for s, v := range seen {
		if v != "" {
			clearHintScript.Eval(ctx, pipe, []string{c.q.keys(c.pool, s).hint}, v)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("clear high-waiting hints of pool %s: %w", c.pool, err)
	}
	return nil
}

// readHome acknowledges acks of the home shard (promoting due delayed jobs) and
// reads new entries of its three streams, waiting up to wait (negative: not at
// all), in one pipelined round trip to the shard's master, and returns the
// shard's high-waiting hint. It is used when the shard was drained last time, so
// an arriving job usually finds one stream with one entry. XREADGROUP's COUNT
// applies per stream, so it asks for ceil(limit/3) of each: at most limit+2
// (finish keeps the surplus for the next call).
func (c *Consumer) readHome(ctx context.Context, acks []Delivery, limit int, wait time.Duration) ([]Delivery, string, error) {
	k := c.q.keys(c.pool, c.home)
	pipe := c.q.rdb.Pipeline()
	sc := takeScript.EvalSha(ctx, pipe, k.takeKeys(), c.takeArgs(0, 0, false, acks)...)
	xr := pipe.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: c.q.cfg.Group, Consumer: c.name, Count: int64((limit + 2) / 3), Block: wait,
		Streams: []string{k.streams[0], k.streams[1], k.streams[2], ">", ">", ">"},
	})
	_, _ = pipe.Exec(ctx) // errors are per command, read below
	hint := ""
	if res, err := sc.Result(); err != nil {
		if !isNoScript(err) {
			return nil, "", fmt.Errorf("ack in pool %s shard %d: %w", c.pool, c.home, err)
		}
		// The read ran anyway; acknowledge the normal way (it loads the script).
		if err := c.Ack(ctx, acks...); err != nil {
			return nil, "", err
		}
	} else {
		_, hint, _ = parseTake(res)
	}
	res, err := xr.Result()
	switch {
	case errors.Is(err, redis.Nil):
		return nil, hint, nil
	case stream.Lost(err): // the stream vanished (e.g. lost in a failover): recreate the group
		return nil, hint, c.q.ensureShardGroups(ctx, c.pool, c.home)
	case err != nil:
		if ctx.Err() != nil {
			return nil, "", ctx.Err()
		}
		return nil, "", fmt.Errorf("read pool %s shard %d: %w", c.pool, c.home, err)
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
	return out, hint, nil
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

// takeArgs builds the take script's arguments: count, levels, whether to report
// (ignoring the hint), then the acks.
func (c *Consumer) takeArgs(count, levels int, report bool, acks []Delivery) []any {
	r := 0
	if report {
		r = 1
	}
	args := make([]any, 0, 6+3*len(acks))
	args = append(args, c.q.cfg.Group, c.name, count, levels, r, len(acks))
	for _, d := range acks {
		args = append(args, d.prio()+1, d.EntryID, d.JobID)
	}
	return args
}

// parseTake splits the take script's result: what the shard has waiting, its
// hint, and the flat triples taken.
func parseTake(res any) (waiting int, hint string, triples []any) {
	flat, _ := res.([]any)
	if len(flat) < 2 {
		return 0, "", nil
	}
	w, _ := flat[0].(int64)
	hint, _ = flat[1].(string)
	return int(w), hint, flat[2:]
}

// takeShard acknowledges acks of one shard and takes up to count new entries from
// its first levels priority streams (see takeScript for report), and returns what
// the shard has waiting afterwards (when reported) and its hint.
func (c *Consumer) takeShard(ctx context.Context, shard, count, levels int, report bool, acks []Delivery) ([]Delivery, int, string, error) {
	if count <= 0 && len(acks) == 0 {
		return nil, 0, "", nil
	}
	keys := c.q.keys(c.pool, shard).takeKeys()
	res, err := stream.Recover(ctx, c.q.rdb, c.q.groups(c.pool, shard), func() (any, error) {
		return takeScript.Run(ctx, c.q.rdb, keys, c.takeArgs(count, levels, report, acks)...).Result()
	})
	if err != nil {
		return nil, 0, "", fmt.Errorf("take from pool %s shard %d: %w", c.pool, shard, err)
	}
	waiting, hint, flat := parseTake(res)
	var out []Delivery
	for i := 0; i+2 < len(flat); i += 3 {
		pi, _ := flat[i].(int64)
		id, _ := flat[i+1].(string)
		fields, _ := flat[i+2].([]any)
		if d, ok := c.delivery(ctx, shard, int(pi)-1, id, fields, 1); ok {
			out = append(out, d)
		}
	}
	return out, waiting, hint, nil
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
	for pi, key := range k.streams {
		if len(out) >= count {
			break
		}
		res, err := stream.Recover(ctx, c.q.rdb, c.q.groups(c.pool, shard), func() (any, error) {
			return reclaimScript.Run(ctx, c.q.rdb, []string{key, k.dead, k.ids},
				c.q.cfg.Group, c.name, c.q.cfg.Lease.Milliseconds(), count-len(out),
				c.q.cfg.MaxDeliveries, c.q.cfg.DeadLetterMaxLen).Result()
		})
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
			takeScript.EvalSha(ctx, pipe, c.q.keys(c.pool, shard).takeKeys(), c.takeArgs(0, 0, false, acks)...)
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
