// Package httperr is the gateway's one adapter from handler errors to HTTP
// responses: handlers return errors, Handler writes them, keeping the message
// for the client apart from the detail that is only logged.
//
// The body is OpenFaaS's plain text (what faas-cli and go-sdk print as is),
// or {"error":{"code","message"}} when the client accepts JSON.
package httperr

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
)

// Error is an error with the status and message the client gets.
type Error struct {
	Status int
	Code   string // short machine-readable code, e.g. "not_found"
	Msg    string // for the client
	Err    error  // for the log; may be nil
}

func (e *Error) Error() string {
	if e.Err != nil && e.Err.Error() != e.Msg {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// New returns an Error with a code derived from the status.
func New(status int, msg string, err error) *Error {
	return &Error{Status: status, Code: codeFor(status), Msg: msg, Err: err}
}

func codeFor(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "bad_request"
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case http.StatusConflict:
		return "conflict"
	case http.StatusRequestEntityTooLarge:
		return "payload_too_large"
	case http.StatusBadGateway:
		return "bad_gateway"
	case http.StatusServiceUnavailable:
		return "unavailable"
	case http.StatusGatewayTimeout:
		return "timeout"
	default:
		return strings.ReplaceAll(strings.ToLower(http.StatusText(status)), " ", "_")
	}
}

// Func is a handler that returns an error instead of writing it.
type Func func(w http.ResponseWriter, r *http.Request) error

// Handler adapts f, writing its error with Write.
func Handler(log *slog.Logger, f Func) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := f(w, r); err != nil {
			Write(w, r, log, err)
		}
	}
}

// Write writes err: an *Error as given, anything else as a 500 whose detail is
// only logged.
func Write(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Status: http.StatusInternalServerError, Code: "internal", Msg: "internal error", Err: err}
	}
	lvl := slog.LevelDebug
	if e.Status >= 500 {
		lvl = slog.LevelWarn
	}
	log.Log(r.Context(), lvl, "request failed", "method", r.Method, "path", r.URL.Path, "status", e.Status, "err", e.Error())
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="Restricted"`)
	}
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(e.Status)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": e.Code, "message": e.Msg}})
		return
	}
	http.Error(w, e.Msg, e.Status)
}
