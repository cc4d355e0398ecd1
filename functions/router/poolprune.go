package router

import (
	"context"
	"slices"

	"github.com/aigw/aigw/internal/queue"
)

// idlePools decides which worker-less pools GET /v1/pools forgets: a pool
// whose last worker's entry has expired (or that never had one) and whose
// queue is empty (nothing ready, taken, delayed or dead) leaves the list and
// the registry's set of pools, unless a registered algorithm names it: an
// algorithm's pool is always listed (an operator sees it waiting for its
// first worker), also when a router of another database sharing the Redis
// Cluster forgot it. Tests and benchmarks that made a pool for a run leave
// nothing behind this way.
type idlePools struct {
	a     *api
	named map[string]bool // pools of registered algorithms
}

// poolNames returns the registry's pools and the algorithms' pools, sorted,
// and the idlePools that decides which of them to forget.
func (a *api) poolNames(ctx context.Context) ([]string, *idlePools, error) {
	names, err := a.Pools.Pools(ctx)
	if err != nil {
		return nil, nil, err
	}
	ds, err := a.Catalog.List(ctx)
	if err != nil {
		return nil, nil, err
	}
	ip := &idlePools{a: a, named: make(map[string]bool, len(ds))}
	for _, d := range ds {
		if d.Pool != "" && !ip.named[d.Pool] {
			ip.named[d.Pool] = true
			if !slices.Contains(names, d.Pool) {
				names = append(names, d.Pool)
			}
		}
	}
	slices.Sort(names)
	return names, ip, nil
}

// forget reports whether pool, which has no live worker, is forgotten now;
// st is its queue's stats.
func (ip *idlePools) forget(ctx context.Context, pool string, st queue.PoolStats) (bool, error) {
	if ip.named[pool] || st.Depth() != 0 || st.Running != 0 || st.Delayed != 0 || st.Dead != 0 {
		return false, nil
	}
	return ip.a.Pools.ForgetIfEmpty(ctx, pool)
}
