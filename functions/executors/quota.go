package executors

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/lifecycle"
	"github.com/aigw/aigw/internal/queue"
)

// quotaLimits returns the MaxRunning quotas of x's pool by tenant (nil:
// none). A store that does not answer leaves jobs unlimited, logged.
func (s *Service) quotaLimits(ctx context.Context, x *executor) map[string]int {
	m, err := s.quotas.MaxRunning(ctx, x.cred.Pool)
	if err != nil {
		s.log.Warn("read quotas failed; jobs run unlimited until it answers", "pool", x.cred.Pool, "err", err)
		return nil
	}
	return m
}

// admit takes a place for queued job j under its tenant's MaxRunning quota,
// as the agent does: over it, the entry goes back to the queue due in about
// a second, the record untouched (no attempt used), and admit reports false.
func (s *Service) admit(ctx context.Context, x *executor, d queue.Delivery, j *job.Job, def *algorithm.Definition, limits map[string]int) bool {
	limit, limited := limits[j.Tenant]
	if !limited {
		return true
	}
	until := time.Now().Add(lifecycle.Timeout(j, def) + s.d.Lease + time.Minute)
	got, err := s.quotas.Acquire(ctx, j.Tenant, x.cred.Pool, j.ID, limit, until)
	if err != nil {
		s.log.Warn("quota place failed; the job runs", "job_id", j.ID, "tenant", j.Tenant, "err", err)
		return true
	}
	if !got {
		s.settle(ctx, x, d, lifecycle.QueueAction{Verb: lifecycle.Requeue,
			At: time.Now().Add(time.Duration(500+rand.IntN(500)) * time.Millisecond)})
		return false
	}
	return true
}

// release gives job j's quota place back, if it holds one (a place not
// given back frees at its deadline).
func (s *Service) release(ctx context.Context, pool string, j *job.Job) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.quotas.Release(rctx, j.Tenant, pool, j.ID); err != nil {
		s.log.Warn("release quota place failed; it frees at the job's deadline", "job_id", j.ID, "err", err)
	}
}
