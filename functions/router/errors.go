package router

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/auth"
	"github.com/aigw/aigw/internal/egress"
	"github.com/aigw/aigw/internal/jobstore"
	"github.com/aigw/aigw/internal/quota"
	"github.com/aigw/aigw/internal/redisconn"
	"github.com/aigw/aigw/internal/submit"
	"github.com/aigw/aigw/internal/web"
)

// webHandle is web.Handle with the errors of the stores and services
// translated to API errors first.
func webHandle(log *slog.Logger, h func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return web.Handle(log, func(w http.ResponseWriter, r *http.Request) error {
		return apiError(h(w, r))
	})
}

// apiError maps an error of the layers below to its status; an error already
// an *web.Error passes as is, anything unknown becomes a logged 500.
func apiError(err error) error {
	var we *web.Error
	var ie *submit.InputError
	var conflict *jobstore.ConflictError
	var over *quota.OverError
	switch {
	case err == nil || errors.As(err, &we):
		return err
	case errors.As(err, &ie):
		msg := "input: " + ie.Message
		if ie.Path != "" {
			msg = fmt.Sprintf("input at %s: %s", ie.Path, ie.Message)
		}
		return &web.Error{Status: http.StatusUnprocessableEntity, Code: "invalid_input", Message: msg, Err: err}
	case errors.Is(err, submit.ErrUnknownAlgorithm), errors.Is(err, algorithm.ErrNotFound):
		return &web.Error{Status: http.StatusNotFound, Code: "not_found", Message: clientMessage(err), Err: err}
	case errors.Is(err, submit.ErrIdempotencyKeyReused):
		return &web.Error{Status: http.StatusUnprocessableEntity, Code: "idempotency_key_reused", Message: clientMessage(err), Err: err}
	case errors.Is(err, algorithm.ErrInvalid):
		return &web.Error{Status: http.StatusUnprocessableEntity, Code: "invalid_definition", Message: clientMessage(err), Err: err}
	case errors.Is(err, egress.ErrForbiddenAddress):
		return &web.Error{Status: http.StatusUnprocessableEntity, Code: "invalid_webhook", Message: clientMessage(err), Err: err}
	case errors.Is(err, submit.ErrInvalid), errors.Is(err, jobstore.ErrInvalid):
		return &web.Error{Status: http.StatusBadRequest, Code: "bad_request", Message: clientMessage(err), Err: err}
	case errors.Is(err, jobstore.ErrNotFound):
		return web.NotFound("no such job")
	case errors.As(err, &conflict):
		return &web.Error{Status: http.StatusConflict, Code: "conflict",
			Message: fmt.Sprintf("job %s is %s", conflict.ID, conflict.Actual), Err: err}
	case errors.As(err, &over):
		e := web.RateLimited(over.RetryAfter, "%s", over.Error())
		e.Code, e.Err = "quota_exceeded", err
		return e
	case redisconn.IsUnavailable(err):
		return web.Unavailable(web.RetryAfter, err)
	}
	return err // web's adapter answers MongoDB and transport outages 503 and the rest 500
}

// clientMessage is the message of a validation error: safe to show, it names
// only what the client sent.
func clientMessage(err error) string { return err.Error() }

func notFound(w http.ResponseWriter, r *http.Request) error {
	return web.NotFound("no route %s %s; see the API reference for the /v1 routes", r.Method, r.URL.Path)
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request) error {
	return web.MethodNotAllowed(r)
}

// rateLimit admits a tenant's requests at the configured rate: 429 with
// Retry-After when its bucket is empty, 503 when Redis does not answer.
func (a *api) rateLimit(next http.Handler) http.Handler {
	if a.Limiter == nil {
		return next
	}
	return a.handle(func(w http.ResponseWriter, r *http.Request) error {
		t, err := auth.Tenant(r)
		if err != nil {
			return err
		}
		res, err := a.Limiter.Allow(r.Context(), t)
		if err != nil {
			return web.Unavailable(web.RetryAfter, err)
		}
		if !res.Allowed {
			return web.RateLimited(res.RetryAfter, "tenant %s is over its request rate; retry after %s", t, res.RetryAfter.Round(time.Millisecond))
		}
		w.Header().Set("RateLimit-Remaining", fmt.Sprint(res.Remaining))
		next.ServeHTTP(w, r)
		return nil
	})
}
