package router

import (
	"net/http"
	"time"

	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/registry"
	"github.com/aigw/aigw/internal/web"
)

// poolView is one pool: its live workers, GPU and slot totals, and its queue.
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

// workerView is a worker as tenants may see it: no job ids, addresses or labels.
type workerView struct {
	Node        string    `json:"node"`
	Version     string    `json:"version"`
	Slots       int       `json:"slots"`
	SlotsBusy   int       `json:"slots_busy"`
	GPUs        []gpuView `json:"gpus"`
	Draining    bool      `json:"draining"`
	StartedAt   time.Time `json:"started_at"`
	HeartbeatAt time.Time `json:"heartbeat_at"`
}

type gpuView struct {
	Index         int    `json:"index"`
	Name          string `json:"name"`
	MemoryTotalMB int    `json:"memory_total_mb"`
	MemoryUsedMB  int    `json:"memory_used_mb"`
	Busy          bool   `json:"busy"`
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

// listPools: GET /v1/pools → {"pools": [...]}, every known pool by name.
func (a *api) listPools(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	names, err := a.Pools.Pools(ctx)
	if err != nil {
		return err
	}
	out := make([]poolView, 0, len(names))
	for _, name := range names {
		workers, err := a.Pools.Workers(ctx, name)
		if err != nil {
			return err
		}
		st, err := a.Queue.Stats(ctx, name)
		if err != nil {
			return err
		}
		p := poolView{Name: name, Workers: make([]workerView, 0, len(workers)), Queue: queueView{
			Depth: st.Depth(), Ready: st.Ready, Running: st.Running, Delayed: st.Delayed, Dead: st.Dead,
			OldestWaitMS: st.OldestWait.Milliseconds(),
		}}
		for _, wk := range workers {
			p.Workers = append(p.Workers, workerOf(wk))
			p.GPUs.Total += len(wk.GPUs)
			p.GPUs.Free += wk.GPUsFree()
			p.Slots.Total += wk.Slots
			p.Slots.Busy += wk.SlotsBusy
		}
		p.GPUs.Busy = p.GPUs.Total - p.GPUs.Free
		p.Slots.Free = max(p.Slots.Total-p.Slots.Busy, 0)
		out = append(out, p)
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"pools": out})
	return nil
}

func workerOf(wk registry.Worker) workerView {
	v := workerView{Node: wk.Node, Version: wk.Version, Slots: wk.Slots, SlotsBusy: wk.SlotsBusy,
		GPUs: make([]gpuView, len(wk.GPUs)), Draining: wk.Draining, StartedAt: wk.StartedAt, HeartbeatAt: wk.HeartbeatAt}
	for i, g := range wk.GPUs {
		v.GPUs[i] = gpuView{Index: g.Index, Name: g.Name, MemoryTotalMB: g.MemoryTotalMB, MemoryUsedMB: g.MemoryUsedMB, Busy: g.Busy}
	}
	return v
}
