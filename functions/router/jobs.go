package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/aigw/aigw/internal/auth"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/jobstore"
	"github.com/aigw/aigw/internal/submit"
	"github.com/aigw/aigw/internal/web"
)

// submitBody is the body of POST /v1/algorithms/{name}/jobs.
type submitBody struct {
	Input         json.RawMessage `json:"input"`
	Version       string          `json:"version,omitempty"`
	Webhook       string          `json:"webhook,omitempty"`
	WebhookEvents []string        `json:"webhook_events,omitempty"`
	Policy        submit.Policy   `json:"policy"`
}

// decodeSubmit reads a submit body: 415, 413 and 400 (malformed JSON, unknown
// fields, wrong types) from web.DecodeJSON; input is required.
func decodeSubmit(w http.ResponseWriter, r *http.Request, limit int64) (submitBody, error) {
	var b submitBody
	if err := web.DecodeJSON(w, r, limit, &b); err != nil {
		return b, err
	}
	if len(b.Input) == 0 {
		return b, web.BadRequest(`the body needs an "input" field: the algorithm's input as JSON`)
	}
	return b, nil
}

// jobView is a job as the API serves it.
type jobView struct {
	*job.Job
	// QueuePosition, for a queued job, is an upper bound of its place in its
	// pool's queue (1: next): the ready jobs of its pool at its priority or
	// higher (see queuePosition).
	QueuePosition *int64 `json:"queue_position,omitempty"`
	// ETAStart, for a queued job, estimates when it starts (see queuePosition).
	ETAStart *time.Time `json:"eta_start,omitempty"`
}

// submitJob: POST /v1/algorithms/{name}/jobs → 202 with the job and a
// Location header; with `Prefer: wait=N`, 200 with the finished job if it ends
// within N seconds (at most MaxWait). A repeated Idempotency-Key returns the
// first job (200 if it has finished).
func (a *api) submitJob(w http.ResponseWriter, r *http.Request) error {
	t, err := auth.Tenant(r)
	if err != nil {
		return err
	}
	key := r.Header.Get("Idempotency-Key")
	if len(key) > submit.MaxIdempotencyKey {
		return web.BadRequest("Idempotency-Key is %d bytes, over the limit of %d", len(key), submit.MaxIdempotencyKey)
	}
	body, err := decodeSubmit(w, r, a.BodyLimit)
	if err != nil {
		return err
	}
	j, _, err := a.Service.Submit(r.Context(), submit.Request{
		Tenant: t, Algorithm: chi.URLParam(r, "name"), Version: body.Version, Input: body.Input,
		IdempotencyKey: key, Webhook: body.Webhook, WebhookEvents: body.WebhookEvents, Policy: body.Policy,
	})
	if err != nil {
		return err
	}
	w.Header().Set("Location", a.location(r, "/v1/jobs/"+j.ID))
	if j.State.Terminal() {
		web.WriteJSON(w, http.StatusOK, jobView{Job: a.present(r.Context(), j)})
		return nil
	}
	if wait, ok := preferWait(r.Header.Values("Prefer")); ok && wait > 0 {
		wait = min(wait, a.MaxWait)
		if done := a.waitFinished(r.Context(), t, j.ID, wait); done != nil {
			w.Header().Set("Preference-Applied", "wait="+strconv.Itoa(int(wait/time.Second)))
			web.WriteJSON(w, http.StatusOK, jobView{Job: a.present(r.Context(), done)})
			return nil
		}
	}
	web.WriteJSON(w, http.StatusAccepted, jobView{Job: a.present(r.Context(), j)})
	return nil
}

// preferWait returns the wait preference of Prefer headers (RFC 7240:
// `Prefer: respond-async, wait=10`). A malformed wait is ignored, as
// preferences are hints.
func preferWait(headers []string) (time.Duration, bool) {
	for _, h := range headers {
		for pref := range strings.SplitSeq(h, ",") {
			pref, _, _ = strings.Cut(pref, ";")
			k, v, ok := strings.Cut(strings.TrimSpace(pref), "=")
			if !ok || !strings.EqualFold(strings.TrimSpace(k), "wait") {
				continue
			}
			n, err := strconv.ParseUint(strings.Trim(strings.TrimSpace(v), `"`), 10, 32)
			if err != nil {
				return 0, false
			}
			return time.Duration(n) * time.Second, true
		}
	}
	return 0, false
}

// getJob: GET /v1/jobs/{id}.
func (a *api) getJob(w http.ResponseWriter, r *http.Request) error {
	j, err := a.tenantJob(r)
	if err != nil {
		return err
	}
	if j.PurgedAt != nil {
		writeGone(w, j)
		return nil
	}
	pos, eta := a.queuePosition(r.Context(), j)
	web.WriteJSON(w, http.StatusOK, jobView{Job: a.present(r.Context(), j), QueuePosition: pos, ETAStart: eta})
	return nil
}

// queuePosition estimates a queued job's place in its pool (1: next) and
// when it starts (fairq.Estimate; without fair share, the ready jobs at its
// priority or higher and no start). Either is nil for a job that is not queued,
// when Redis does not answer, or (the start) before the pool has live slots
// and a measured run: they are advice; the job record is what matters.
func (a *api) queuePosition(ctx context.Context, j *job.Job) (*int64, *time.Time) {
	if j.State != job.Queued || a.Queue == nil {
		return nil, nil
	}
	st, err := a.Queue.Stats(ctx, j.Pool)
	if err != nil {
		a.log.WarnContext(ctx, "queue position unknown", "job_id", j.ID, "pool", j.Pool, "err", err)
		return nil, nil
	}
	if a.Fair == nil {
		var n int64
		for _, p := range job.Priorities() {
			n += st.Ready[p]
			if p == j.Priority {
				break
			}
		}
		n = max(n, 1)
		return &n, nil
	}
	e, err := a.Fair.Estimate(ctx, j, st)
	if err != nil {
		a.log.WarnContext(ctx, "queue position unknown", "job_id", j.ID, "pool", j.Pool, "err", err)
		return nil, nil
	}
	return &e.Position, e.Start
}

// tenantJob returns the job of the path's id if the request's tenant owns it
// (an operator's request: whoever owns it).
func (a *api) tenantJob(r *http.Request) (*job.Job, error) {
	t, id, err := jobRef(r)
	if err != nil {
		return nil, err
	}
	if operator(r) {
		return a.Jobs.GetByID(r.Context(), id)
	}
	return a.Jobs.Get(r.Context(), t, id)
}

// ownerRef is jobRef, but for an operator's request the tenant is the job's
// owner (read from its record), so an operator may act on any tenant's job.
func (a *api) ownerRef(r *http.Request) (tenantID, id string, err error) {
	if !operator(r) {
		return jobRef(r)
	}
	j, err := a.tenantJob(r)
	if err != nil {
		return "", "", err
	}
	return j.Tenant, j.ID, nil
}

// jobRef returns the request's tenant and the path's job id (404 when the id
// cannot be a job's).
func jobRef(r *http.Request) (tenantID, id string, err error) {
	if tenantID, err = auth.Tenant(r); err != nil {
		return "", "", err
	}
	id = chi.URLParam(r, "id")
	if !job.ValidID(id) {
		return "", "", web.NotFound("no such job")
	}
	return tenantID, id, nil
}

// listJobs: GET /v1/jobs?algorithm=&state=&since=&limit=&cursor= →
// {"jobs": [...], "next_cursor": "..."}, newest first: the tenant's jobs, or
// for an operator every tenant's.
func (a *api) listJobs(w http.ResponseWriter, r *http.Request) error {
	t, err := auth.Tenant(r)
	if err != nil {
		return err
	}
	f, err := parseFilter(r.URL.Query())
	if err != nil {
		return err
	}
	f.Tenant = t
	if operator(r) {
		f.Tenant, f.AllTenants = "", true
	}
	page, err := a.Jobs.List(r.Context(), f)
	if err != nil {
		return err
	}
	out := struct {
		Jobs       []jobView `json:"jobs"`
		NextCursor string    `json:"next_cursor,omitempty"`
	}{Jobs: make([]jobView, len(page.Jobs)), NextCursor: page.Next}
	for i := range page.Jobs {
		out.Jobs[i] = jobView{Job: a.present(r.Context(), &page.Jobs[i])}
	}
	web.WriteJSON(w, http.StatusOK, out)
	return nil
}

// parseFilter reads the list filters; an unknown parameter or a bad value is
// a 400 naming it.
func parseFilter(q url.Values) (jobstore.Filter, error) {
	var f jobstore.Filter
	for k, vs := range q {
		if len(vs) != 1 {
			return f, web.BadRequest("query parameter %q given %d times; give it once", k, len(vs))
		}
		v := vs[0]
		switch k {
		case "algorithm":
			f.Algorithm = v
		case "state":
			s, err := job.ParseState(v)
			if err != nil {
				return f, web.BadRequest("state: %v", err)
			}
			f.State = s
		case "since":
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return f, web.BadRequest("since %q: want an RFC 3339 time such as 2026-01-02T15:04:05Z", v)
			}
			f.Since = t
		case "limit":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 500 {
				return f, web.BadRequest("limit %q: want a number from 1 to 500", v)
			}
			f.Limit = n
		case "cursor":
			f.Cursor = v
		default:
			return f, web.BadRequest("unknown query parameter %q (want algorithm, state, since, limit or cursor)", k)
		}
	}
	return f, nil
}

// cancelJob: POST /v1/jobs/{id}/cancel → 200 with the canceled job, or 202
// with the running job whose worker was asked to stop; 409 once finished.
func (a *api) cancelJob(w http.ResponseWriter, r *http.Request) error {
	t, id, err := a.ownerRef(r)
	if err != nil {
		return err
	}
	j, err := a.Service.Cancel(r.Context(), t, id)
	if err != nil {
		return finishedConflict(err, "canceled", "queued or running")
	}
	status := http.StatusOK
	if j.State != job.Canceled {
		status = http.StatusAccepted
	}
	web.WriteJSON(w, status, jobView{Job: a.present(r.Context(), j)})
	return nil
}

// retryJob: POST /v1/jobs/{id}/retry → 202 with the job queued again; 409
// unless it failed or expired.
func (a *api) retryJob(w http.ResponseWriter, r *http.Request) error {
	t, id, err := a.ownerRef(r)
	if err != nil {
		return err
	}
	j, err := a.Service.Retry(r.Context(), t, id)
	if errors.Is(err, submit.ErrPurged) {
		writeGone(w, j)
		return nil
	}
	if err != nil {
		return finishedConflict(err, "retried", "failed or expired")
	}
	w.Header().Set("Location", a.location(r, "/v1/jobs/"+j.ID))
	web.WriteJSON(w, http.StatusAccepted, jobView{Job: a.present(r.Context(), j)})
	return nil
}

// finishedConflict words the 409 of a cancel or retry in the wrong state.
func finishedConflict(err error, verb, states string) error {
	var c *jobstore.ConflictError
	if !errors.As(err, &c) {
		return err
	}
	return &web.Error{Status: http.StatusConflict, Code: "conflict",
		Message: fmt.Sprintf("job %s is %s; only %s jobs can be %s", c.ID, c.Actual, states, verb), Err: err}
}

// jobDeliveries: GET /v1/jobs/{id}/deliveries → {"deliveries": [...]}, the
// webhook delivery log of the tenant's job.
func (a *api) jobDeliveries(w http.ResponseWriter, r *http.Request) error {
	j, err := a.tenantJob(r)
	if err != nil {
		return err
	}
	ds, err := a.Deliveries.Deliveries(r.Context(), j.Tenant, j.ID)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"deliveries": ds})
	return nil
}
