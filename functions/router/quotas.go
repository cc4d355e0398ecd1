package router

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/aigw/aigw/internal/auth"
	"github.com/aigw/aigw/internal/quota"
	"github.com/aigw/aigw/internal/submit"
	"github.com/aigw/aigw/internal/web"
)

// Quotas stores tenants' quotas (quota.Store).
type Quotas interface {
	Get(ctx context.Context, tenant string) (*quota.Tenant, error)
	Put(ctx context.Context, t quota.Tenant) (*quota.Tenant, error)
	Delete(ctx context.Context, tenant string) (time.Time, error)
}

// Tombstones says when tenants were deleted (quota.Cache) and announces
// deletions.
type Tombstones interface {
	auth.Tombstones
	// Changed makes the next DeletedAt of tenant read the store, here and,
	// announced, on the other replicas.
	Changed(ctx context.Context, tenant string) error
	// TTL is how long another replica may still answer from before a
	// deletion.
	TTL() time.Duration
}

// stragglerMargin is how long, past the tombstone caches' TTL, a deletion
// waits for submits that passed a stale cache (a replica that missed the
// announcement) to have recorded their jobs.
const stragglerMargin = time.Second

// quotasBody is the body of PUT /v1/admin/tenants/{tenant}/quotas.
type quotasBody struct {
	Weight *float64      `json:"weight"`
	Pools  []quota.Quota `json:"pools"`
}

// getQuotas: GET /v1/admin/tenants/{tenant}/quotas (operator token) → the
// tenant's quotas, {"tenant", "pools": [...]} (no pools: none).
func (a *api) getQuotas(w http.ResponseWriter, r *http.Request) error {
	t, err := a.Quotas.Get(r.Context(), chi.URLParam(r, "tenant"))
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, t)
	return nil
}

// putQuotas: PUT /v1/admin/tenants/{tenant}/quotas {"weight"?, "pools":
// [{pool, max_running?, gpu_seconds?, window?, weight?}]} (operator token)
// replaces the
// tenant's quotas → 200 with them; a bad one is 400 naming its field. A
// quota lowered below current use stops nothing.
func (a *api) putQuotas(w http.ResponseWriter, r *http.Request) error {
	var b quotasBody
	if err := web.DecodeJSON(w, r, a.BodyLimit, &b); err != nil {
		return err
	}
	t, err := a.Quotas.Put(r.Context(), quota.Tenant{Tenant: chi.URLParam(r, "tenant"), Weight: b.Weight, Pools: b.Pools})
	var fe *quota.FieldError
	if errors.As(err, &fe) {
		return web.BadRequest("%s", fe.Error())
	}
	if err != nil {
		return err
	}
	if a.Tombstones != nil {
		if err := a.Tombstones.Changed(r.Context(), t.Tenant); err != nil {
			a.log.WarnContext(r.Context(), "quota change not announced: other replicas read it within their cache's TTL", "tenant", t.Tenant, "err", err)
		}
	}
	a.pushPolicy(r.Context(), t)
	web.WriteJSON(w, http.StatusOK, t)
	return nil
}

// pushPolicy gives fair share t's weight and max_running in every known pool
// and every pool t names, at once (admission would read them within the
// quota cache's TTL at the tenant's next submit). Best effort: logged.
func (a *api) pushPolicy(ctx context.Context, t *quota.Tenant) {
	if a.Fair == nil {
		return
	}
	pools, err := a.Fair.Pools(ctx)
	if err != nil {
		a.log.WarnContext(ctx, "fair-share policy not pushed", "tenant", t.Tenant, "err", err)
		return
	}
	for _, q := range t.Pools {
		if !slices.Contains(pools, q.Pool) {
			pools = append(pools, q.Pool)
		}
	}
	for _, p := range pools {
		q, _ := t.Pool(p)
		if err := a.Fair.SetPolicy(ctx, p, t.Tenant, t.WeightIn(p), q.MaxRunning); err != nil {
			a.log.WarnContext(ctx, "fair-share policy not pushed", "tenant", t.Tenant, "pool", p, "err", err)
		}
	}
}

// Clients revokes a deleted tenant's API clients (clients.Store).
type Clients interface {
	RevokeTenant(ctx context.Context, tenant string) (int, error)
}

// deleteTenant: DELETE /v1/admin/tenants/{tenant} (operator token) ends the
// tenant's work: its API clients are revoked (no new tokens) and its tokens
// issued until now are refused (401: on every replica at once, announced
// over Redis; on one that missed it, once its quota cache's TTL has
// passed), its queued jobs end canceled (the reason names the deletion),
// its running jobs get a cancel request, and its quotas and weights are
// removed. It then waits out that TTL and ends the work again, so that a
// job another replica accepted meanwhile is not left behind → 200
// {"tenant", "clients_revoked", "canceled", "cancel_requested"}. Repeating
// it is harmless; a client created for the tenant afterwards works. The
// operators' own tenant cannot be deleted (400).
func (a *api) deleteTenant(w http.ResponseWriter, r *http.Request) error {
	ctx, tenant := r.Context(), chi.URLParam(r, "tenant")
	if tenant == auth.OperatorTenant {
		return web.BadRequest("%s is the operators' tenant and cannot be deleted", tenant)
	}
	revoked, err := a.Clients.RevokeTenant(ctx, tenant)
	if err != nil {
		return err
	}
	// Its tokens go before its jobs: no submit slips in behind the cancel.
	deleted, err := a.Quotas.Delete(ctx, tenant)
	if err != nil {
		return err
	}
	if a.Tombstones != nil {
		if err := a.Tombstones.Changed(ctx, tenant); err != nil {
			a.log.WarnContext(ctx, "tenant deletion not announced: other replicas learn it within their cache's TTL", "tenant", tenant, "err", err)
		}
	}
	reason := "canceled: tenant " + tenant + " was deleted by an operator"
	res, err := a.Service.DeleteTenant(ctx, tenant, reason)
	if err != nil {
		return err
	}
	if a.Tombstones != nil {
		if err := a.endStragglers(ctx, tenant, reason, deleted.Add(a.Tombstones.TTL()+stragglerMargin), &res); err != nil {
			return err
		}
	}
	a.pushPolicy(ctx, &quota.Tenant{Tenant: tenant})
	web.WriteJSON(w, http.StatusOK, struct {
		Tenant         string `json:"tenant"`
		ClientsRevoked int    `json:"clients_revoked"`
		submit.TenantDeletion
	}{tenant, revoked, res})
	return nil
}

// endStragglers waits until every replica refuses the deleted tenant's old
// tokens (at), then ends the tenant's work again, adding to res what a
// replica let in meanwhile (a running job asked to stop counts once).
func (a *api) endStragglers(ctx context.Context, tenant, reason string, at time.Time, res *submit.TenantDeletion) error {
	t := time.NewTimer(time.Until(at))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	late, err := a.Service.DeleteTenant(ctx, tenant, reason)
	if err != nil {
		return err
	}
	res.Canceled += late.Canceled
	for _, id := range late.Asked {
		if !slices.Contains(res.Asked, id) {
			res.Asked = append(res.Asked, id)
		}
	}
	res.CancelRequested = len(res.Asked)
	return nil
}
