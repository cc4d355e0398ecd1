package quota

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/aigw/aigw/internal/jobstore"
)

// maxPoints bounds the jobs one window check reads.
const maxPoints = 100000

// OverError is a submit refused by a GPU-seconds quota: Used of Quota's
// GPUSeconds were used within its window; RetryAfter is when enough of that
// use leaves the window.
type OverError struct {
	Tenant     string
	Quota      Quota
	Used       float64
	RetryAfter time.Duration
}

func (e *OverError) Error() string {
	return fmt.Sprintf("tenant %s used %.0f of its quota of %g GPU-seconds per %s in pool %s: new jobs are refused until the use within the window falls under it",
		e.Tenant, e.Used, e.Quota.GPUSeconds, e.Quota.Window, e.Quota.Pool)
}

// Usage reads finished jobs' GPU use (*jobstore.Store).
type Usage interface {
	GPUUsageSince(ctx context.Context, tenant, pool string, since time.Time, limit int) ([]jobstore.UsagePoint, error)
}

// Admission checks submits against GPU-seconds quotas.
type Admission struct {
	quotas *Cache
	usage  Usage
	ttl    time.Duration

	mu   sync.Mutex
	seen map[[2]string]cached[[]jobstore.UsagePoint]
}

// NewAdmission checks against quotas (cached) and the use read from usage,
// kept for ttl (≤ 0: 2 s).
func NewAdmission(quotas *Cache, usage Usage, ttl time.Duration) *Admission {
	if ttl <= 0 {
		ttl = 2 * time.Second
	}
	return &Admission{quotas: quotas, usage: usage, ttl: ttl, seen: map[[2]string]cached[[]jobstore.UsagePoint]{}}
}

// Admit returns an *OverError when tenant's jobs in pool used its
// GPU-seconds quota within its window, else nil (also without a quota).
func (a *Admission) Admit(ctx context.Context, tenant, pool string) error {
	t, err := a.quotas.Get(ctx, tenant)
	if err != nil {
		return err
	}
	q, ok := t.Pool(pool)
	if !ok || q.GPUSeconds <= 0 {
		return nil
	}
	now := time.Now()
	win := q.WindowDuration()
	k := [2]string{tenant, pool}
	a.mu.Lock()
	e, hit := a.seen[k]
	a.mu.Unlock()
	if !hit || time.Since(e.at) >= a.ttl {
		// Read the longest window (MaxWindow is not needed: the quota's own).
		pts, err := a.usage.GPUUsageSince(ctx, tenant, pool, now.Add(-win), maxPoints)
		if err != nil {
			return err
		}
		e = cached[[]jobstore.UsagePoint]{pts, now}
		a.mu.Lock()
		a.seen[k] = e
		a.mu.Unlock()
	}
	used, retry := overWindow(q.GPUSeconds, win, e.v, now)
	if used < q.GPUSeconds {
		return nil
	}
	return &OverError{Tenant: tenant, Quota: q, Used: used, RetryAfter: retry}
}

// overWindow sums the use in pts (oldest first) within win before now, and
// how long until it falls under limit as the oldest leave the window.
func overWindow(limit float64, win time.Duration, pts []jobstore.UsagePoint, now time.Time) (float64, time.Duration) {
	from := now.Add(-win)
	var used float64
	first := len(pts)
	for i, p := range pts {
		if !p.At.Before(from) {
			used += p.GPUSeconds
			first = min(first, i)
		}
	}
	left := used
	for i := first; i < len(pts); i++ {
		left -= pts[i].GPUSeconds
		if left < limit {
			return used, time.Duration(math.Max(float64(pts[i].At.Add(win).Sub(now)), float64(time.Second)))
		}
	}
	return used, time.Second
}
