// Package ratelimit is a token bucket per key in Redis, shared by every
// instance of a function: each check is one atomic Lua script, so concurrent
// requests on several instances never take more than the bucket holds.
//
// Keys: aigw:{rl:<key>} — a hash {tokens, ts} with its own hash tag, so the
// buckets of different tenants spread over the cluster. A bucket expires once it
// would be full again, so idle keys cost nothing.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aigw/aigw/internal/rediskeys"
)

// Key is the Redis key of the bucket of key (e.g. a tenant).
func Key(key string) string { return rediskeys.RateLimit(key) }

// Limit is a rate and a burst: a bucket holds up to Burst tokens and refills
// at Rate tokens per second; each request takes one.
type Limit struct {
	Rate  float64
	Burst int
}

// Validate checks that the limit can admit a request.
func (l Limit) Validate() error {
	if l.Rate <= 0 || l.Burst < 1 {
		return errors.New("rate limit: rate must be > 0 and burst ≥ 1")
	}
	return nil
}

// Result is the outcome of one check.
type Result struct {
	Allowed bool
	// Remaining is the whole tokens left after this request.
	Remaining int
	// RetryAfter, when not allowed, is when the bucket will hold a token again.
	RetryAfter time.Duration
}

// Limiter checks requests against per-key buckets. Safe for concurrent use.
type Limiter struct {
	rdb   redis.UniversalClient
	limit Limit
}

// New returns a Limiter with the same limit for every key.
func New(rdb redis.UniversalClient, l Limit) (*Limiter, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	return &Limiter{rdb: rdb, limit: l}, nil
}

// takeScript takes one token from a bucket, refilled for the time since its
// last use (the server's clock, so instances with skewed clocks agree).
//
//	KEYS[1]  the bucket hash {tokens, ts (ms)}
//	ARGV[1]  rate, tokens per second
//	ARGV[2]  burst, the bucket's size
//	result   {allowed 0|1, whole tokens left, ms until a token is there (0 if allowed)}
var takeScript = redis.NewScript(`
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1])
local ts = tonumber(b[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * 1000 / rate) + 1000)
return {allowed, math.floor(tokens), wait}
`)

// Allow takes a token from key's bucket.
func (l *Limiter) Allow(ctx context.Context, key string) (Result, error) {
	res, err := takeScript.Run(ctx, l.rdb, []string{Key(key)},
		strconv.FormatFloat(l.limit.Rate, 'f', -1, 64), l.limit.Burst).Int64Slice()
	if err != nil {
		return Result{}, fmt.Errorf("rate limit of %s: %w", key, err)
	}
	if len(res) != 3 {
		return Result{}, fmt.Errorf("rate limit of %s: unexpected reply %v", key, res)
	}
	return Result{Allowed: res[0] == 1, Remaining: int(res[1]), RetryAfter: time.Duration(res[2]) * time.Millisecond}, nil
}
