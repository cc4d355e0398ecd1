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
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/redisconn"
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
	// before it looks at the pool's other shards again (default 1s).
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
	if c.ReclaimEvery <= 0 {
		c.ReclaimEvery = c.Lease / 4
	}
	if c.WaitTimeout <= 0 {
		c.WaitTimeout = 100 * time.Millisecond
	}
}

// Queue is safe for concurrent use.
type Queue struct {
	rdb redis.UniversalClient
	cfg Config
}

// New returns a Queue over an open client (see redisconn.Open).
func New(rdb redis.UniversalClient, cfg Config) *Queue {
	cfg.defaults()
	return &Queue{rdb: rdb, cfg: cfg}
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
}

func (q *Queue) keys(pool string, shard int) shardKeys {
	p := "aigw:{" + pool + "#" + strconv.Itoa(shard) + "}:"
	return shardKeys{
		streams: [3]string{p + "q:high", p + "q:normal", p + "q:low"},
		delayed: p + "delayed",
		ids:     p + "ids",
		dead:    p + "dead",
	}
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

func (q *Queue) enqueueArgs(m Message) (keys []string, args []any, shard int, err error) {
	if err := m.validate(); err != nil {
		return nil, nil, 0, err
	}
	shard = q.ShardOf(m.JobID)
	k := q.keys(m.Pool, shard)
	pi, _ := prioIndex(m.Priority)
	prio := job.Priorities()[pi]
	var nb int64
	if !m.NotBefore.IsZero() {
		nb = m.NotBefore.UnixMilli()
	}
	return []string{k.ids, k.streams[pi], k.delayed}, []any{m.JobID, string(prio), m.Payload, nb}, shard, nil
}

func enqueuedFrom(shard int, res any, err error) (Enqueued, error) {
	if errors.Is(err, redis.Nil) {
		return Enqueued{Shard: shard, Duplicate: true}, nil
	}
	if err != nil {
		return Enqueued{}, err
	}
	id, _ := res.(string)
	return Enqueued{Shard: shard, EntryID: id}, nil
}

// Enqueue adds a job to its pool: one round trip (two with WaitReplicas). A job
// already in the queue is not added again (Duplicate).
func (q *Queue) Enqueue(ctx context.Context, m Message) (Enqueued, error) {
	keys, args, shard, err := q.enqueueArgs(m)
	if err != nil {
		return Enqueued{}, err
	}
	res, err := enqueueScript.Run(ctx, q.rdb, keys, args...).Result()
	e, err := enqueuedFrom(shard, res, err)
	if err != nil {
		return e, fmt.Errorf("enqueue job %s to pool %s: %w", m.JobID, m.Pool, err)
	}
	if q.cfg.WaitReplicas > 0 && !e.Duplicate {
		// The job is queued whatever WAIT says; only its durability is in question.
		e.Replicated, _ = q.waitReplicas(ctx, keys[0])
	}
	return e, nil
}

// waitReplicas reports whether WaitReplicas replicas of the key's master confirmed
// all writes so far within WaitTimeout.
func (q *Queue) waitReplicas(ctx context.Context, key string) (bool, error) {
	var node *redis.Client
	switch c := q.rdb.(type) {
	case *redis.ClusterClient:
		n, err := c.MasterForKey(ctx, key)
		if err != nil {
			return false, err
		}
		node = n
	case *redis.Client:
		node = c
	default:
		return false, fmt.Errorf("unsupported client %T", q.rdb)
	}
	got, err := node.Wait(ctx, q.cfg.WaitReplicas, q.cfg.WaitTimeout).Result()
	if err != nil {
		return false, err
	}
	return got >= int64(q.cfg.WaitReplicas), nil
}

// EnqueueBatch adds many jobs in one pipelined round trip per master. It is
// idempotent, so on a partial failure the whole batch may simply be sent again.
func (q *Queue) EnqueueBatch(ctx context.Context, ms []Message) ([]Enqueued, error) {
	type call struct {
		shard int
		cmd   *redis.Cmd
	}
	run := func() ([]call, error) {
		calls := make([]call, len(ms))
		pipe := q.rdb.Pipeline()
		for i, m := range ms {
			keys, args, shard, err := q.enqueueArgs(m)
			if err != nil {
				return nil, err
			}
			calls[i] = call{shard, enqueueScript.EvalSha(ctx, pipe, keys, args...)}
		}
		_, err := pipe.Exec(ctx)
		return calls, err
	}
	calls, err := run()
	if err != nil && isNoScript(err) {
		if err = q.loadScripts(ctx); err == nil {
			calls, err = run()
		}
	}
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("enqueue batch of %d: %w", len(ms), err)
	}
	out := make([]Enqueued, len(ms))
	for i, c := range calls {
		res, err := c.cmd.Result()
		if out[i], err = enqueuedFrom(c.shard, res, err); err != nil {
			return nil, fmt.Errorf("enqueue job %s: %w", ms[i].JobID, err)
		}
	}
	return out, nil
}

func isNoScript(err error) bool { return err != nil && strings.Contains(err.Error(), "NOSCRIPT") }

func isNoGroup(err error) bool { return err != nil && strings.Contains(err.Error(), "NOGROUP") }

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
	for _, key := range q.keys(pool, shard).streams {
		err := q.rdb.XGroupCreateMkStream(ctx, key, q.cfg.Group, "0").Err()
		if err != nil && !strings.Contains(err.Error(), "BUSYGROUP") {
			return fmt.Errorf("create consumer group on %s: %w", key, err)
		}
	}
	return nil
}
