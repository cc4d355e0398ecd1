package router

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/auth"
	"github.com/aigw/aigw/internal/egress"
	"github.com/aigw/aigw/internal/jobstore"
	"github.com/aigw/aigw/internal/mongoconn"
	"github.com/aigw/aigw/internal/submit"
	"github.com/aigw/aigw/internal/web"
)

// retryAfter is the Retry-After of a 503: about the time a Redis failover or a
// MongoDB election takes.
const retryAfter = 5 * time.Second

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
	case unavailable(err):
		return web.Unavailable(retryAfter, err)
	}
	return err
}

// clientMessage is the message of a validation error: safe to show, it names
// only what the client sent.
func clientMessage(err error) string { return err.Error() }

// unavailable reports whether err says a backing server (MongoDB or Redis)
// did not answer, as opposed to a bug or a bad request.
func unavailable(err error) bool {
	var netErr net.Error
	var timeout interface{ Timeout() bool }
	switch {
	case errors.Is(err, mongoconn.ErrUnavailable), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, redis.ErrClosed), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.As(err, &netErr), mongo.IsNetworkError(err), mongo.IsTimeout(err),
		errors.As(err, &timeout) && timeout.Timeout():
		return true
	}
	msg := err.Error()
	for _, p := range []string{"CLUSTERDOWN", "TRYAGAIN", "LOADING", "MASTERDOWN", "READONLY", "server selection error"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

func notFound(w http.ResponseWriter, r *http.Request) error {
	return web.NotFound("no route %s %s; see the API reference for the /v1 routes", r.Method, r.URL.Path)
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request) error {
	return web.Errorf(http.StatusMethodNotAllowed, "method_not_allowed", "%s is not allowed on %s", r.Method, r.URL.Path)
}

// tenant returns the tenant of the request's token.
func tenant(r *http.Request) (string, error) {
	c, ok := auth.FromContext(r.Context())
	if !ok {
		return "", web.Unauthorized("send an access token: Authorization: Bearer <token>")
	}
	if c.Tenant == "" {
		return "", web.Forbidden("the access token names no tenant")
	}
	return c.Tenant, nil
}

// rateLimit admits a tenant's requests at the configured rate: 429 with
// Retry-After when its bucket is empty, 503 when Redis does not answer.
func (a *api) rateLimit(next http.Handler) http.Handler {
	if a.Limiter == nil {
		return next
	}
	return a.handle(func(w http.ResponseWriter, r *http.Request) error {
		t, err := tenant(r)
		if err != nil {
			return err
		}
		res, err := a.Limiter.Allow(r.Context(), t)
		if err != nil {
			return web.Unavailable(retryAfter, err)
		}
		if !res.Allowed {
			return &web.Error{Status: http.StatusTooManyRequests, Code: "rate_limited",
				Message:    fmt.Sprintf("tenant %s is over its request rate; retry after %s", t, res.RetryAfter.Round(time.Millisecond)),
				RetryAfter: res.RetryAfter}
		}
		w.Header().Set("RateLimit-Remaining", fmt.Sprint(res.Remaining))
		next.ServeHTTP(w, r)
		return nil
	})
}
