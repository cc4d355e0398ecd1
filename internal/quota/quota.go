// Package quota keeps operators' quotas per tenant and pool in MongoDB and
// enforces them:
//
//   - MaxRunning: at most that many of the tenant's jobs run in the pool at
//     once. A worker asks Running.Acquire before it starts a job; a job over
//     the limit goes back to its queue with a short delay (no attempt used)
//     and waits there. Runs are counted in Redis (rediskeys.QuotaRunning),
//     from when the tenant's pool first has a MaxRunning quota.
//   - GPUSeconds per Window: a submit is refused (429, Retry-After) while the
//     GPU-seconds of the tenant's jobs in the pool that finished within the
//     last Window reach the quota (Check).
//
// A quota lowered below current use stops nothing: running jobs finish, new
// work waits (or is refused) until use is under it again.
package quota

import (
	"fmt"
	"strings"
	"time"
)

// Bounds of a quota's window.
const (
	MinWindow = time.Minute
	MaxWindow = 31 * 24 * time.Hour
)

// Quota limits one tenant in one pool; a zero limit is no limit.
type Quota struct {
	Pool string `json:"pool" bson:"pool"`
	// MaxRunning is the most jobs of the tenant running in the pool at once.
	MaxRunning int `json:"max_running,omitempty" bson:"max_running,omitempty"`
	// GPUSeconds is the most GPU-seconds the tenant's jobs in the pool may
	// use within Window (a Go duration such as "24h").
	GPUSeconds float64 `json:"gpu_seconds,omitempty" bson:"gpu_seconds,omitempty"`
	Window     string  `json:"window,omitempty" bson:"window,omitempty"`
	// Weight, when set, is the tenant's fair-share weight in this pool
	// (overriding Tenant.Weight).
	Weight *float64 `json:"weight,omitempty" bson:"weight,omitempty"`
}

// WindowDuration is q's window (0 without one).
func (q Quota) WindowDuration() time.Duration {
	d, _ := time.ParseDuration(q.Window)
	return d
}

// Tenant is a tenant's quotas, one per pool.
type Tenant struct {
	Tenant string `json:"tenant" bson:"_id"`
	// Weight is the tenant's fair-share weight in every pool (nil: 1): when
	// several tenants have jobs waiting in a pool, its slots are served in
	// proportion to their weights (see internal/fairq).
	Weight    *float64  `json:"weight,omitempty" bson:"weight,omitempty"`
	Pools     []Quota   `json:"pools" bson:"pools"`
	UpdatedAt time.Time `json:"updated_at,omitzero" bson:"updated_at"`
	// DeletedAt is when an operator last deleted the tenant: the router
	// refuses access tokens of the tenant issued before then. Setting
	// quotas again keeps it.
	DeletedAt *time.Time `json:"-" bson:"deleted_at,omitempty"`
}

// Pool returns t's quota in pool (ok false: none).
func (t *Tenant) Pool(pool string) (Quota, bool) {
	for _, q := range t.Pools {
		if q.Pool == pool {
			return q, true
		}
	}
	return Quota{}, false
}

// Bounds of a fair-share weight.
const (
	DefaultWeight = 1.0
	MaxWeight     = 1000.0
)

// WeightIn is t's fair-share weight in pool: the pool's own, else the
// tenant's, else DefaultWeight.
func (t *Tenant) WeightIn(pool string) float64 {
	if q, ok := t.Pool(pool); ok && q.Weight != nil {
		return *q.Weight
	}
	if t.Weight != nil {
		return *t.Weight
	}
	return DefaultWeight
}

func checkWeight(field string, w *float64) error {
	if w != nil && !(*w > 0 && *w <= MaxWeight) {
		return &FieldError{field, fmt.Sprintf("%g: want a number over 0 and at most %g (default %g)", *w, MaxWeight, DefaultWeight)}
	}
	return nil
}

// FieldError is a quota that breaks a rule; Field names it as in the JSON
// body, e.g. pools[0].window.
type FieldError struct {
	Field, Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// Validate checks t's quotas: a pool named once each, limits not negative,
// a window (MinWindow to MaxWindow) exactly when GPUSeconds is set, weights
// over 0 and at most MaxWeight.
func (t *Tenant) Validate() error {
	if err := checkWeight("weight", t.Weight); err != nil {
		return err
	}
	seen := map[string]bool{}
	for i, q := range t.Pools {
		f := fmt.Sprintf("pools[%d].", i)
		switch {
		case q.Pool == "" || strings.ContainsAny(q.Pool, " \t\n{}"):
			return &FieldError{f + "pool", fmt.Sprintf("%q is not a pool name", q.Pool)}
		case seen[q.Pool]:
			return &FieldError{f + "pool", fmt.Sprintf("pool %q is named twice", q.Pool)}
		case q.MaxRunning < 0:
			return &FieldError{f + "max_running", fmt.Sprintf("%d: want 0 (no limit) or more", q.MaxRunning)}
		case q.GPUSeconds < 0:
			return &FieldError{f + "gpu_seconds", fmt.Sprintf("%g: want 0 (no limit) or more", q.GPUSeconds)}
		case q.GPUSeconds > 0 && q.Window == "":
			return &FieldError{f + "window", "required with gpu_seconds (a duration such as 24h)"}
		case q.GPUSeconds == 0 && q.Window != "":
			return &FieldError{f + "window", "only with gpu_seconds"}
		}
		if err := checkWeight(f+"weight", q.Weight); err != nil {
			return err
		}
		if q.Window != "" {
			d, err := time.ParseDuration(q.Window)
			if err != nil || d < MinWindow || d > MaxWindow {
				return &FieldError{f + "window", fmt.Sprintf("%q: want a duration from %s to %s, such as 24h", q.Window, MinWindow, MaxWindow)}
			}
		}
		seen[q.Pool] = true
	}
	return nil
}
