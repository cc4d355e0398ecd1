package registry

import (
	"context"
	"fmt"
)

// ForgetIfEmpty removes pool from the set of pools when no worker entry is
// left in it (its last worker shut down, or its entry expired and Workers
// swept it). The caller checks first that nothing else keeps the pool (jobs
// in its queue, an algorithm naming it). It reports whether the pool was
// removed.
//
// A worker that heartbeats at that moment is not lost: after the removal the
// pool's entries are counted again and, if one appeared, the pool is added
// back; at worst (its SADD and HSET cross the removal on two Redis nodes) the
// pool is listed again at the worker's next heartbeat, which adds it.
func (r *Registry) ForgetIfEmpty(ctx context.Context, pool string) (bool, error) {
	n, err := r.rdb.HLen(ctx, WorkersKey(pool)).Result()
	if err != nil {
		return false, fmt.Errorf("workers of %s: %w", pool, err)
	}
	if n > 0 {
		return false, nil
	}
	if err := r.rdb.SRem(ctx, PoolsKey, pool).Err(); err != nil {
		return false, fmt.Errorf("forget pool %s: %w", pool, err)
	}
	if n, err := r.rdb.HLen(ctx, WorkersKey(pool)).Result(); err != nil || n > 0 {
		if err := r.rdb.SAdd(ctx, PoolsKey, pool).Err(); err != nil {
			return false, fmt.Errorf("add pool %s back: %w", pool, err)
		}
		return false, nil
	}
	return true, nil
}
