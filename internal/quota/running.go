package quota

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aigw/aigw/internal/rediskeys"
)

// Running counts the jobs of a tenant running in a pool against its
// MaxRunning quota, in Redis. Safe for concurrent use.
type Running struct {
	rdb redis.UniversalClient
}

// NewRunning returns a Running on rdb.
func NewRunning(rdb redis.UniversalClient) *Running { return &Running{rdb: rdb} }

// acquireScript takes a place for a job among a tenant's running jobs in a
// pool, if one is free.
//
//	KEYS[1] rediskeys.QuotaRunning(tenant, pool): zset job id → hold-until ms
//	ARGV[1] now (unix ms): members held until then are dropped first
//	ARGV[2] job id
//	ARGV[3] hold-until (unix ms)
//	ARGV[4] limit
//	result  1: the job holds a place (also when it held one already, then
//	        renewed); 0: limit places are held by other jobs
//
// One key, so one slot.
var acquireScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
redis.call('PEXPIREAT', KEYS[1], ARGV[3], 'GT')
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIREAT', KEYS[1], ARGV[3]) end
return 1
`)

// Acquire takes one of limit places for job jobID of tenant in pool until
// until (its deadline, in case Release never comes). It reports false when
// limit other jobs hold one: the job must wait.
func (r *Running) Acquire(ctx context.Context, tenant, pool, jobID string, limit int, until time.Time) (bool, error) {
	now := time.Now().UnixMilli()
	n, err := acquireScript.Run(ctx, r.rdb, []string{rediskeys.QuotaRunning(tenant, pool)},
		now, jobID, strconv.FormatInt(max(until.UnixMilli(), now+1), 10), limit).Int()
	if err != nil {
		return false, fmt.Errorf("quota place of %s in %s: %w", tenant, pool, err)
	}
	return n == 1, nil
}

// Release gives job jobID's place back.
func (r *Running) Release(ctx context.Context, tenant, pool, jobID string) error {
	if err := r.rdb.ZRem(ctx, rediskeys.QuotaRunning(tenant, pool), jobID).Err(); err != nil {
		return fmt.Errorf("release quota place of %s in %s: %w", tenant, pool, err)
	}
	return nil
}

// Count is how many places of tenant in pool are held now.
func (r *Running) Count(ctx context.Context, tenant, pool string) (int64, error) {
	n, err := r.rdb.ZCount(ctx, rediskeys.QuotaRunning(tenant, pool), strconv.FormatInt(time.Now().UnixMilli(), 10), "+inf").Result()
	if err != nil {
		return 0, fmt.Errorf("count quota places of %s in %s: %w", tenant, pool, err)
	}
	return n, nil
}

// Gate is what a worker asks before it starts a job: the MaxRunning quotas
// of its pool (cached) and a place among the tenant's running jobs.
type Gate struct {
	*Cache
	*Running
}
