package router

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/jobstore"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/internal/submit"
	"github.com/aigw/aigw/internal/web"
)

// DeadLetters reads and removes a pool's dead-letter entries (queue.Queue).
type DeadLetters interface {
	DeadLetters(ctx context.Context, pool string, max int) ([]queue.DeadLetter, error)
	DeadLetterEntry(ctx context.Context, pool, id string) (queue.DeadLetter, error)
	EachDeadLetter(ctx context.Context, pool string, fn func(queue.DeadLetter) error) error
	RemoveDeadLetter(ctx context.Context, d queue.DeadLetter) error
}

// deadLetterView is a dead-letter entry as an operator sees it: the entry id,
// its job (tenant and algorithm from the job's record, when there is one), why
// and when it was dead-lettered, and how often it was delivered (the queue's
// count when it gave up on the entry, else the job's attempts).
type deadLetterView struct {
	ID         string    `json:"id"`
	JobID      string    `json:"job_id"`
	Tenant     string    `json:"tenant"`
	Algorithm  string    `json:"algorithm"`
	Reason     string    `json:"reason"`
	Deliveries int       `json:"deliveries"`
	DeadAt     time.Time `json:"dead_at"`
}

const (
	defaultDeadLetters = 100
	maxDeadLetters     = 1000
)

// listDeadLetters: GET /v1/admin/pools/{pool}/dead-letters?limit=N →
// {"dead_letters": [...]}, up to N (default 100, at most 1000) entries, each
// shard's oldest first. Operator scope.
func (a *api) listDeadLetters(w http.ResponseWriter, r *http.Request) error {
	pool, err := a.knownPool(r)
	if err != nil {
		return err
	}
	limit := defaultDeadLetters
	for k, vs := range r.URL.Query() {
		if k != "limit" || len(vs) != 1 {
			return web.BadRequest("query parameter %q: only limit, once, is known", k)
		}
		n, err := strconv.Atoi(vs[0])
		if err != nil || n < 1 || n > maxDeadLetters {
			return web.BadRequest("limit %q: want a number from 1 to %d", vs[0], maxDeadLetters)
		}
		limit = n
	}
	dls, err := a.DeadLetters.DeadLetters(r.Context(), pool, limit)
	if err != nil {
		return err
	}
	out := make([]deadLetterView, 0, len(dls))
	for _, d := range dls {
		v := deadLetterView{ID: d.ID, JobID: d.JobID, Reason: d.Reason, Deliveries: d.Deliveries(), DeadAt: d.DeadAt()}
		if job.ValidID(d.JobID) {
			j, err := a.Jobs.GetByID(r.Context(), d.JobID)
			switch {
			case err == nil:
				v.Tenant, v.Algorithm = j.Tenant, j.Algorithm
				if v.Deliveries == 0 {
					v.Deliveries = j.Attempt
				}
			case !errors.Is(err, jobstore.ErrNotFound):
				return err
			}
		}
		out = append(out, v)
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"dead_letters": out})
	return nil
}

// redriveDeadLetter: POST /v1/admin/pools/{pool}/dead-letters/{id}/redrive →
// 202 with the job queued again (its entry leaves the dead-letter stream); 404
// when the pool has no such entry, 409 when its job cannot run again now
// (running, succeeded or canceled; the entry stays). Operator scope.
func (a *api) redriveDeadLetter(w http.ResponseWriter, r *http.Request) error {
	pool, err := a.knownPool(r)
	if err != nil {
		return err
	}
	d, err := a.DeadLetters.DeadLetterEntry(r.Context(), pool, chi.URLParam(r, "id"))
	if errors.Is(err, queue.ErrNoDeadLetter) {
		return web.NotFound("pool %s has no dead letter %s", pool, chi.URLParam(r, "id"))
	}
	if err != nil {
		return err
	}
	j, err := a.redrive(r.Context(), d)
	if err != nil {
		return err
	}
	w.Header().Set("Location", a.location(r, "/v1/jobs/"+j.ID))
	web.WriteJSON(w, http.StatusAccepted, jobView{Job: a.present(r.Context(), j)})
	return nil
}

// redriveAll: POST /v1/admin/pools/{pool}/dead-letters/redrive → 200
// {"redriven": N}: every entry of the pool whose job can run again is
// redriven; the others stay. Operator scope.
func (a *api) redriveAll(w http.ResponseWriter, r *http.Request) error {
	pool, err := a.knownPool(r)
	if err != nil {
		return err
	}
	n := 0
	err = a.DeadLetters.EachDeadLetter(r.Context(), pool, func(d queue.DeadLetter) error {
		_, err := a.redrive(r.Context(), d)
		var we *web.Error
		switch {
		case err == nil:
			n++
			return nil
		case errors.As(err, &we) && (we.Status == http.StatusConflict || we.Status == http.StatusNotFound):
			return nil // stays for the operator to look at
		}
		return err
	})
	if err != nil {
		return err
	}
	a.log.InfoContext(r.Context(), "dead letters redriven", "pool", pool, "count", n)
	web.WriteJSON(w, http.StatusOK, map[string]int{"redriven": n})
	return nil
}

// redrive queues d's job again through the job service (lifecycle.Retry and
// the queue's producer), then removes the entry. A job that is queued already
// (a redrive whose removal failed, or a second one racing) is only enqueued
// again, which is idempotent per job id: a redriven job runs once.
func (a *api) redrive(ctx context.Context, d queue.DeadLetter) (*job.Job, error) {
	if !job.ValidID(d.JobID) {
		return nil, &web.Error{Status: http.StatusConflict, Code: "conflict",
			Message: "dead letter " + d.ID + " names no job; it cannot be redriven"}
	}
	j, err := a.Service.Redrive(ctx, d.JobID)
	if errors.Is(err, jobstore.ErrNotFound) {
		return nil, &web.Error{Status: http.StatusConflict, Code: "conflict",
			Message: "the job " + d.JobID + " of dead letter " + d.ID + " has no record; it cannot be redriven", Err: err}
	}
	if errors.Is(err, submit.ErrPurged) {
		return nil, &web.Error{Status: http.StatusGone, Code: "gone",
			Message: "the job " + d.JobID + " of dead letter " + d.ID + " was purged (its retention ran out); it cannot be redriven", Err: err}
	}
	if err != nil {
		return nil, finishedConflict(err, "redriven", "failed, expired or queued")
	}
	if err := a.DeadLetters.RemoveDeadLetter(ctx, d); err != nil && !errors.Is(err, queue.ErrNoDeadLetter) {
		// The job is queued; the entry shows again and a second redrive only
		// enqueues it again (idempotent).
		a.log.WarnContext(ctx, "job redriven but its dead letter not removed", "job_id", j.ID, "pool", d.Pool, "err", err)
	}
	a.log.InfoContext(ctx, "dead letter redriven", "job_id", j.ID, "pool", d.Pool, "entry", d.ID)
	return j, nil
}

// knownPool returns the path's pool if the registry knows it (404 otherwise).
func (a *api) knownPool(r *http.Request) (string, error) {
	pool := chi.URLParam(r, "pool")
	if queue.ValidatePool(pool) != nil {
		return "", web.NotFound("no such pool %q", pool)
	}
	pools, err := a.Pools.Pools(r.Context())
	if err != nil {
		return "", err
	}
	if !slices.Contains(pools, pool) {
		return "", web.NotFound("no such pool %q", pool)
	}
	return pool, nil
}
