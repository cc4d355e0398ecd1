// Package fairq shares a pool's slots among tenants by weight: admission in
// front of the pool's queue (internal/queue).
//
// While a pool has room (fewer jobs out in its queue, ready or running, than
// its live worker slots plus a small buffer) and no tenant's job waits, a new
// job goes straight into the queue: the single-tenant path is the queue's own.
// Beyond that a job waits in its tenant's sub-queue (priority, then FIFO), and
// each time a job of the pool ends (lifecycle's end hook: Ended) a pick moves
// the next jobs into the queue: start-time fair queueing over the tenants
// (see scripts.go), so slot-seconds are served in proportion to the weights,
// priorities still order a tenant's own jobs, and a tenant with nothing
// waiting takes no share (its first new job is the next pick).
//
// All of a pool's fair state is on one Redis Cluster slot (rediskeys.Fair);
// no script crosses slots. A move is "pick" (a script that takes the job out
// of its sub-queue and records it as moving), "enqueue" (idempotent per job
// id), then "confirm" (HDEL of the move): a mover that dies between the first
// two leaves the move, which the next Pump sends again, so a job is neither
// lost nor doubled; the job record (MongoDB) stays the truth, and the
// reconciler re-admits a queued job found nowhere (Holds).
package fairq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/internal/rediskeys"
	"github.com/aigw/aigw/internal/registry"
)

// Policy gives a tenant's fair-share weight and max_running (0: none) in a
// pool (from quota.Cache: see quota.Tenant.WeightIn).
type Policy func(ctx context.Context, tenant, pool string) (weight float64, maxRunning int, err error)

// Config tunes a Fair. Zero values take the defaults noted.
type Config struct {
	// Buffer is how many jobs beyond the live slots stay ready in the queue,
	// so a worker that frees a slot finds the next job at once (default 2;
	// negative: none).
	Buffer int
	// SlotsTTL is how long a pool's live slots are cached (default 1s).
	SlotsTTL time.Duration
	// Stale is how long a move may stay unconfirmed before Pump sends it
	// again (default 2s).
	Stale time.Duration
	// SweepAge: Pump drops jobs out longer than this that the queue no longer
	// holds (their end was never reported) (default 10s).
	SweepAge time.Duration
	// Alpha is the weight of a new run in the pool's mean run (default 0.2).
	Alpha float64
	// Policy gives weights and limits at admission (nil: weight 1, no limit).
	Policy Policy
	Log    *slog.Logger
}

func (c *Config) defaults() {
	if c.Buffer == 0 {
		c.Buffer = 2
	}
	c.Buffer = max(c.Buffer, 0)
	if c.SlotsTTL <= 0 {
		c.SlotsTTL = time.Second
	}
	if c.Stale <= 0 {
		c.Stale = 2 * time.Second
	}
	if c.SweepAge <= 0 {
		c.SweepAge = 10 * time.Second
	}
	if c.Alpha <= 0 || c.Alpha > 1 {
		c.Alpha = 0.2
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
}

// Fair is safe for concurrent use.
type Fair struct {
	rdb redis.UniversalClient
	q   *queue.Queue
	reg *registry.Registry
	cfg Config

	mu    sync.Mutex
	slots map[string]cachedSlots
}

type cachedSlots struct {
	n  int
	at time.Time
}

// New returns a Fair over the pool queues of q (nil without a client or a
// queue: its Ended then does nothing).
func New(rdb redis.UniversalClient, q *queue.Queue, cfg Config) *Fair {
	if rdb == nil || q == nil {
		return nil
	}
	cfg.defaults()
	return &Fair{rdb: rdb, q: q, reg: registry.New(rdb), cfg: cfg, slots: map[string]cachedSlots{}}
}

// message is a waiting job as the scripts keep it.
type message struct {
	Tenant    string `json:"t"`
	Priority  string `json:"p"`
	NotBefore int64  `json:"n"`
	Payload   string `json:"d"`
}

func keys(pool string) ([]string, string) {
	k := rediskeys.Fair(pool)
	return []string{k.Jobs, k.Active, k.VT, k.Weights, k.Limits, k.Out, k.OutInfo, k.OutN, k.Moving, k.Stats}, k.QueuePrefix
}

// Slots is the pool's live worker slots (draining workers left out), cached
// for Config.SlotsTTL.
func (f *Fair) Slots(ctx context.Context, pool string) (int, error) {
	f.mu.Lock()
	c, ok := f.slots[pool]
	f.mu.Unlock()
	if ok && time.Since(c.at) < f.cfg.SlotsTTL {
		return c.n, nil
	}
	ws, err := f.reg.Workers(ctx, pool)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, w := range ws {
		if !w.Draining {
			n += max(w.Slots, 1)
		}
	}
	f.mu.Lock()
	f.slots[pool] = cachedSlots{n, time.Now()}
	f.mu.Unlock()
	return n, nil
}

// unmanaged is the room of a pool without live workers: all of it. Nobody is
// served, so there is nothing to share yet, and the queue's depth shows the
// whole backlog to whoever scales the pool up.
const unmanaged = 1 << 30

func (f *Fair) capacity(ctx context.Context, pool string) (int, error) {
	n, err := f.Slots(ctx, pool)
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return unmanaged, nil
	}
	return n + f.cfg.Buffer, nil
}

// Admission is what Submit did with a job.
type Admission string

const (
	// Direct: the job went straight into the queue.
	Direct Admission = "direct"
	// Held: the job waits in its tenant's sub-queue (it may have been picked
	// and moved already).
	Held Admission = "held"
	// Duplicate: the job was admitted before (admission is idempotent).
	Duplicate Admission = "dup"
	// Out: the job was admitted before and counts as out in the queue (e.g.
	// it is retried): it is enqueued again, which is idempotent.
	Out Admission = "out"
)

// Submit admits queued job j to its pool: into the queue while the pool has
// room and nothing waits (or it has no live worker), else into its tenant's
// sub-queue, from which it and others are moved into the queue as room
// allows. An error leaves the job to the reconciler (its record says queued).
func (f *Fair) Submit(ctx context.Context, j *job.Job) (Admission, error) {
	w, limit := 1.0, 0
	if f.cfg.Policy != nil {
		var err error
		if w, limit, err = f.cfg.Policy(ctx, j.Tenant, j.Pool); err != nil {
			return "", fmt.Errorf("fair share of %s in %s: %w", j.Tenant, j.Pool, err)
		}
	}
	c, err := f.capacity(ctx, j.Pool)
	if err != nil {
		return "", err
	}
	m := queue.MessageOf(j)
	var nb int64
	if !m.NotBefore.IsZero() {
		nb = m.NotBefore.UnixMilli()
	}
	prio := 1
	switch j.Priority {
	case job.High:
		prio = 0
	case job.Low:
		prio = 2
	}
	b, _ := json.Marshal(message{Tenant: j.Tenant, Priority: string(j.Priority), NotBefore: nb, Payload: m.Payload})
	ks, qp := keys(j.Pool)
	res, err := admitScript.Run(ctx, f.rdb, ks, qp, j.ID, j.Tenant, prio, string(b),
		strconv.FormatFloat(w, 'g', -1, 64), limit, c).Slice()
	if err != nil {
		return "", fmt.Errorf("admit job %s to pool %s: %w", j.ID, j.Pool, err)
	}
	verdict, _ := res[0].(string)
	switch a := Admission(verdict); a {
	case Direct, Out:
		if _, err := f.q.Enqueue(ctx, m); err != nil {
			return a, err
		}
		return a, nil
	case Held:
		return Held, f.move(ctx, j.Pool, res[1:])
	}
	return Duplicate, nil
}

// move enqueues the picked jobs (pairs id, message) and confirms the moves.
// A failure leaves the moves for the next Pump.
func (f *Fair) move(ctx context.Context, pool string, pairs []any) error {
	if len(pairs) < 2 {
		return nil
	}
	ms := make([]queue.Message, 0, len(pairs)/2)
	ids := make([]string, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		id, _ := pairs[i].(string)
		raw, _ := pairs[i+1].(string)
		var m message
		if err := json.Unmarshal([]byte(raw), &m); err != nil {
			return fmt.Errorf("fair share of pool %s: message of job %s: %w", pool, id, err)
		}
		qm := queue.Message{JobID: id, Pool: pool, Priority: job.Priority(m.Priority), Payload: m.Payload}
		if m.NotBefore > 0 {
			qm.NotBefore = time.UnixMilli(m.NotBefore)
		}
		ms = append(ms, qm)
		ids = append(ids, id)
	}
	if _, err := f.q.EnqueueBatch(ctx, ms); err != nil {
		return fmt.Errorf("move %d jobs into pool %s: %w", len(ms), pool, err)
	}
	if err := f.rdb.HDel(ctx, rediskeys.Fair(pool).Moving, ids...).Err(); err != nil {
		return fmt.Errorf("confirm moves in pool %s: %w", pool, err)
	}
	return nil
}

// Done forgets job jobID of pool, which ended or left the queue: a waiting
// job leaves its sub-queue; a job out in the queue frees its room, its real
// slotSeconds (0: unknown) are charged to its tenant and feed the pool's
// mean run. Then the next jobs move in.
func (f *Fair) Done(ctx context.Context, pool, jobID string, slotSeconds float64) error {
	return f.done(ctx, pool, jobID, slotSeconds, false)
}

func (f *Fair) done(ctx context.Context, pool, jobID string, slotSeconds float64, sweep bool) error {
	c, err := f.capacity(ctx, pool)
	if err != nil {
		return err
	}
	ks, qp := keys(pool)
	sw := "0"
	if sweep {
		sw = "1"
	}
	res, err := doneScript.Run(ctx, f.rdb, ks, qp, jobID, strconv.FormatFloat(max(slotSeconds, 0), 'f', 3, 64), c,
		strconv.FormatFloat(f.cfg.Alpha, 'g', -1, 64), sw).Slice()
	if err != nil {
		return fmt.Errorf("fair share: end of job %s in pool %s: %w", jobID, pool, err)
	}
	return f.move(ctx, pool, res)
}

// endTimeout bounds the work of the end hook, which runs after a durable write.
const endTimeout = 5 * time.Second

// Ended is lifecycle's end hook (Lifecycle.OnEnd): job j left the queued or
// running state for another (or went back to queued after a run) having used
// u; its room in the pool goes to the next job. Errors are logged: a lost end
// is swept by Pump.
func (f *Fair) Ended(ctx context.Context, j *job.Job, u job.Usage) {
	if f == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), endTimeout)
	defer cancel()
	if err := f.Done(ctx, j.Pool, j.ID, u.CPUSeconds); err != nil {
		f.cfg.Log.WarnContext(ctx, "fair share: job end not recorded (the next pump sweeps it)", "job_id", j.ID, "pool", j.Pool, "err", err)
	}
}

// Pump sends again the moves left unconfirmed, drops jobs out in the queue
// whose end was never reported (the queue no longer holds them), and moves
// jobs into the pool as room allows. It returns how many jobs it moved. The
// orchestrator runs it every tick; Submit and Done do the same work for their
// pool as they go.
func (f *Fair) Pump(ctx context.Context, pool string) (int, error) {
	if err := f.sweep(ctx, pool); err != nil {
		return 0, err
	}
	c, err := f.capacity(ctx, pool)
	if err != nil {
		return 0, err
	}
	ks, qp := keys(pool)
	res, err := pumpScript.Run(ctx, f.rdb, ks, qp, c, f.cfg.Stale.Milliseconds()).Slice()
	if err != nil {
		return 0, fmt.Errorf("fair share: pump pool %s: %w", pool, err)
	}
	return len(res) / 2, f.move(ctx, pool, res)
}

// sweep forgets the jobs out longer than SweepAge that the queue no longer
// holds.
func (f *Fair) sweep(ctx context.Context, pool string) error {
	k := rediskeys.Fair(pool)
	old, err := f.rdb.ZRangeByScore(ctx, k.Out, &redis.ZRangeBy{Min: "-inf",
		Max: strconv.FormatInt(time.Now().Add(-f.cfg.SweepAge).UnixMilli(), 10), Count: 1000}).Result()
	if err != nil {
		return fmt.Errorf("fair share: sweep pool %s: %w", pool, err)
	}
	for _, id := range old {
		in, err := f.q.Contains(ctx, pool, id)
		if err != nil {
			return err
		}
		if in {
			// Still out: renew its time so the next sweeps skip it for a while.
			f.rdb.ZAddXX(ctx, k.Out, redis.Z{Score: float64(time.Now().UnixMilli()), Member: id})
			continue
		}
		if err := f.done(ctx, pool, id, 0, true); err != nil {
			return err
		}
	}
	return nil
}

// Pools lists the pools that have fair-share state (those of the registry).
func (f *Fair) Pools(ctx context.Context) ([]string, error) {
	ps, err := f.rdb.SMembers(ctx, rediskeys.Pools).Result()
	if err != nil {
		return nil, fmt.Errorf("fair share: pools: %w", err)
	}
	return ps, nil
}

// Holds reports whether job jobID waits in pool's sub-queues or is being
// moved: the reconciler then leaves it alone.
func (f *Fair) Holds(ctx context.Context, pool, jobID string) (bool, error) {
	k := rediskeys.Fair(pool)
	pipe := f.rdb.Pipeline()
	a := pipe.HExists(ctx, k.Jobs, jobID)
	b := pipe.HExists(ctx, k.Moving, jobID)
	if _, err := pipe.Exec(ctx); err != nil {
		return false, fmt.Errorf("fair share: lookup of job %s: %w", jobID, err)
	}
	return a.Val() || b.Val(), nil
}

// Position says how many waiting jobs of pool fair share moves into the queue
// before job jobID, and their expected slot-seconds (held false: the job does
// not wait in a sub-queue).
func (f *Fair) Position(ctx context.Context, pool, jobID string) (ahead int64, work float64, held bool, err error) {
	ks, qp := keys(pool)
	res, err := positionScript.Run(ctx, f.rdb, ks, qp, jobID).Result()
	if err != nil {
		return 0, 0, false, fmt.Errorf("fair share: position of job %s: %w", jobID, err)
	}
	r, ok := res.([]any)
	if !ok || len(r) < 2 {
		return 0, 0, false, nil
	}
	ahead, _ = r[0].(int64)
	w, _ := r[1].(string)
	work, _ = strconv.ParseFloat(w, 64)
	return ahead, work, true, nil
}

// PoolState is a pool's fair-share figures.
type PoolState struct {
	// Waiting is the jobs in the tenants' sub-queues; Out the jobs admission
	// put in the queue that have not ended.
	Waiting, Out int64
	// MeanRun is the mean run of the pool's jobs (slot-seconds, EWMA; 0
	// before the first end).
	MeanRun float64
	// Runs counts the ends that fed MeanRun.
	Runs int64
	// Rate is the slot-seconds of runs ended per second (EWMA over windows
	// of a second or more; 0 before the first), measured at RateAt.
	Rate   float64
	RateAt time.Time
}

// State reads pool's fair-share figures.
func (f *Fair) State(ctx context.Context, pool string) (PoolState, error) {
	k := rediskeys.Fair(pool)
	pipe := f.rdb.Pipeline()
	w := pipe.HLen(ctx, k.Jobs)
	o := pipe.ZCard(ctx, k.Out)
	s := pipe.HMGet(ctx, k.Stats, "ewma", "n", "rate", "rate_at")
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return PoolState{}, fmt.Errorf("fair share: state of pool %s: %w", pool, err)
	}
	st := PoolState{Waiting: w.Val(), Out: o.Val()}
	if v := s.Val(); len(v) == 4 {
		if e, ok := v[0].(string); ok {
			st.MeanRun, _ = strconv.ParseFloat(e, 64)
		}
		if n, ok := v[1].(string); ok {
			st.Runs, _ = strconv.ParseInt(n, 10, 64)
		}
		if r, ok := v[2].(string); ok {
			st.Rate, _ = strconv.ParseFloat(r, 64)
		}
		if at, ok := v[3].(string); ok {
			ms, _ := strconv.ParseInt(at, 10, 64)
			st.RateAt = time.UnixMilli(ms)
		}
	}
	return st, nil
}

// SetPolicy records tenant's weight and max_running (0: none) in pool at once
// (admission records them too, at each submit).
func (f *Fair) SetPolicy(ctx context.Context, pool, tenant string, weight float64, maxRunning int) error {
	k := rediskeys.Fair(pool)
	pipe := f.rdb.Pipeline()
	pipe.HSet(ctx, k.Weights, tenant, strconv.FormatFloat(weight, 'g', -1, 64))
	pipe.HSet(ctx, k.Limits, tenant, maxRunning)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("fair share: policy of %s in %s: %w", tenant, pool, err)
	}
	return nil
}

// Waiting lists up to max job ids of tenant waiting in pool (highest priority
// first).
func (f *Fair) Waiting(ctx context.Context, pool, tenant string, max int64) ([]string, error) {
	ids, err := f.rdb.ZRange(ctx, rediskeys.Fair(pool).QueuePrefix+tenant, 0, max-1).Result()
	if err != nil {
		return nil, fmt.Errorf("fair share: waiting jobs of %s in %s: %w", tenant, pool, err)
	}
	return ids, nil
}

// Purge deletes pool's fair-share state (tests and benchmarks).
func (f *Fair) Purge(ctx context.Context, pool string) error {
	k := rediskeys.Fair(pool)
	tenants, err := f.rdb.ZRange(ctx, k.Active, 0, -1).Result()
	if err != nil {
		return err
	}
	ks, _ := keys(pool)
	for _, t := range tenants {
		ks = append(ks, k.QueuePrefix+t)
	}
	return f.rdb.Del(ctx, ks...).Err()
}

// rateFresh is how long a measured service rate is used.
const rateFresh = 30 * time.Second

// Estimate is a queued job's place in its pool (1: next) and when it is
// expected to start (nil before the pool has live slots and a measured run).
type Estimate struct {
	Position int64
	Start    *time.Time
}

// Estimate places queued job j in its pool, given the pool's queue figures
// st. A job in the queue: every ready job at a higher priority is ahead of
// it, and at its own priority at most all of them are. A job waiting for its
// fair share: every ready job is ahead, then the jobs fair share moves into
// the queue before it (Position). Its start is now when free slots outnumber
// the jobs ahead, else now plus the slot-seconds ahead of it (the ready jobs'
// at the pool's mean run, the waiting ones' at their tenants' mean runs) ÷
// the pool's service rate (slot-seconds ended per second, measured; at most
// its live slots).
func (f *Fair) Estimate(ctx context.Context, j *job.Job, st queue.PoolStats) (Estimate, error) {
	var n, all int64
	for _, p := range job.Priorities() {
		all += st.Ready[p]
	}
	for _, p := range job.Priorities() {
		n += st.Ready[p]
		if p == j.Priority || (j.Priority == "" && p == job.Normal) {
			break
		}
	}
	ahead, work, held, err := f.Position(ctx, j.Pool, j.ID)
	if err != nil {
		return Estimate{}, err
	}
	ready := n
	if held {
		ready = all
		n = all + ahead + 1
	}
	e := Estimate{Position: max(n, 1)}
	fs, err := f.State(ctx, j.Pool)
	if err != nil || fs.MeanRun <= 0 {
		return e, err
	}
	slots, err := f.Slots(ctx, j.Pool)
	if err != nil || slots <= 0 {
		return e, err
	}
	if held {
		work += float64(ready) * fs.MeanRun
	} else { // the ready jobs at its priority or higher
		work = float64(max(n-1, 0)) * fs.MeanRun
	}
	// As many jobs ahead as free slots or fewer: it starts at once. Else the
	// pool works off the slot-seconds ahead first, at its measured service
	// rate (at most its live slots; the slots alone without a recent one).
	rate := float64(slots)
	if fs.Rate > 0 && time.Since(fs.RateAt) < rateFresh {
		rate = min(rate, fs.Rate)
	}
	wait := time.Duration(0)
	if e.Position-1 >= max(int64(slots)-st.Running, 0) {
		wait = time.Duration(work / rate * float64(time.Second))
	}
	at := time.Now().Add(wait).UTC().Truncate(time.Millisecond)
	e.Start = &at
	return e, nil
}
