package router

import (
	"context"
	"errors"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/aigw/aigw/internal/quota"
	"github.com/aigw/aigw/internal/web"
)

// Quotas stores tenants' quotas (quota.Store).
type Quotas interface {
	Get(ctx context.Context, tenant string) (*quota.Tenant, error)
	Put(ctx context.Context, t quota.Tenant) (*quota.Tenant, error)
}

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
	web.WriteJSON(w, http.StatusOK, t)
	return nil
}
