// Package queue is aigw's job queue on Redis Cluster: per-pool Redis Streams,
// sharded over K hash-tagged keys ("aigw:{<pool>#<shard>}:…") so one pool spreads
// over the cluster's masters, with priorities, consumer groups, leases, recovery of
// a dead consumer's jobs, delayed (not_before) jobs and a dead-letter stream.
//
// The queue carries job ids; MongoDB holds the job records and is the source of
// truth. Delivery is at least once; enqueue is idempotent per job id (a job id sits
// in its pool at most once), so a reconciler may re-add a job it finds recorded as
// queued but missing from the queue without ever making a second copy.
package queue

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/redisconn"
	"github.com/aigw/aigw/internal/rediskeys"
	"github.com/aigw/aigw/internal/stream"
)

// Config tunes a Queue. Zero values take the defaults noted.
type Config struct {
	// Shards is the number of shards K per pool (default 8). Every producer and
	// consumer of a pool must use the same K: a job's shard is hash(job id) mod K.
	Shards int
	// Group is the consumer group name (default "workers").
	Group string
	// Lease is how long a taken job stays with its consumer without a renewal
	// before another consumer may reclaim it (default 30s).
	Lease time.Duration
	// MaxDeliveries: a job delivered more often than this (its consumers kept dying)
	// goes to the dead-letter stream (default 5).
	MaxDeliveries int
	// DeadLetterMaxLen caps each dead-letter stream, approximately (default 10000).
	DeadLetterMaxLen int64
	// BlockSlice is the longest one blocking read waits on a consumer's home shard
	// before it looks at the pool's other shards again (default 1s, at most 2s: a
	// blocking read shares a pipeline, which go-redis bounds by its ReadTimeout).
	BlockSlice time.Duration
	// ReclaimEvery is how often a consumer looks for expired leases on each shard
	// while taking work (default Lease/4).
	ReclaimEvery time.Duration
	// WaitReplicas > 0 makes Enqueue wait (Redis WAIT) until that many replicas have
	// the job, up to WaitTimeout (default 100ms): one more round trip, and an
	// enqueue reported Replicated then survives the loss of its master. One that
	// is not (e.g. a promoted master has no replica yet) is still queued; if its
	// master dies too, the reconciler re-adds it from MongoDB.
	WaitReplicas int
	WaitTimeout  time.Duration
	// Linger is how long a consumer waits, after a read that returned fewer jobs
	// than asked for, before it reads again (default 2ms; negative: never). It
	// lets the next read return a batch instead of one job when jobs are short
	// and consumers outnumber them: fewer round trips per job (measured: 8.3k →
	// 13k jobs/s end to end), at the cost of up to Linger more latency for a job
	// that arrives in that window while no other consumer waits.
	Linger time.Duration
	// EnqueuePipelines is how many pipelines per master concurrent Enqueue calls
	// share (default 2; see batcher). 1 minimises round trips, more lowers the wait of
	// a call that arrives while a pipeline is in flight.
	EnqueuePipelines int
}

func (c *Config) defaults() {
	if c.Shards <= 0 {
		c.Shards = 8
	}
	if c.Group == "" {
		c.Group = "workers"
	}
	if c.Lease <= 0 {
		c.Lease = 30 * time.Second
	}
	if c.MaxDeliveries <= 0 {
		c.MaxDeliveries = 5
	}
	if c.DeadLetterMaxLen <= 0 {
		c.DeadLetterMaxLen = 10000
	}
	if c.BlockSlice <= 0 {
		c.BlockSlice = time.Second
	}
	c.BlockSlice = min(c.BlockSlice, 2*time.Second)
	if c.ReclaimEvery <= 0 {
		c.ReclaimEvery = c.Lease / 4
	}
	if c.WaitTimeout <= 0 {
		c.WaitTimeout = 100 * time.Millisecond
	}
	if c.Linger == 0 {
		c.Linger = 2 * time.Millisecond
	}
	if c.EnqueuePipelines <= 0 {
		c.EnqueuePipelines = 2
	}
}

// Queue is safe for concurrent use.
type Queue struct {
	rdb redis.UniversalClient
	cfg Config

	mu       sync.Mutex
	batchers map[string]*batcher // by master address: see batcherFor

	// quiet holds, per pool shard (shardRef), when an enqueue there last found
	// no consumer of the pool idle (unix ns, *atomic.Int64, taken before the
	// enqueue was sent). An enqueue to that shard within idleRecheck after it
	// does not look again (one command fewer per job in a busy pool, where
	// nobody registers as idle). The price: a consumer that registers as idle
	// within that window is not woken for a job this process then queues on
	// that shard, which waits for a consumer homed there or for the idle one's
	// next look at every shard (Config.BlockSlice). Consumers register only
	// after a block slice with nothing on their home shard, so a pool that gets
	// a job on a shard every idleRecheck seldom has one.
	quiet sync.Map
}

// shardRef names one shard of a pool.
type shardRef struct {
	pool  string
	shard int
}

// idleRecheck: see Queue.quiet.
const idleRecheck = 5 * time.Millisecond

// New returns a Queue over an open client (see redisconn.Open).
func New(rdb redis.UniversalClient, cfg Config) *Queue {
	cfg.defaults()
	return &Queue{rdb: rdb, cfg: cfg, batchers: map[string]*batcher{}}
}

// batcherFor returns the batcher of the master that holds key, so that a pipeline
// goes to one node and its callers wait for that node alone, not for the slowest
// of all masters. (The slot map is cached; a stale one only costs a redirect,
// which the cluster client follows.)
func (q *Queue) batcherFor(ctx context.Context, key string) *batcher {
	addr := ""
	if cc, ok := q.rdb.(*redis.ClusterClient); ok {
		if node, err := cc.MasterForKey(ctx, key); err == nil {
			addr = node.Options().Addr
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	b := q.batchers[addr]
	if b == nil {
		b = &batcher{q: q, maxFlushers: q.cfg.EnqueuePipelines, maxBatch: 256}
		q.batchers[addr] = b
	}
	return b
}

// Config returns the queue's configuration with defaults filled in.
func (q *Queue) Config() Config { return q.cfg }

var (
	// ErrBadPool is matched by errors about an invalid pool name.
	ErrBadPool = errors.New("invalid pool name")
	// ErrBadMessage is matched by errors about an invalid message.
	ErrBadMessage = errors.New("invalid queue message")
)

var poolRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// ValidatePool checks a pool name: 1–63 of a-z 0-9 . _ -, starting with a letter or
// digit (the name goes into Redis key hash tags).
func ValidatePool(pool string) error {
	if !poolRE.MatchString(pool) {
		return fmt.Errorf("%w %q: use 1-63 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit", ErrBadPool, pool)
	}
	return nil
}

// shardKeys names the keys of one pool shard; they all share one hash tag.
type shardKeys struct {
	streams [3]string // high, normal, low
	delayed string
	ids     string
	dead    string
	hint    string // the high-waiting hint's key of older versions (now a field of ids; purged)
	wake    string // wake-up stream (see wakeScript)
	idle    string // the pool's idle consumers' homes, one copy per shard (see enqueueScript)
}

// takeKeys are the take script's keys.
func (k shardKeys) takeKeys() []string {
	return []string{k.streams[0], k.streams[1], k.streams[2], k.delayed, k.ids, k.wake, k.idle}
}

func (q *Queue) keys(pool string, shard int) shardKeys {
	k := rediskeys.QueueShard(pool, shard)
	return shardKeys{streams: k.Streams, delayed: k.Delayed, ids: k.IDs, dead: k.Dead, hint: k.HighWaiting,
		wake: k.Wake, idle: k.Idle}
}

// ShardOf returns the shard a job id lives on.
func (q *Queue) ShardOf(jobID string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(jobID))
	return int(h.Sum32() % uint32(q.cfg.Shards))
}

func prioIndex(p job.Priority) (int, error) {
	switch p {
	case job.High:
		return 0, nil
	case job.Normal, "":
		return 1, nil
	case job.Low:
		return 2, nil
	}
	return 0, fmt.Errorf("%w: unknown priority %q", ErrBadMessage, p)
}

// Message is one job to queue.
type Message struct {
	JobID    string
	Pool     string
	Priority job.Priority // empty means normal
	// NotBefore delays the job: no consumer takes it earlier. Zero means now.
	NotBefore time.Time
	// Payload is optional opaque data carried with the job id (keep it small; the
	// job record is in MongoDB).
	Payload string
}

// MessageOf is the queue entry of a recorded job: its id, pool, priority and
// delay, and its dispatch hint as the payload.
func MessageOf(j *job.Job) Message {
	m := Message{JobID: j.ID, Pool: j.Pool, Priority: j.Priority, Payload: j.DispatchHint()}
	if j.NotBefore != nil {
		m.NotBefore = *j.NotBefore
	}
	return m
}

func (m Message) validate() error {
	if err := ValidatePool(m.Pool); err != nil {
		return err
	}
	if m.JobID == "" || strings.ContainsAny(m.JobID, "|") || len(m.JobID) > 128 {
		return fmt.Errorf("%w: job id %q must be 1-128 characters without '|'", ErrBadMessage, m.JobID)
	}
	_, err := prioIndex(m.Priority)
	return err
}

// Enqueued says what Enqueue did.
type Enqueued struct {
	Shard int
	// EntryID is the stream entry id, "delayed" for a job with a future NotBefore,
	// or "" when the job was already in the queue (Duplicate).
	EntryID   string
	Duplicate bool
	// Replicated: WaitReplicas replicas confirmed the enqueue (always false when
	// WaitReplicas is 0).
	Replicated bool
}

// enqueueArgs builds the enqueue script's keys and arguments for a message that
// Enqueue or EnqueueBatch has validated; it skips the look for idle consumers
// when an enqueue to the shard found none less than idleRecheck before now.
func (q *Queue) enqueueArgs(m Message, now int64) (keys []string, args []any, shard int) {
	shard = q.ShardOf(m.JobID)
	k := q.keys(m.Pool, shard)
	pi, _ := prioIndex(m.Priority)
	prio := job.Priorities()[pi]
	var nb int64
	if !m.NotBefore.IsZero() {
		nb = m.NotBefore.UnixMilli()
	}
	skip := 0
	if t, ok := q.quiet.Load(shardRef{m.Pool, shard}); ok && now-t.(*atomic.Int64).Load() < int64(idleRecheck) {
		skip = 1
	}
	return []string{k.ids, k.streams[pi], k.delayed, k.idle}, []any{m.JobID, string(prio), m.Payload, nb, shard, skip}, shard
}

// markQuiet records that an enqueue sent at sent (unix ns) to a pool shard
// found no consumer of the pool idle.
func (q *Queue) markQuiet(pool string, shard int, sent int64) {
	ref := shardRef{pool, shard}
	t, ok := q.quiet.Load(ref)
	if !ok {
		t, _ = q.quiet.LoadOrStore(ref, new(atomic.Int64))
	}
	v := t.(*atomic.Int64)
	for old := v.Load(); old < sent && !v.CompareAndSwap(old, sent); old = v.Load() {
	}
}

// enqueuedFrom reads the enqueue script's result, and the home shard of the
// consumer to wake, or what the script says instead (see enqueueScript: -1
// nobody idle, -2 one homed on the shard is, -3 not looked).
func enqueuedFrom(shard int, res any, err error) (Enqueued, int, error) {
	if err != nil {
		return Enqueued{}, -3, err
	}
	r, _ := res.([]any)
	if len(r) != 2 {
		return Enqueued{}, -3, fmt.Errorf("enqueue script answered %v", res)
	}
	id, _ := r[0].(string)
	wake, _ := r[1].(int64)
	if id == "" {
		return Enqueued{Shard: shard, Duplicate: true}, -3, nil
	}
	return Enqueued{Shard: shard, EntryID: id}, int(wake), nil
}

// Enqueue adds a job to its pool. Concurrent calls share pipelines, so a call
// costs at most one round trip (two with WaitReplicas) and under load a fraction of
// one. A job already in the queue is not added again (Duplicate).
//
// ctx is checked when the call starts; once its job is handed to a pipeline the
// call waits for that pipeline's answer (bounded by the client's timeouts), since
// the pipeline carries other callers' jobs too.
func (q *Queue) Enqueue(ctx context.Context, m Message) (Enqueued, error) {
	if err := m.validate(); err != nil {
		return Enqueued{}, err
	}
	e, err := q.batcherFor(ctx, q.keys(m.Pool, q.ShardOf(m.JobID)).ids).enqueue(ctx, m)
	if err != nil {
		return e, fmt.Errorf("enqueue job %s to pool %s: %w", m.JobID, m.Pool, err)
	}
	return e, nil
}

// EnqueueBatch adds many jobs in one pipelined round trip per master (two with
// WaitReplicas). It is idempotent: after an error the whole batch may be sent again.
func (q *Queue) EnqueueBatch(ctx context.Context, ms []Message) ([]Enqueued, error) {
	for _, m := range ms {
		if err := m.validate(); err != nil {
			return nil, err
		}
	}
	res, errs := q.sendBatch(ctx, ms)
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("enqueue job %s to pool %s: %w", ms[i].JobID, ms[i].Pool, err)
		}
	}
	return res, nil
}

// sendBatch pipelines the enqueue script for validated messages and, with
// WaitReplicas, one WAIT per master involved.
func (q *Queue) sendBatch(ctx context.Context, ms []Message) ([]Enqueued, []error) {
	res := make([]Enqueued, len(ms))
	errs := make([]error, len(ms))
	keys := make([][]string, len(ms))
	args := make([][]any, len(ms))
	sent := time.Now().UnixNano()
	for i, m := range ms {
		keys[i], args[i], res[i].Shard = q.enqueueArgs(m, sent)
	}
	run := func() (cmds []*redis.Cmd, noScript bool) {
		cmds = make([]*redis.Cmd, len(ms))
		pipe := q.rdb.Pipeline()
		for i := range ms {
			cmds[i] = enqueueScript.EvalSha(ctx, pipe, keys[i], args[i]...)
		}
		_, _ = pipe.Exec(ctx) // errors are per command, read below
		for _, c := range cmds {
			noScript = noScript || isNoScript(c.Err())
		}
		return cmds, noScript
	}
	cmds, noScript := run()
	if noScript { // a new master (e.g. after a failover) lacks the script: load, resend (idempotent)
		if err := q.loadScripts(ctx); err == nil {
			cmds, _ = run()
		}
	}
	waits := map[string]bool{}      // master key → replicated
	highs := map[string]bool{}      // pools that got a high job
	wakes := map[wakeTarget][]int{} // idle consumers' home shards → the shards with jobs for them
	for i, c := range cmds {
		v, err := c.Result()
		var home int
		res[i], home, errs[i] = enqueuedFrom(res[i].Shard, v, err)
		if errs[i] != nil || res[i].Duplicate {
			continue
		}
		if q.cfg.WaitReplicas > 0 {
			waits[keys[i][0]] = false
		}
		if res[i].EntryID != "delayed" && ms[i].Priority == job.High {
			highs[ms[i].Pool] = true
		}
		if home == -1 {
			q.markQuiet(ms[i].Pool, res[i].Shard, sent)
		}
		if home >= 0 {
			w := wakeTarget{pool: ms[i].Pool, home: home}
			if !slices.Contains(wakes[w], res[i].Shard) {
				wakes[w] = append(wakes[w], res[i].Shard)
			}
		}
	}
	if len(highs) > 0 || len(wakes) > 0 {
		q.hintAndWake(ctx, highs, wakes)
	}
	if len(waits) > 0 {
		q.waitReplicas(ctx, waits)
		for i := range ms {
			if ok, asked := waits[keys[i][0]]; asked && errs[i] == nil && !res[i].Duplicate {
				res[i].Replicated = ok
			}
		}
	}
	return res, errs
}

// wakeTarget is an idle consumer's home shard, to wake.
type wakeTarget struct {
	pool string
	home int
}

// hintAndWake runs, in one pipelined round trip after the jobs are in their
// streams, what their enqueue asked for:
//
//   - it increments the high-waiting hint on every shard of each pool in highs,
//     so that every consumer of the pool looks for the high jobs before it takes
//     a normal or low job (see takeScript);
//   - it wakes the idle consumers the enqueue script named (see wakeScript), so
//     that a job on a shard no consumer blocks on is taken at once instead of at
//     the next look at every shard (up to Config.BlockSlice later).
//
// It is best effort: a hint that fails to be set leaves the job first in its
// own shard only, a wake-up that fails leaves the job to the next look, and the
// jobs are queued either way, so the error is not the caller's. (A delayed high
// job sets no hint when it becomes due.)
func (q *Queue) hintAndWake(ctx context.Context, highs map[string]bool, wakes map[wakeTarget][]int) {
	pipe := q.rdb.Pipeline()
	for pool := range highs {
		for s := range q.cfg.Shards {
			pipe.HIncrBy(ctx, q.keys(pool, s).ids, "|h", 1)
		}
	}
	for w, shards := range wakes {
		k := q.keys(w.pool, w.home)
		list := make([]string, len(shards))
		for i, s := range shards {
			list[i] = strconv.Itoa(s)
		}
		wakeScript.EvalSha(ctx, pipe, []string{k.wake}, strings.Join(list, ","))
	}
	if _, err := pipe.Exec(ctx); isNoScript(err) && len(wakes) > 0 && q.loadScripts(ctx) == nil {
		q.hintAndWake(ctx, nil, wakes)
	}
}

// waitReplicas sends WAIT to the master of each key (once per master) and records
// per key whether WaitReplicas replicas confirmed everything written so far.
func (q *Queue) waitReplicas(ctx context.Context, keys map[string]bool) {
	byNode := map[*redis.Client][]string{}
	for key := range keys {
		var node *redis.Client
		switch c := q.rdb.(type) {
		case *redis.ClusterClient:
			node, _ = c.MasterForKey(ctx, key)
		case *redis.Client:
			node = c
		}
		if node != nil {
			byNode[node] = append(byNode[node], key)
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for node, ks := range byNode {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := node.Wait(ctx, q.cfg.WaitReplicas, q.cfg.WaitTimeout).Result()
			ok := err == nil && n >= int64(q.cfg.WaitReplicas)
			mu.Lock()
			for _, k := range ks {
				keys[k] = ok
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
}

func isNoScript(err error) bool { return err != nil && strings.Contains(err.Error(), "NOSCRIPT") }

// loadScripts loads every script on every master, for pipelines (which cannot fall
// back from EVALSHA to EVAL by themselves).
func (q *Queue) loadScripts(ctx context.Context) error {
	return redisconn.ForEachMaster(ctx, q.rdb, func(ctx context.Context, c *redis.Client) error {
		for _, s := range allScripts {
			if err := s.Load(ctx, c).Err(); err != nil {
				return err
			}
		}
		return nil
	})
}

// Contains reports whether a job id is in its pool's queue (queued, delayed or
// taken and not yet acknowledged).
func (q *Queue) Contains(ctx context.Context, pool, jobID string) (bool, error) {
	if err := ValidatePool(pool); err != nil {
		return false, err
	}
	n, err := q.rdb.HExists(ctx, q.keys(pool, q.ShardOf(jobID)).ids, jobID).Result()
	if err != nil {
		return false, fmt.Errorf("queue lookup of job %s: %w", jobID, err)
	}
	return n, nil
}

// Purge deletes every key of a pool (queued, running, delayed and dead-lettered
// entries alike), one shard at a time.
func (q *Queue) Purge(ctx context.Context, pool string) error {
	if err := ValidatePool(pool); err != nil {
		return err
	}
	for s := 0; s < q.cfg.Shards; s++ {
		k := q.keys(pool, s)
		if err := q.rdb.Del(ctx, k.streams[0], k.streams[1], k.streams[2], k.delayed, k.ids, k.dead, k.hint,
			k.wake, k.idle).Err(); err != nil {
			return fmt.Errorf("purge pool %s shard %d: %w", pool, s, err)
		}
	}
	return nil
}

// EnsureGroups creates the consumer group on every stream of the pool (from the
// start of each stream, so nothing enqueued before is missed). Idempotent.
func (q *Queue) EnsureGroups(ctx context.Context, pool string) error {
	if err := ValidatePool(pool); err != nil {
		return err
	}
	for s := 0; s < q.cfg.Shards; s++ {
		if err := q.ensureShardGroups(ctx, pool, s); err != nil {
			return err
		}
	}
	return nil
}

func (q *Queue) ensureShardGroups(ctx context.Context, pool string, shard int) error {
	for _, g := range q.groups(pool, shard) {
		if err := g.Create(ctx, q.rdb); err != nil {
			return err
		}
	}
	return nil
}

// groups are the consumer groups of one pool shard, one per priority stream and
// one on the wake-up stream.
func (q *Queue) groups(pool string, shard int) []stream.Group {
	k := q.keys(pool, shard)
	gs := make([]stream.Group, 0, len(k.streams)+1)
	for _, key := range append(k.streams[:], k.wake) {
		gs = append(gs, stream.Group{Stream: key, Name: q.cfg.Group})
	}
	return gs
}
