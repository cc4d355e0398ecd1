// Package web is the HTTP edge shared by aigw's functions: handlers return
// errors, and one adapter turns them into the API's error shape
// {"error":{"code":"…","message":"…"}} with the right status, keeping the
// message for the client apart from the detail that is only logged.
package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"time"
)

// Error is an error with an HTTP status, a stable code and a message meant for
// the client. Err, when set, is the cause: logged, never sent.
type Error struct {
	Status  int
	Code    string
	Message string
	// RetryAfter, when > 0, is sent as the Retry-After header (whole seconds,
	// rounded up), as 429 and 503 answers must.
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%d %s: %s: %v", e.Status, e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given status and code and a formatted message.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Common errors; the message says what to fix.
func BadRequest(format string, args ...any) *Error {
	return Errorf(http.StatusBadRequest, "bad_request", format, args...)
}

func NotFound(format string, args ...any) *Error {
	return Errorf(http.StatusNotFound, "not_found", format, args...)
}

func Conflict(format string, args ...any) *Error {
	return Errorf(http.StatusConflict, "conflict", format, args...)
}

func Unauthorized(format string, args ...any) *Error {
	return Errorf(http.StatusUnauthorized, "unauthorized", format, args...)
}

func Forbidden(format string, args ...any) *Error {
	return Errorf(http.StatusForbidden, "forbidden", format, args...)
}

// Unavailable is a 503 with Retry-After, for a backing server that does not answer.
func Unavailable(retryAfter time.Duration, err error) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Code: "unavailable",
		Message: "a backing service is unavailable; retry later", RetryAfter: retryAfter, Err: err}
}

// HandlerFunc is an http.HandlerFunc that returns its error instead of writing it.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// Handle adapts h to an http.Handler: a returned *Error is written as is; any
// other error is logged with the request and answered 500 with no detail.
func Handle(log *slog.Logger, h HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			WriteError(w, r, log, err)
		}
	})
}

// WriteError writes err in the API's error shape.
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	var we *Error
	if !errors.As(err, &we) {
		we = &Error{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error", Err: err}
	}
	if log != nil && (we.Status >= 500 || we.Err != nil) {
		log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path,
			"status", we.Status, "code", we.Code, "err", err)
	}
	if we.RetryAfter > 0 {
		secs := int((we.RetryAfter + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
	}
	body := struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}{}
	body.Error.Code, body.Error.Message = we.Code, we.Message
	WriteJSON(w, we.Status, body)
}

// WriteJSON writes v as JSON with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the client went away; nothing left to tell it
}

// DefaultMaxBody is the request body limit when a caller passes 0.
const DefaultMaxBody = 1 << 20

// DecodeJSON reads a JSON request body into v: 415 unless the content type is
// application/json, 413 over maxBytes (0 means DefaultMaxBody), 400 for
// malformed JSON, unknown fields or trailing data, each naming what to fix.
func DecodeJSON(w http.ResponseWriter, r *http.Request, maxBytes int64, v any) error {
	if err := RequireJSON(r); err != nil {
		return err
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBody
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err, maxBytes)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		if err != nil {
			return decodeError(err, maxBytes)
		}
		return BadRequest("request body must hold one JSON value; found data after it")
	}
	return nil
}

// RequireJSON answers 415 unless the request's Content-Type is application/json.
func RequireJSON(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil || mt != "application/json" {
		return Errorf(http.StatusUnsupportedMediaType, "unsupported_media_type",
			"Content-Type must be application/json (got %q)", ct)
	}
	return nil
}

func decodeError(err error, maxBytes int64) error {
	var tooBig *http.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooBig):
		return Errorf(http.StatusRequestEntityTooLarge, "too_large",
			"request body is over the limit of %d bytes", maxBytes)
	case errors.Is(err, io.EOF):
		return BadRequest("request body is empty; send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return BadRequest("request body is truncated JSON")
	case errors.As(err, &syntax):
		return BadRequest("malformed JSON at byte %d: %v", syntax.Offset, err)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return BadRequest("field %q must be %s, not a JSON %s", typ.Field, typ.Type, typ.Value)
		}
		return BadRequest("request body must be %s, not a JSON %s", typ.Type, typ.Value)
	default:
		return BadRequest("invalid JSON body: %v", err)
	}
}
