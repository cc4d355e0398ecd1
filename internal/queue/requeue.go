package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// requeueScript acknowledges a taken entry and queues its job again (delayed
// until not_before, or at once), in one step on the shard, so the job is never
// out of the queue and never in it twice.
//
//	KEYS[1] the entry's stream   KEYS[2] delayed zset   KEYS[3] membership hash
//	ARGV[1] group   ARGV[2] entry id   ARGV[3] job id   ARGV[4] priority
//	ARGV[5] payload ("" = none)   ARGV[6] not_before, unix ms (0 = now)
//
// Result: the new stream entry id, or "delayed".
var requeueScript = redis.NewScript(delayLua + `
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
local nb = tonumber(ARGV[6])
local t = redis.call('TIME')
if nb > tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) then
  redis.call('HSET', KEYS[3], ARGV[3], 'delayed')
  delay(KEYS[3], KEYS[2], nb, ARGV[4] .. '|' .. ARGV[3] .. '|' .. ARGV[5])
  return 'delayed'
end
redis.call('HSET', KEYS[3], ARGV[3], ARGV[4])
if ARGV[5] == '' then
  return redis.call('XADD', KEYS[1], '*', 'j', ARGV[3])
end
return redis.call('XADD', KEYS[1], '*', 'j', ARGV[3], 'p', ARGV[5])
`)

// Requeue acknowledges a taken delivery and queues its job again with the same
// priority and payload, delayed until notBefore (zero: now), atomically: used
// for a retry with backoff, and to hand back a job the consumer cannot run now.
func (c *Consumer) Requeue(ctx context.Context, d Delivery, notBefore time.Time) error {
	k := c.q.keys(c.pool, d.Shard)
	var nb int64
	if !notBefore.IsZero() {
		nb = notBefore.UnixMilli()
	}
	err := requeueScript.Run(ctx, c.q.rdb, []string{k.streams[d.prio()], k.delayed, k.ids},
		c.q.cfg.Group, d.EntryID, d.JobID, string(d.Priority), d.Payload, nb).Err()
	if err != nil {
		return fmt.Errorf("requeue job %s in pool %s: %w", d.JobID, c.pool, err)
	}
	return nil
}
