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
	hint        string      // the pool's high-waiting hint as the last take saw it
	wakeAcks    []string    // wake-up entries read, acknowledged with the next call on the home shard
	scans       int         // looks at every shard so far (for tests)
	reclaims    []time.Time // per shard: last reclaim pass
	reclaimNext int
	delayed     []time.Time // per shard: last take that checked the delayed zset itself
}

// delayedCheckEvery is how often a consumer's take on a shard checks the
// delayed zset without trusting the due time the shard records (see takeScript).
const delayedCheckEvery = time.Second

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
	return &Consumer{q: q, pool: pool, name: name, home: home, next: home, reclaims: make([]time.Time, q.cfg.Shards),
		delayed: make([]time.Time, q.cfg.Shards)}, nil
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
//
// An idle consumer blocks on its home shard and is woken for a job on any shard
// of the pool (see enqueueScript and wakeScript).
func (c *Consumer) AckTake(ctx context.Context, done []Delivery, limit int, block time.Duration) ([]Delivery, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("queue: take limit must be positive, got %d", limit)
	}
	if err := c.prepare(ctx); err != nil {
		return nil, err
	}
	acks, err := c.ackElsewhere(ctx, done)
	if err != nil {
		return nil, err
	}
	out, err := c.takeReady(ctx, acks, limit)
	if err != nil {
		return nil, err
	}
	if len(out) > 0 {
		return c.finish(ctx, out, limit, acks)
	}
	return c.await(ctx, acks[c.home], limit, block)
}

// prepare lingers after a short batch (see Config.Linger) and creates the
// pool's consumer groups on the first call.
func (c *Consumer) prepare(ctx context.Context) error {
	if c.short && c.q.cfg.Linger > 0 {
		time.Sleep(c.q.cfg.Linger)
	}
	if !c.grouped {
		if err := c.q.EnsureGroups(ctx, c.pool); err != nil {
			return err
		}
		c.grouped = true
	}
	return nil
}

// ackElsewhere acknowledges the deliveries of shards this call will not read
// and returns the others (those of the home shard and the one being drained)
// by shard, to go with the reads.
func (c *Consumer) ackElsewhere(ctx context.Context, done []Delivery) (map[int][]Delivery, error) {
	acks := map[int][]Delivery{}
	var other []Delivery
	for _, d := range done {
		if d.Shard == c.home || d.Shard == c.next {
			acks[d.Shard] = append(acks[d.Shard], d)
		} else {
			other = append(other, d)
		}
	}
	return acks, c.Ack(ctx, other...)
}

// takeReady takes what is there without waiting: the read-ahead buffer (high
// jobs elsewhere first while the hint is set), jobs whose lease ran out, then
// the shard being drained and the home shard. After a short batch it leaves
// the home shard to the blocking read (which takes what is there at once), so
// that an idle consumer pays one round trip, not two, unless the last hint it
// saw says high jobs may wait elsewhere (the read would take the home shard's
// normal and low jobs).
func (c *Consumer) takeReady(ctx context.Context, acks map[int][]Delivery, limit int) (out []Delivery, err error) {
	out, c.buf = c.buf, nil
	defer func() {
		if err != nil { // keep what was taken for the next call
			c.buf, out = out, nil
		}
	}()
	if c.hint != "" && slices.ContainsFunc(out, notHigh) {
		highs, err := c.takeByPriority(ctx, limit, 0)
		out = append(out, highs...)
		if err != nil {
			return out, err
		}
	}
	if len(out) < limit {
		got, err := c.reclaimDue(ctx, limit-len(out))
		out = append(out, got...)
		if err != nil {
			return out, err
		}
	}
	if len(out) >= limit || (c.short && c.next == c.home && c.hint == "") {
		return out, nil
	}
	return c.takeNext(ctx, acks, limit, out)
}

// takeNext takes from the shard being drained, then from the home shard, without
// waiting, with a take that obeys the hint, so that a high job elsewhere goes
// first.
func (c *Consumer) takeNext(ctx context.Context, acks map[int][]Delivery, limit int, out []Delivery) ([]Delivery, error) {
	shards := []int{c.next}
	if c.next != c.home {
		shards = append(shards, c.home)
	}
	for _, s := range shards {
		got, _, err := c.takeShard(ctx, s, take{count: limit - len(out), levels: 3, acks: acks[s]})
		if err != nil {
			return out, err
		}
		delete(acks, s)
		if s == c.next && len(got) == 0 {
			c.next = c.home
		}
		out = append(out, got...)
		if c.hint != "" && len(out) < limit {
			// The take stopped at high: a high job may wait elsewhere.
			got, err := c.takeByPriority(ctx, limit-len(out), 0)
			return append(out, got...), err
		}
	}
	return out, nil
}

// await blocks on the home shard until a job arrives there or a wake-up names
// another shard, looking at every shard after each Config.BlockSlice, until
// block has passed (block <= 0: one look, no wait).
func (c *Consumer) await(ctx context.Context, acks []Delivery, limit int, block time.Duration) ([]Delivery, error) {
	deadline := time.Now().Add(block)
	for {
		wait := time.Duration(-1) // no BLOCK: answer at once
		if block > 0 {
			wait = min(max(time.Until(deadline), time.Millisecond), c.q.cfg.BlockSlice)
		}
		got, woken, err := c.readHome(ctx, acks, limit, wait)
		acks = nil
		if err != nil {
			return nil, err
		}
		if len(got) > 0 {
			return c.finish(ctx, got, limit, nil)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// The read timed out (or a take that does not wait found nothing):
		// look at every shard; a consumer that goes on waiting registers as
		// idle, so that producers wake it for jobs on any shard. A wake-up that
		// found its job taken by another consumer only goes back to waiting:
		// a look after each would keep an idle pool registered, and waking.
		if !woken || block <= 0 {
			var idle time.Duration
			if block > 0 {
				idle = 2*c.q.cfg.BlockSlice + 100*time.Millisecond
			}
			if got, err = c.takeByPriority(ctx, limit, idle); err != nil {
				return nil, err
			}
			if len(got) > 0 {
				return c.finish(ctx, got, limit, nil)
			}
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
func (c *Consumer) finish(ctx context.Context, out []Delivery, limit int, acks map[int][]Delivery) ([]Delivery, error) {
	var rest []Delivery
	for _, ds := range acks {
		rest = append(rest, ds...)
	}
	if err := c.Ack(ctx, rest...); err != nil {
		c.buf = append(out, c.buf...)
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

func notHigh(d Delivery) bool { return d.prio() > 0 }

// takeByPriority takes up to limit new entries, high before normal before low
// across all shards: one pipelined round trip looks at every shard (scan), then
// it takes each priority from the shards that have it, the home shard first and
// then the next ones round the ring. The last other shard it took from becomes
// the one being drained. When no shard has a high job, it clears the pool's
// high-waiting hints. idle > 0 registers the consumer as idle (see scan).
func (c *Consumer) takeByPriority(ctx context.Context, limit int, idle time.Duration) ([]Delivery, error) {
	waiting, hints, err := c.scan(ctx, idle)
	if err != nil {
		return nil, err
	}
	c.hint = ""
	if i := slices.IndexFunc(hints, func(h string) bool { return h != "" }); i >= 0 {
		c.hint = hints[i]
		if !slices.Contains(waiting, 1) && !slices.Contains(waiting, -1) {
			if err := c.clearHints(ctx, hints); err != nil {
				return nil, err
			}
			c.hint = ""
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
			got, w, err := c.takeShard(ctx, s, take{count: limit - len(out), levels: level, report: true})
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
// With idle > 0 it also registers the consumer, for that long, in every
// shard's copy of the pool's idle consumers. A shard that does not answer (e.g.
// its master just died) is left out, unless none answers.
func (c *Consumer) scan(ctx context.Context, idle time.Duration) (waiting []int, hints []string, err error) {
	c.scans++
	n := c.q.cfg.Shards
	run := func() []*redis.Cmd {
		cmds := make([]*redis.Cmd, n)
		pipe := c.q.rdb.Pipeline()
		for s := range n {
			cmds[s] = takeScript.EvalSha(ctx, pipe, c.q.keys(c.pool, s).takeKeys(), c.takeArgs(s, take{levels: 3, report: true, idle: idle})...)
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
			clearHintScript.Eval(ctx, pipe, []string{c.q.keys(c.pool, s).ids}, v)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("clear high-waiting hints of pool %s: %w", c.pool, err)
	}
	return nil
}

// readHome reads the home shard, waiting up to wait (negative: not at all), and
// takes from the shards a wake-up named (woken: there was one); while the hint
// says high jobs may wait elsewhere and it took a normal or low job, it takes
// those high jobs too. Deliveries beyond limit go to the buffer (see finish).
func (c *Consumer) readHome(ctx context.Context, acks []Delivery, limit int, wait time.Duration) (got []Delivery, woken bool, err error) {
	got, shards, err := c.readHomeShard(ctx, acks, limit, wait)
	if err != nil {
		return nil, false, err
	}
	if len(got) > 0 {
		c.next = c.home
	}
	for _, s := range shards {
		if len(got) >= limit {
			break
		}
		more, _, err := c.takeShard(ctx, s, take{count: limit - len(got), levels: 3})
		got = append(got, more...)
		if err != nil {
			c.buf = append(c.buf, got...)
			return nil, false, err
		}
		if len(more) > 0 {
			c.next = s
		}
	}
	if c.hint != "" && slices.ContainsFunc(got, notHigh) {
		highs, err := c.takeByPriority(ctx, limit, 0)
		got = append(got, highs...)
		if err != nil {
			c.buf = append(c.buf, got...)
			return nil, false, err
		}
	}
	return got, len(shards) > 0, nil
}

// readHomeShard acknowledges acks of the home shard (promoting due delayed jobs)
// and reads new entries of its three streams and its wake-up stream, waiting
// up to wait (negative: not at all), in one pipelined round trip to the shard's
// master; it learns the pool's
// high-waiting hint and returns the jobs and the shards wake-ups named. It is
// used when the shard was drained last time, so an arriving job usually finds
// one stream with one entry. XREADGROUP's COUNT applies per stream, so it asks
// for ceil(limit/3) of each: at most limit+2 (finish keeps the surplus for the
// next call).
func (c *Consumer) readHomeShard(ctx context.Context, acks []Delivery, limit int, wait time.Duration) ([]Delivery, []int, error) {
	k := c.q.keys(c.pool, c.home)
	pipe := c.q.rdb.Pipeline()
	sc := takeScript.EvalSha(ctx, pipe, k.takeKeys(), c.takeArgs(c.home, take{acks: acks})...)
	xr := pipe.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: c.q.cfg.Group, Consumer: c.name, Count: int64((limit + 2) / 3), Block: wait,
		Streams: []string{k.streams[0], k.streams[1], k.streams[2], k.wake, ">", ">", ">", ">"},
	})
	_, _ = pipe.Exec(ctx) // errors are per command, read below
	if res, err := sc.Result(); err != nil {
		if !isNoScript(err) {
			return nil, nil, fmt.Errorf("ack in pool %s shard %d: %w", c.pool, c.home, err)
		}
		// The read ran anyway; acknowledge the normal way (it loads the script).
		if err := c.Ack(ctx, acks...); err != nil {
			return nil, nil, err
		}
	} else {
		_, c.hint, _ = parseTake(res)
	}
	res, err := xr.Result()
	switch {
	case errors.Is(err, redis.Nil):
		return nil, nil, nil
	case stream.Lost(err): // the stream vanished (e.g. lost in a failover): recreate the group
		return nil, nil, c.q.ensureShardGroups(ctx, c.pool, c.home)
	case err != nil:
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		return nil, nil, fmt.Errorf("read pool %s shard %d: %w", c.pool, c.home, err)
	}
	var out []Delivery
	var woken []int
	for _, st := range res {
		pi := slices.Index(k.streams[:], st.Stream)
		for _, m := range st.Messages {
			if st.Stream == k.wake {
				c.wakeAcks = append(c.wakeAcks, m.ID)
				woken = addShards(woken, m.Values["s"], c.q.cfg.Shards)
				continue
			}
			fields := make([]any, 0, 2*len(m.Values))
			for f, v := range m.Values {
				fields = append(fields, f, v)
			}
			if d, ok := c.delivery(ctx, c.home, max(pi, 0), m.ID, fields, 1); ok {
				out = append(out, d)
			}
		}
	}
	return out, woken, nil
}

// addShards adds the shards of a wake-up entry's comma-separated list to woken.
func addShards(woken []int, list any, shards int) []int {
	str, _ := list.(string)
	for _, f := range strings.Split(str, ",") {
		if s, err := strconv.Atoi(f); err == nil && s >= 0 && s < shards && !slices.Contains(woken, s) {
			woken = append(woken, s)
		}
	}
	return woken
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
	// Wake-up entries whose reader died before acknowledging them: drop them.
	// Best effort: a failure only leaves them pending until the next pass.
	_ = dropWakesScript.Run(ctx, c.q.rdb, []string{c.q.keys(c.pool, s).wake}, c.q.cfg.Group, c.name, c.q.cfg.Lease.Milliseconds()).Err()
	return c.reclaim(ctx, s, limit)
}

// take is one call of the take script on a shard (see takeScript).
type take struct {
	count, levels int
	report        bool          // ignore the hint and report what is waiting
	idle          time.Duration // > 0: register as an idle consumer of the pool, this long
	acks          []Delivery
}

// takeArgs builds the take script's arguments for shard. A call on the home
// shard also acknowledges the wake-up entries read since the last one (if the
// call fails they stay pending until a reclaim drops them). A scan (report),
// and a take on a shard not checked for delayedCheckEvery, checks the delayed
// zset itself.
func (c *Consumer) takeArgs(shard int, t take) []any {
	r := 0
	if t.report {
		r = 1
	}
	check := 0
	if now := time.Now(); t.report || now.Sub(c.delayed[shard]) >= delayedCheckEvery {
		check = 1
		c.delayed[shard] = now
	}
	var wakes []string
	if shard == c.home {
		wakes, c.wakeAcks = c.wakeAcks, nil
	}
	args := make([]any, 0, 9+3*(len(t.acks)+len(wakes)))
	args = append(args, c.q.cfg.Group, c.name, t.count, t.levels, r,
		ceilMillis(t.idle), c.home, check, len(t.acks)+len(wakes))
	for _, d := range t.acks {
		args = append(args, d.prio()+1, d.EntryID, d.JobID)
	}
	for _, id := range wakes {
		args = append(args, 4, id, "")
	}
	return args
}

// ceilMillis is d in whole milliseconds, rounded up; 0 for d <= 0.
func ceilMillis(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Millisecond - 1) / time.Millisecond)
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

// takeShard runs the take script on one shard (acknowledging t.acks, taking up
// to t.count new entries from its first t.levels priority streams) and returns
// what the shard has waiting afterwards (when t.report); it learns the pool's
// high-waiting hint.
func (c *Consumer) takeShard(ctx context.Context, shard int, t take) ([]Delivery, int, error) {
	if t.count <= 0 && len(t.acks) == 0 {
		return nil, 0, nil
	}
	keys := c.q.keys(c.pool, shard).takeKeys()
	args := c.takeArgs(shard, t)
	res, err := stream.Recover(ctx, c.q.rdb, c.q.groups(c.pool, shard), func() (any, error) {
		return takeScript.Run(ctx, c.q.rdb, keys, args...).Result()
	})
	if err != nil {
		return nil, 0, fmt.Errorf("take from pool %s shard %d: %w", c.pool, shard, err)
	}
	waiting, hint, flat := parseTake(res)
	c.hint = hint
	var out []Delivery
	for i := 0; i+2 < len(flat); i += 3 {
		pi, _ := flat[i].(int64)
		id, _ := flat[i+1].(string)
		fields, _ := flat[i+2].([]any)
		if d, ok := c.delivery(ctx, shard, int(pi)-1, id, fields, 1); ok {
			out = append(out, d)
		}
	}
	return out, waiting, nil
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
			takeScript.EvalSha(ctx, pipe, c.q.keys(c.pool, shard).takeKeys(), c.takeArgs(shard, take{acks: acks})...)
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
