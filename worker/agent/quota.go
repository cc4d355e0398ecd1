package agent

import (
	"context"
	"time"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/lifecycle"
	"github.com/aigw/aigw/internal/queue"
)

// QuotaGate holds a tenant's jobs beyond its MaxRunning quota in the queue
// (*quota.Gate).
type QuotaGate interface {
	// MaxRunning is the pool's MaxRunning quotas by tenant (cached).
	MaxRunning(ctx context.Context, pool string) (map[string]int, error)
	Acquire(ctx context.Context, tenant, pool, jobID string, limit int, until time.Time) (bool, error)
	Release(ctx context.Context, tenant, pool, jobID string) error
}

// quotaLimits returns the pool's MaxRunning quotas (nil: none, or no gate).
// A store that does not answer leaves jobs unlimited, logged.
func (a *Agent) quotaLimits(ctx context.Context) map[string]int {
	if a.d.Quotas == nil {
		return nil
	}
	m, err := a.d.Quotas.MaxRunning(ctx, a.cfg.Pool)
	if err != nil {
		a.log.Warn("read quotas failed; jobs run unlimited until it answers", "pool", a.cfg.Pool, "err", err)
		return nil
	}
	return m
}

// admit takes a place for queued job j under its tenant's MaxRunning quota
// (limits: the pool's). Over it, the delivery goes back to the queue, due in
// about a second, with the record untouched (no attempt used), and admit
// reports false. release gives the place back (a no-op without a quota).
func (a *Agent) admit(ctx context.Context, d queue.Delivery, j *job.Job, def *algorithm.Definition, limits map[string]int) (release func(), ok bool) {
	limit, limited := limits[j.Tenant]
	if !limited {
		return func() {}, true
	}
	until := time.Now().Add(lifecycle.Timeout(j, def) + time.Minute)
	got, err := a.d.Quotas.Acquire(ctx, j.Tenant, a.cfg.Pool, j.ID, limit, until)
	if err != nil {
		a.log.Warn("quota place failed; the job runs", "job_id", j.ID, "tenant", j.Tenant, "err", err)
		return func() {}, true
	}
	if !got {
		a.log.Debug("over the tenant's max_running quota: back to the queue", "job_id", j.ID, "tenant", j.Tenant, "limit", limit)
		a.requeue(ctx, d, time.Now().Add(time.Duration(500+rand64(500))*time.Millisecond))
		return nil, false
	}
	return func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := a.d.Quotas.Release(rctx, j.Tenant, a.cfg.Pool, j.ID); err != nil {
			a.log.Warn("release quota place failed; it frees at the job's deadline", "job_id", j.ID, "err", err)
		}
	}, true
}
