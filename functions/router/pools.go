package router

import (
	"net/http"
	"time"

	"github.com/aigw/aigw/internal/auth"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/jobstore"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/internal/registry"
	"github.com/aigw/aigw/internal/web"
)

// poolView is one pool as an operator sees it: its live workers, GPU and
// slot totals, and its whole queue.
type poolView struct {
	Name    string       `json:"name"`
	Workers []workerView `json:"workers"`
	GPUs    counts       `json:"gpus"`
	Slots   counts       `json:"slots"`
	Queue   queueView    `json:"queue"`
}

type counts struct {
	Total int `json:"total"`
	Free  int `json:"free"`
	Busy  int `json:"busy"`
}

// workerView is a worker as operators see it in the pools list: no job ids
// or labels; an agent's address neither (it is the gang's MASTER_ADDR), a
// remote executor's is the address its last call came from.
type workerView struct {
	Node string `json:"node"`
	// Kind is "agent" (a worker agent) or "executor" (joined through the
	// executor API).
	Kind        string    `json:"kind"`
	Addr        string    `json:"addr,omitempty"`
	JobsHeld    int       `json:"jobs_held"`
	Version     string    `json:"version"`
	Slots       int       `json:"slots"`
	SlotsBusy   int       `json:"slots_busy"`
	GPUs        []gpuView `json:"gpus"`
	Draining    bool      `json:"draining"`
	StartedAt   time.Time `json:"started_at"`
	HeartbeatAt time.Time `json:"heartbeat_at"`
	// AssetCache is the worker's asset cache (hits, misses, bytes) at its
	// last heartbeat; absent when it has none.
	AssetCache *registry.AssetCache `json:"asset_cache,omitempty"`
}

type gpuView struct {
	Index         int    `json:"index"`
	Name          string `json:"name"`
	MemoryTotalMB int    `json:"memory_total_mb"`
	MemoryUsedMB  int    `json:"memory_used_mb"`
	// UtilizationPct is the GPU's utilisation at the worker's last heartbeat.
	UtilizationPct int  `json:"utilization_pct"`
	Busy           bool `json:"busy"`
}

// queueView is a pool's queue: waiting jobs per priority, taken (running),
// delayed (retry backoff) and dead-lettered entries, and the wait of the
// oldest ready job.
type queueView struct {
	Depth        int64                  `json:"depth"`
	Ready        map[job.Priority]int64 `json:"ready"`
	Running      int64                  `json:"running"`
	Delayed      int64                  `json:"delayed"`
	Dead         int64                  `json:"dead"`
	OldestWaitMS int64                  `json:"oldest_wait_ms"`
}

// tenantPoolView is a pool as a tenant sees it: the pool's capacity, and the
// tenant's own jobs in it; no worker names and no other tenant's jobs.
type tenantPoolView struct {
	Name    string          `json:"name"`
	Workers int             `json:"workers"`
	GPUs    counts          `json:"gpus"`
	Slots   counts          `json:"slots"`
	Jobs    tenantJobCounts `json:"jobs"`
}

// tenantJobCounts are the tenant's jobs waiting and running in a pool.
type tenantJobCounts struct {
	Queued  int64 `json:"queued"`
	Running int64 `json:"running"`
}

// listPools: GET /v1/pools → {"pools": [...]}, every known pool by name:
// the registry's and the algorithms' (a pool without workers, jobs or an
// algorithm naming it is forgotten: see idlePools). An
// operator token (algorithms:admin) sees the workers and the whole queue; a
// tenant sees each pool's capacity and its own queued and running jobs.
func (a *api) listPools(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	c, _ := auth.FromContext(ctx)
	admin := c.HasScope(auth.ScopeAlgorithmsAdmin)
	t, err := auth.Tenant(r)
	if err != nil && !admin {
		return err
	}
	names, idle, err := a.poolNames(ctx)
	if err != nil {
		return err
	}
	var own map[string]jobstore.PoolCount
	if !admin {
		if own, err = a.Jobs.ActiveCounts(ctx, t); err != nil {
			return err
		}
	}
	full := make([]poolView, 0, len(names))
	mine := make([]tenantPoolView, 0, len(names))
	for _, name := range names {
		workers, err := a.Pools.Workers(ctx, name)
		if err != nil {
			return err
		}
		var st queue.PoolStats
		if admin || len(workers) == 0 {
			if st, err = a.Queue.Stats(ctx, name); err != nil {
				return err
			}
		}
		if len(workers) == 0 {
			if gone, err := idle.forget(ctx, name, st); err != nil || gone {
				if err != nil {
					return err
				}
				continue
			}
		}
		var gpus, slots counts
		for _, wk := range workers {
			gpus.Total += len(wk.GPUs)
			gpus.Free += wk.GPUsFree()
			slots.Total += wk.Slots
			slots.Busy += wk.SlotsBusy
		}
		gpus.Busy = gpus.Total - gpus.Free
		slots.Free = max(slots.Total-slots.Busy, 0)
		if !admin {
			n := own[name]
			mine = append(mine, tenantPoolView{Name: name, Workers: len(workers), GPUs: gpus, Slots: slots,
				Jobs: tenantJobCounts{Queued: n.Queued, Running: n.Running}})
			continue
		}
		p := poolView{Name: name, Workers: make([]workerView, 0, len(workers)), GPUs: gpus, Slots: slots, Queue: queueView{
			Depth: st.Depth(), Ready: st.Ready, Running: st.Running, Delayed: st.Delayed, Dead: st.Dead,
			OldestWaitMS: st.OldestWait.Milliseconds(),
		}}
		for _, wk := range workers {
			p.Workers = append(p.Workers, workerOf(wk))
		}
		full = append(full, p)
	}
	if admin {
		web.WriteJSON(w, http.StatusOK, map[string]any{"pools": full})
	} else {
		web.WriteJSON(w, http.StatusOK, map[string]any{"pools": mine})
	}
	return nil
}

func workerOf(wk registry.Worker) workerView {
	v := workerView{Node: wk.Node, Kind: "agent", JobsHeld: len(wk.Running), Version: wk.Version, Slots: wk.Slots, SlotsBusy: wk.SlotsBusy,
		GPUs: make([]gpuView, len(wk.GPUs)), Draining: wk.Draining, StartedAt: wk.StartedAt, HeartbeatAt: wk.HeartbeatAt,
		AssetCache: wk.AssetCache}
	if wk.Kind == registry.KindExecutor {
		v.Kind, v.Addr = registry.KindExecutor, wk.Addr
	}
	for i, g := range wk.GPUs {
		v.GPUs[i] = gpuView{Index: g.Index, Name: g.Name, MemoryTotalMB: g.MemoryTotalMB, MemoryUsedMB: g.MemoryUsedMB,
			UtilizationPct: g.UtilizationPct, Busy: g.Busy}
	}
	return v
}
