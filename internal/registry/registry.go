// Package registry is the worker registry in Redis: every worker writes what
// it is and what it has free with each heartbeat; a worker that stops
// heartbeating drops out after its TTL (two heartbeats).
//
// Keys:
//
//	aigw:{<pool>}:workers  hash: node name → Worker as JSON (with its expiry)
//	aigw:pools             set of pool names that ever had a worker
package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aigw/aigw/internal/rediskeys"
)

// PoolsKey is the set of pool names.
const PoolsKey = rediskeys.Pools

// WorkersKey is the hash of pool's workers. It carries the pool's hash tag,
// which other per-pool keys (e.g. gang reservations) share.
func WorkersKey(pool string) string { return rediskeys.Workers(pool) }

// GPU is one GPU of a node.
type GPU struct {
	Index          int    `json:"index"`
	UUID           string `json:"uuid"`
	Name           string `json:"name"`
	MemoryTotalMB  int    `json:"memory_total_mb"`
	MemoryUsedMB   int    `json:"memory_used_mb"`
	UtilizationPct int    `json:"utilization_pct"`
	// Busy is true while a job of this worker holds the GPU.
	Busy bool `json:"busy"`
}

// KindExecutor marks a remote executor's entry (Worker.Kind).
const KindExecutor = "executor"

// Worker is what a worker advertises.
type Worker struct {
	Node    string `json:"node"`
	Pool    string `json:"pool"`
	Version string `json:"version"`
	Addr    string `json:"addr,omitempty"`
	// Kind is KindExecutor for a remote executor (the executors function
	// writes its entry); empty for a worker agent.
	Kind   string            `json:"kind,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
	// Slots is how many runs the worker takes at once; SlotsBusy how many run.
	Slots     int      `json:"slots"`
	SlotsBusy int      `json:"slots_busy"`
	GPUs      []GPU    `json:"gpus,omitempty"`
	Running   []string `json:"running,omitempty"`
	// Draining is true once the worker takes no new work (it is shutting down).
	Draining bool `json:"draining,omitempty"`
	// AssetCache is the worker's asset cache at its last heartbeat; nil
	// when it has none.
	AssetCache  *AssetCache `json:"asset_cache,omitempty"`
	StartedAt   time.Time   `json:"started_at"`
	HeartbeatAt time.Time   `json:"heartbeat_at"`
	ExpiresAt   time.Time   `json:"expires_at"`
}

// AssetCache is a worker's cache of algorithm assets: requests served from
// it (hits) or that started a download (misses) since the worker started,
// bytes downloaded and evictions, and what it holds now against its budget.
type AssetCache struct {
	Hits            int64 `json:"hits"`
	Misses          int64 `json:"misses"`
	DownloadedBytes int64 `json:"downloaded_bytes"`
	Evictions       int64 `json:"evictions"`
	Bytes           int64 `json:"bytes"`
	BudgetBytes     int64 `json:"budget_bytes"`
	Files           int   `json:"files"`
}

// GPUsFree counts the GPUs no job holds.
func (w Worker) GPUsFree() int {
	n := 0
	for _, g := range w.GPUs {
		if !g.Busy {
			n++
		}
	}
	return n
}

// Registry reads and writes the worker registry.
type Registry struct {
	rdb redis.UniversalClient
	now func() time.Time
}

// New returns a Registry on rdb.
func New(rdb redis.UniversalClient) *Registry { return &Registry{rdb: rdb, now: time.Now} }

// Heartbeat records w as alive for ttl (use two heartbeat intervals).
func (r *Registry) Heartbeat(ctx context.Context, w Worker, ttl time.Duration) error {
	if w.Pool == "" || w.Node == "" {
		return fmt.Errorf("heartbeat: pool and node are required")
	}
	now := r.now().UTC()
	w.HeartbeatAt, w.ExpiresAt = now, now.Add(ttl)
	b, err := json.Marshal(w)
	if err != nil {
		return err
	}
	pipe := r.rdb.Pipeline()
	pipe.HSet(ctx, WorkersKey(w.Pool), w.Node, b)
	pipe.SAdd(ctx, PoolsKey, w.Pool)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("heartbeat of %s/%s: %w", w.Pool, w.Node, err)
	}
	return nil
}

// Remove deletes a worker (on a clean shutdown).
func (r *Registry) Remove(ctx context.Context, pool, node string) error {
	if err := r.rdb.HDel(ctx, WorkersKey(pool), node).Err(); err != nil {
		return fmt.Errorf("remove worker %s/%s: %w", pool, node, err)
	}
	return nil
}

// Workers returns the live workers of pool, by node name, and deletes the
// entries of workers whose heartbeat expired.
func (r *Registry) Workers(ctx context.Context, pool string) ([]Worker, error) {
	m, err := r.rdb.HGetAll(ctx, WorkersKey(pool)).Result()
	if err != nil {
		return nil, fmt.Errorf("workers of %s: %w", pool, err)
	}
	now := r.now()
	var out []Worker
	var dead []string
	for node, v := range m {
		var w Worker
		if err := json.Unmarshal([]byte(v), &w); err != nil || now.After(w.ExpiresAt) {
			dead = append(dead, node)
			continue
		}
		out = append(out, w)
	}
	if len(dead) > 0 {
		// Best effort: a worker that came back in between rewrites its entry.
		_ = r.rdb.HDel(ctx, WorkersKey(pool), dead...).Err()
	}
	slices.SortFunc(out, func(a, b Worker) int { return strings.Compare(a.Node, b.Node) })
	return out, nil
}

// Pools returns every known pool name, sorted.
func (r *Registry) Pools(ctx context.Context) ([]string, error) {
	ps, err := r.rdb.SMembers(ctx, PoolsKey).Result()
	if err != nil {
		return nil, fmt.Errorf("pools: %w", err)
	}
	slices.Sort(ps)
	return ps, nil
}

// AddPool records pool as known (e.g. when an algorithm names it before any
// worker joined it).
func (r *Registry) AddPool(ctx context.Context, pool string) error {
	if err := r.rdb.SAdd(ctx, PoolsKey, pool).Err(); err != nil {
		return fmt.Errorf("add pool %s: %w", pool, err)
	}
	return nil
}

// RemovePool forgets pool (tests and benchmarks that made one for a run).
// Workers still heartbeating in it add it again.
func (r *Registry) RemovePool(ctx context.Context, pool string) error {
	pipe := r.rdb.Pipeline()
	pipe.SRem(ctx, PoolsKey, pool)
	pipe.Del(ctx, WorkersKey(pool))
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("remove pool %s: %w", pool, err)
	}
	return nil
}
