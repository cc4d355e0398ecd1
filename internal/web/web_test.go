package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/mongoconn"
)

// refused is the error of a real dial to a port nothing listens on.
func refused(t *testing.T) error {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		_ = c.Close()
		t.Fatalf("dial %s: connected to a closed port", addr)
	}
	return fmt.Errorf("enqueue: %w", err)
}

// The one HTTP mapping: every case aigw answers, with its status, code and
// Retry-After, in the functions' JSON shape and in the gateway's plain text.
func TestErrorMapping(t *testing.T) {
	t.Parallel()
	get := httptest.NewRequest(http.MethodDelete, "/v1/jobs/x", nil)
	cases := []struct {
		name       string
		err        error
		status     int
		code       string
		retryAfter string // "" for none
		message    string // a part of the client's message
	}{
		{"bad request", BadRequest("field %q is missing", "input"), 400, "bad_request", "", `field "input" is missing`},
		{"unauthorized", Unauthorized("send an access token"), 401, "unauthorized", "", "send an access token"},
		{"forbidden", Forbidden("the token names no tenant"), 403, "forbidden", "", "names no tenant"},
		{"not found", NotFound("no such job"), 404, "not_found", "", "no such job"},
		{"method not allowed", MethodNotAllowed(get), 405, "method_not_allowed", "", "DELETE is not allowed on /v1/jobs/x"},
		{"conflict", Conflict("job x is running"), 409, "conflict", "", "job x is running"},
		{"too large", New(413, "body over 1 MiB", nil), 413, "too_large", "", "body over 1 MiB"},
		{"media type", New(415, "want JSON", nil), 415, "unsupported_media_type", "", "want JSON"},
		{"unprocessable", New(422, "tail \"x\": want a number", nil), 422, "invalid_request", "", "want a number"},
		{"precise 422", Errorf(422, "invalid_input", "input at /n: want an integer"), 422, "invalid_input", "", "want an integer"},
		{"rate limited", RateLimited(1500*time.Millisecond, "over the rate"), 429, "rate_limited", "2", "over the rate"},
		{"bad gateway", New(502, "function f failed", errors.New("EOF")), 502, "bad_gateway", "", "function f failed"},
		{"unavailable", Unavailable(RetryAfter, errors.New("down")), 503, "unavailable", "5", "retry later"},
		{"unavailable, own message", New(503, "function f has no ready replica", nil), 503, "unavailable", "5", "no ready replica"},
		{"gateway timeout", New(504, "function f timed out", nil), 504, "timeout", "", "timed out"},
		{"wrapped *Error", fmt.Errorf("handler: %w", NotFound("no such pool")), 404, "not_found", "", "no such pool"},
		{"mongodb outage", fmt.Errorf("get job: %w", mongoconn.ErrUnavailable), 503, "unavailable", "5", "retry later"},
		{"deadline", fmt.Errorf("list: %w", context.DeadlineExceeded), 503, "unavailable", "5", "retry later"},
		{"refused connection", refused(t), 503, "unavailable", "5", "retry later"},
		{"unknown", errors.New("nil map in handler"), 500, "internal", "", "internal error"},
	}
	for _, tc := range cases {
		h := func(w http.ResponseWriter, r *http.Request) error { return tc.err }
		log := slog.New(slog.DiscardHandler)
		for _, f := range []struct {
			name   string
			h      http.Handler
			accept string
			json   bool
		}{
			{"Handle", Handle(log, h), "", true},
			{"HandleNegotiated/text", HandleNegotiated(log, h), "", false},
			{"HandleNegotiated/json", HandleNegotiated(log, h), "application/json", true},
		} {
			srv := httptest.NewServer(f.h)
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/x", nil)
			if f.accept != "" {
				req.Header.Set("Accept", f.accept)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				srv.Close()
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			srv.Close()
			if resp.StatusCode != tc.status || resp.Header.Get("Retry-After") != tc.retryAfter {
				t.Errorf("%s %s: %d Retry-After %q; want %d Retry-After %q", tc.name, f.name,
					resp.StatusCode, resp.Header.Get("Retry-After"), tc.status, tc.retryAfter)
			}
			if !f.json {
				if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") || !strings.Contains(string(body), tc.message) {
					t.Errorf("%s %s: %s %q; want text/plain holding %q", tc.name, f.name, ct, body, tc.message)
				}
				continue
			}
			var e struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			if err := json.Unmarshal(body, &e); err != nil || resp.Header.Get("Content-Type") != "application/json" {
				t.Errorf("%s %s: %s %q is not the JSON error shape: %v", tc.name, f.name, resp.Header.Get("Content-Type"), body, err)
				continue
			}
			if e.Error.Code != tc.code || !strings.Contains(e.Error.Message, tc.message) {
				t.Errorf("%s %s: %+v; want code %q and a message holding %q", tc.name, f.name, e.Error, tc.code, tc.message)
			}
			if tc.status == 500 && strings.Contains(string(body), "nil map") {
				t.Errorf("%s: the cause reached the client: %s", tc.name, body)
			}
		}
	}
}

// Every status with a code has exactly one, and codes do not repeat.
func TestCodesAreOnePerStatus(t *testing.T) {
	t.Parallel()
	seen := map[string]int{}
	for status, code := range codes {
		if other, ok := seen[code]; ok {
			t.Errorf("code %q is used by %d and %d", code, other, status)
		}
		seen[code] = status
		if CodeFor(status) != code {
			t.Errorf("CodeFor(%d) = %q, want %q", status, CodeFor(status), code)
		}
	}
	if got := CodeFor(http.StatusTeapot); got != "i'm_a_teapot" {
		t.Errorf("CodeFor(418) = %q", got)
	}
}

// The cause of an error is logged with stable keys, never sent.
func TestWriteErrorLogsTheCause(t *testing.T) {
	t.Parallel()
	var buf strings.Builder
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rec := httptest.NewRecorder()
	WriteError(rec, httptest.NewRequest(http.MethodGet, "/v1/pools", nil), log,
		fmt.Errorf("pools: %w", errors.New("secret detail")))
	if rec.Code != 500 || strings.Contains(rec.Body.String(), "secret detail") {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	var line map[string]any
	if err := json.Unmarshal([]byte(buf.String()), &line); err != nil {
		t.Fatalf("log %q: %v", buf.String(), err)
	}
	if line["level"] != "ERROR" || line["status"] != float64(500) || line["code"] != "internal" ||
		line["path"] != "/v1/pools" || !strings.Contains(fmt.Sprint(line["err"]), "secret detail") {
		t.Errorf("log line %v", line)
	}
}
