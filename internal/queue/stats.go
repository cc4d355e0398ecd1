package queue

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aigw/aigw/internal/job"
)

// PoolStats describes one pool's queue.
type PoolStats struct {
	Pool string
	// Ready counts jobs waiting to be taken, per priority.
	Ready map[job.Priority]int64
	// Running counts jobs taken and not yet acknowledged.
	Running int64
	// Delayed counts jobs waiting for their not_before time.
	Delayed int64
	// Dead counts entries in the dead-letter streams.
	Dead int64
	// OldestWait is how long the oldest ready job has waited (0 when none).
	OldestWait time.Duration
}

// Depth is the number of jobs waiting: ready plus delayed.
func (s PoolStats) Depth() int64 {
	n := s.Delayed
	for _, v := range s.Ready {
		n += v
	}
	return n
}

// Stats reports a pool's queue, reading every shard in one pipelined round trip.
func (q *Queue) Stats(ctx context.Context, pool string) (PoolStats, error) {
	if err := ValidatePool(pool); err != nil {
		return PoolStats{}, err
	}
	run := func() ([]*redis.Cmd, error) {
		pipe := q.rdb.Pipeline()
		cmds := make([]*redis.Cmd, q.cfg.Shards)
		for s := range cmds {
			k := q.keys(pool, s)
			cmds[s] = statsScript.EvalSha(ctx, pipe, []string{k.streams[0], k.streams[1], k.streams[2], k.delayed, k.dead}, q.cfg.Group)
		}
		_, err := pipe.Exec(ctx)
		return cmds, err
	}
	cmds, err := run()
	if isNoScript(err) {
		if err = q.loadScripts(ctx); err == nil {
			cmds, err = run()
		}
	}
	if err != nil {
		return PoolStats{}, fmt.Errorf("stats of pool %s: %w", pool, err)
	}
	st := PoolStats{Pool: pool, Ready: map[job.Priority]int64{}}
	var oldest int64
	now := time.Now()
	for _, c := range cmds {
		vals, _ := c.Val().([]any)
		if len(vals) != 11 {
			return st, fmt.Errorf("stats of pool %s: unexpected reply %v", pool, c.Val())
		}
		for i, p := range job.Priorities() {
			length, _ := vals[3*i].(int64)
			pending, _ := vals[3*i+1].(int64)
			id, _ := vals[3*i+2].(string)
			st.Ready[p] += length - pending
			st.Running += pending
			if ms, _, ok := strings.Cut(id, "-"); ok {
				if t, err := strconv.ParseInt(ms, 10, 64); err == nil && (oldest == 0 || t < oldest) {
					oldest = t
				}
			}
		}
		d, _ := vals[9].(int64)
		dead, _ := vals[10].(int64)
		st.Delayed += d
		st.Dead += dead
	}
	if oldest > 0 {
		st.OldestWait = max(now.Sub(time.UnixMilli(oldest)), 0)
	}
	return st, nil
}

// DeadLetter is one entry of a dead-letter stream: its entry id, the pool
// shard whose stream holds it, the job id and the reason (fields j and
// reason) and every field of the entry.
type DeadLetter struct {
	ID     string
	Pool   string
	Shard  int
	JobID  string
	Reason string
	Fields map[string]string
}

// DeadLetters lists up to max entries of a pool's dead-letter streams (per shard,
// oldest first).
func (q *Queue) DeadLetters(ctx context.Context, pool string, max int) ([]DeadLetter, error) {
	if err := ValidatePool(pool); err != nil {
		return nil, err
	}
	var out []DeadLetter
	for s := 0; s < q.cfg.Shards && len(out) < max; s++ {
		msgs, err := q.rdb.XRangeN(ctx, q.keys(pool, s).dead, "-", "+", int64(max-len(out))).Result()
		if err != nil {
			return out, fmt.Errorf("dead letters of pool %s: %w", pool, err)
		}
		for _, m := range msgs {
			out = append(out, deadLetterOf(pool, s, m.ID, m.Values))
		}
	}
	return out, nil
}
