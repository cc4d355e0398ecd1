// Package web is the HTTP edge shared by aigw's functions and its gateway:
// handlers return errors, and one adapter turns them into responses with the
// right status and a stable code, keeping the message for the client apart
// from the detail that is only logged. The functions answer in the API's shape
// {"error":{"code":"…","message":"…"}}; the gateway's OpenFaaS routes answer
// in OpenFaaS's plain text unless the client accepts JSON (HandleNegotiated).
package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// RetryAfter is the Retry-After of a 503 for an outage of a backing server:
// about the time a Redis failover or a MongoDB election takes.
const RetryAfter = 5 * time.Second

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

// codes are the codes of the statuses aigw answers, one per status: an Error
// made with New or Errorf gets its code here unless the case has a more
// precise one (e.g. 422 invalid_input).
var codes = map[int]string{
	http.StatusBadRequest:            "bad_request",
	http.StatusUnauthorized:          "unauthorized",
	http.StatusForbidden:             "forbidden",
	http.StatusNotFound:              "not_found",
	http.StatusMethodNotAllowed:      "method_not_allowed",
	http.StatusConflict:              "conflict",
	http.StatusRequestEntityTooLarge: "too_large",
	http.StatusUnsupportedMediaType:  "unsupported_media_type",
	http.StatusUnprocessableEntity:   "invalid_request",
	http.StatusTooManyRequests:       "rate_limited",
	http.StatusInternalServerError:   "internal",
	http.StatusNotImplemented:        "not_implemented",
	http.StatusBadGateway:            "bad_gateway",
	http.StatusServiceUnavailable:    "unavailable",
	http.StatusGatewayTimeout:        "timeout",
}

// CodeFor is the code of status: its entry in the table above, or the status
// text in snake case for a status aigw does not otherwise answer.
func CodeFor(status int) string {
	if c, ok := codes[status]; ok {
		return c
	}
	return strings.ReplaceAll(strings.ToLower(http.StatusText(status)), " ", "_")
}

// New returns an *Error with the code of status, msg for the client and err,
// the logged cause (may be nil). A 503 carries Retry-After (RetryAfter).
func New(status int, msg string, err error) *Error {
	e := &Error{Status: status, Code: CodeFor(status), Message: msg, Err: err}
	if status == http.StatusServiceUnavailable {
		e.RetryAfter = RetryAfter
	}
	return e
}

// Errorf returns an *Error with the given status and code and a formatted
// message; an empty code takes CodeFor(status). A 503 carries Retry-After.
func Errorf(status int, code, format string, args ...any) *Error {
	e := New(status, fmt.Sprintf(format, args...), nil)
	if code != "" {
		e.Code = code
	}
	return e
}

// Common errors; the message says what to fix.
func BadRequest(format string, args ...any) *Error {
	return Errorf(http.StatusBadRequest, "", format, args...)
}

func NotFound(format string, args ...any) *Error {
	return Errorf(http.StatusNotFound, "", format, args...)
}

func Conflict(format string, args ...any) *Error {
	return Errorf(http.StatusConflict, "", format, args...)
}

func Unauthorized(format string, args ...any) *Error {
	return Errorf(http.StatusUnauthorized, "", format, args...)
}

func Forbidden(format string, args ...any) *Error {
	return Errorf(http.StatusForbidden, "", format, args...)
}

func MethodNotAllowed(r *http.Request) *Error {
	return Errorf(http.StatusMethodNotAllowed, "", "%s is not allowed on %s", r.Method, r.URL.Path)
}

// RateLimited is a 429 with Retry-After: the client may try again after retryAfter.
func RateLimited(retryAfter time.Duration, format string, args ...any) *Error {
	e := Errorf(http.StatusTooManyRequests, "", format, args...)
	e.RetryAfter = retryAfter
	return e
}

// Unavailable is a 503 with Retry-After, for a backing server that does not answer.
func Unavailable(retryAfter time.Duration, err error) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Code: CodeFor(http.StatusServiceUnavailable),
		Message: "a backing service is unavailable; retry later", RetryAfter: retryAfter, Err: err}
}

// IsUnavailable reports whether err says a backing server did not answer: an
// error in its chain reports Unavailable() == true (as mongoconn.ErrUnavailable
// does), or the transport failed (refused or reset connection, a network error,
// a timeout or an expired deadline). Handlers need not map these: the adapter
// answers them 503 with Retry-After.
func IsUnavailable(err error) bool {
	var marked interface{ Unavailable() bool }
	var netErr net.Error
	var timeout interface{ Timeout() bool }
	return err != nil && (errors.As(err, &marked) && marked.Unavailable() ||
		errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.As(err, &netErr) || errors.As(err, &timeout) && timeout.Timeout())
}

// asError is the *Error that answers err: err's own, 503 for an outage, or a
// 500 whose detail is only logged.
func asError(err error) *Error {
	var we *Error
	switch {
	case errors.As(err, &we):
		return we
	case IsUnavailable(err):
		return Unavailable(RetryAfter, err)
	}
	return &Error{Status: http.StatusInternalServerError, Code: CodeFor(http.StatusInternalServerError), Message: "internal error", Err: err}
}

// HandlerFunc is an http.HandlerFunc that returns its error instead of writing it.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// Handle adapts h to an http.Handler whose errors WriteError writes.
func Handle(log *slog.Logger, h HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			WriteError(w, r, log, err)
		}
	})
}

// HandleNegotiated adapts h to an http.Handler whose errors WriteNegotiated
// writes: for routes that OpenFaaS clients call.
func HandleNegotiated(log *slog.Logger, h HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			WriteNegotiated(w, r, log, err)
		}
	}
}

// WriteError writes err in the API's error shape: an *Error as it is, an
// outage (IsUnavailable) as 503 with Retry-After, anything else as a 500 with
// no detail. Failures of the server are logged at error level, the client's
// at debug, with the cause.
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	we := prepare(w, r, log, err)
	body := struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}{}
	body.Error.Code, body.Error.Message = we.Code, we.Message
	WriteJSON(w, we.Status, body)
}

// WriteNegotiated writes err as WriteError does when the client accepts JSON,
// else as OpenFaaS's plain text (the message alone, which faas-cli and the
// go-sdk print as is), with the same status and headers.
func WriteNegotiated(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		WriteError(w, r, log, err)
		return
	}
	we := prepare(w, r, log, err)
	http.Error(w, we.Message, we.Status)
}

// prepare classifies err, logs it and sets its headers.
func prepare(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) *Error {
	we := asError(err)
	if log != nil {
		lvl := slog.LevelDebug
		if we.Status >= 500 {
			lvl = slog.LevelError
		}
		log.Log(r.Context(), lvl, "request failed", "method", r.Method, "path", r.URL.Path,
			"status", we.Status, "code", we.Code, "err", err)
	}
	if we.RetryAfter > 0 {
		secs := int((we.RetryAfter + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
	}
	return we
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
		return Errorf(http.StatusUnsupportedMediaType, "",
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
		return Errorf(http.StatusRequestEntityTooLarge, "",
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
