package router

import (
	"context"
	"errors"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/aigw/aigw/internal/web"
	"github.com/aigw/aigw/internal/webhook"
)

// Redeliverer sends a finished webhook delivery again (webhook.Store); the
// Deliveries of Deps implement it.
type Redeliverer interface {
	Redeliver(ctx context.Context, tenant, jobID, id string) (*webhook.Delivery, error)
}

// redeliverWebhook: POST /v1/jobs/{id}/deliveries/{delivery}/redeliver → 202
// with the delivery, pending again: the orchestrator sends the same message
// (same webhook-id) once more. 404 for another job's or tenant's delivery,
// 409 while it is still pending.
func (a *api) redeliverWebhook(w http.ResponseWriter, r *http.Request) error {
	rd, ok := a.Deliveries.(Redeliverer)
	if !ok {
		return web.Errorf(http.StatusNotImplemented, "not_implemented", "this API's delivery log cannot redeliver")
	}
	j, err := a.tenantJob(r)
	if err != nil {
		return err
	}
	d, err := rd.Redeliver(r.Context(), j.Tenant, j.ID, chi.URLParam(r, "delivery"))
	switch {
	case errors.Is(err, webhook.ErrNotFound):
		return web.NotFound("job %s has no webhook delivery %s", j.ID, chi.URLParam(r, "delivery"))
	case errors.Is(err, webhook.ErrPending):
		return web.Conflict("delivery %s is still pending; redeliver it once it is delivered or failed", chi.URLParam(r, "delivery"))
	case err != nil:
		return err
	}
	a.log.InfoContext(r.Context(), "webhook redelivery", "job_id", j.ID, "tenant", j.Tenant, "webhook_id", d.ID)
	web.WriteJSON(w, http.StatusAccepted, d)
	return nil
}
