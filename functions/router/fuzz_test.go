package router

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/aigw/aigw/internal/events"
	"github.com/aigw/aigw/internal/web"
)

// FuzzDecodeSubmit: any body gives a submit body with an input, or a 4xx
// naming the problem; never a panic or a 5xx.
func FuzzDecodeSubmit(f *testing.F) {
	for _, s := range []string{
		`{"input":{"message":"hi"}}`,
		`{"input":{"message":"hi"},"version":"1.0.0","webhook":"https://h/x","webhook_events":["failed"],"policy":{"priority":"high","ttl":"10m","execution_timeout":"1m","max_retries":2,"gang":{"size":4}}}`,
		`{"input":null}`, `{"input":`, `[]`, `{"input":1} {}`, `{"policy":{"gang":{"size":"x"}}}`, `{"colour":1}`, ``,
	} {
		f.Add(s, "application/json")
	}
	f.Add(`{"input":1}`, "text/plain")
	f.Fuzz(func(t *testing.T, body, ctype string) {
		r := httptest.NewRequest("POST", "/v1/algorithms/echo/jobs", strings.NewReader(body))
		r.Header.Set("Content-Type", ctype)
		b, err := decodeSubmit(httptest.NewRecorder(), r, 1<<10)
		if err == nil {
			if len(b.Input) == 0 {
				t.Fatalf("accepted %q without input", body)
			}
			return
		}
		var we *web.Error
		if !errors.As(err, &we) || we.Status < 400 || we.Status > 499 || we.Message == "" {
			t.Fatalf("body %q: %v, want a 4xx with a message", body, err)
		}
	})
}

// FuzzLastEventID: an accepted id is a valid event id, and the header wins.
func FuzzLastEventID(f *testing.F) {
	for _, s := range []string{"", "0-0", "1700000000000-3", "1-", "-1", "01-1", "1-1-1", "18446744073709551616-0", "abc"} {
		f.Add(s, "1-1")
	}
	f.Fuzz(func(t *testing.T, header, query string) {
		id, err := lastEventID(header, query)
		if err != nil {
			var we *web.Error
			if !errors.As(err, &we) || we.Status != http.StatusBadRequest {
				t.Fatalf("%q: %v, want a 400", header, err)
			}
			return
		}
		switch {
		case id != "" && !events.ValidID(id):
			t.Fatalf("accepted %q", id)
		case header != "" && id != header:
			t.Fatalf("header %q lost to query %q", header, query)
		}
	})
}

// FuzzParseFilter: any query gives a filter within the store's limits, or a 400.
func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{"", "state=queued", "algorithm=echo&limit=10", "since=2026-01-02T15:04:05Z", "limit=0", "limit=501",
		"state=done", "since=yesterday", "cursor=abc", "x=1", "limit=1&limit=2", "%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		fl, err := parseFilter(q)
		if err != nil {
			var we *web.Error
			if !errors.As(err, &we) || we.Status != http.StatusBadRequest {
				t.Fatalf("%q: %v, want a 400", raw, err)
			}
			return
		}
		if fl.Limit < 0 || fl.Limit > 500 || (fl.State != "" && !fl.State.Valid()) {
			t.Fatalf("%q gave %+v", raw, fl)
		}
	})
}

func TestPreferWait(t *testing.T) {
	cases := map[string]int{"wait=5": 5, "respond-async, wait=10": 10, "wait=0": 0, `Wait="7"`: 7, "handling=lenient; x=1, wait=3": 3}
	for h, want := range cases {
		d, ok := preferWait([]string{h})
		if !ok || int(d.Seconds()) != want {
			t.Errorf("%q: %v %v, want %ds", h, d, ok, want)
		}
	}
	for _, h := range []string{"", "respond-async", "wait=-1", "wait=soon"} {
		if _, ok := preferWait([]string{h}); ok {
			t.Errorf("%q accepted", h)
		}
	}
}
