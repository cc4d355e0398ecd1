package server

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aigw/aigw/gateway/internal/async"
	"github.com/aigw/aigw/internal/testenv"
	"github.com/aigw/aigw/internal/testwait"
)

// loopbackNets is what make up and e2e allow (AIGW_WEBHOOK_ALLOWED_NETS=127.0.0.0/8):
// the tests' callback receivers listen on 127.0.0.1.
var loopbackNets = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

// logBuffer keeps a gateway's log for a test to search.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// postAsync sends an async call with X-Callback-Url, asking for JSON errors.
func postAsync(t *testing.T, b *bundle, name, callback string) (status int, callID string, body string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, b.url+"/async-function/"+name, strings.NewReader("x"))
	req.Header.Set("X-Callback-Url", callback)
	req.Header.Set("Accept", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header.Get("X-Call-Id"), string(out)
}

// TestAsyncCallbackGuard: X-Callback-Url is the caller's, so the gateway must
// not POST results to loopback, private or link-local (cloud metadata)
// addresses: such a URL is refused with 422 before anything is queued, a call
// whose callback host resolves to one by delivery time is not called back,
// and a redirect is not followed. AIGW_WEBHOOK_ALLOWED_NETS lets the operator
// allow a network.
func TestAsyncCallbackGuard(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	cb := newCallbacks(t)
	port := strings.TrimPrefix(cb.srv.URL, "http://127.0.0.1:")

	type gw struct {
		*bundle
		name string
		keys async.Keys
		logs *logBuffer
	}
	gateway := func(t *testing.T, allowed []netip.Prefix) gw {
		cfg := testConfig(t)
		cfg.RedisAddrs = testenv.RedisAddrs(t)
		cfg.WebhookAllowedNets = allowed
		opts, tag := asyncConfig(t)
		logs := &logBuffer{}
		o := opts()
		o.Logger = logs.logger()
		g := gw{bundle: start(t, cfg, o), name: fnName("cbguard"), keys: async.KeysFor(tag), logs: logs}
		g.deploy(g.name, nil)
		return g
	}

	t.Run("refused by default", func(t *testing.T) {
		t.Parallel()
		g := gateway(t, nil)
		b, name := g.bundle, g.name
		for _, u := range []string{
			cb.srv.URL + "/done",
			"http://localhost:" + port + "/done",
			"http://169.254.169.254/latest/meta-data/iam/security-credentials/",
			"http://[::1]:" + port + "/",
			"https://10.0.0.1/hook",
			"http://[::ffff:127.0.0.1]:" + port + "/",
		} {
			status, callID, body := postAsync(t, b, name, u)
			var e struct {
				Error struct{ Code, Message string }
			}
			_ = json.Unmarshal([]byte(body), &e)
			if status != http.StatusUnprocessableEntity || callID != "" || e.Error.Code != "invalid_callback_url" ||
				!strings.Contains(e.Error.Message, "X-Callback-Url") || !strings.Contains(e.Error.Message, "AIGW_WEBHOOK_ALLOWED_NETS") {
				t.Errorf("X-Callback-Url %s: %d %q %s; want 422 invalid_callback_url naming the header and AIGW_WEBHOOK_ALLOWED_NETS", u, status, callID, body)
			}
		}
		if n, err := rdb.XLen(t.Context(), g.keys.Stream).Result(); err != nil || n != 0 {
			t.Errorf("calls queued after refusals: %d %v", n, err)
		}
		// Plain-text errors (faas-cli, go-sdk) say the same.
		req, _ := http.NewRequest(http.MethodPost, b.url+"/async-function/"+name, nil)
		req.Header.Set("X-Callback-Url", "http://169.254.169.254/")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		text, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(text), "link-local") {
			t.Errorf("plain-text refusal: %d %s", res.StatusCode, text)
		}
		// A malformed URL stays a 400.
		if status, _, body := postAsync(t, b, name, "file:///etc/passwd"); status != http.StatusBadRequest {
			t.Errorf("file URL: %d %s, want 400", status, body)
		}
	})

	t.Run("refused at delivery", func(t *testing.T) {
		t.Parallel()
		// A call accepted while its callback host resolved to a public address
		// (or by a gateway allowing more) that names loopback by delivery time.
		g := gateway(t, nil)
		callID := testenv.UniqueName(t, 40)
		err := rdb.XAdd(t.Context(), &redis.XAddArgs{Stream: g.keys.Stream, Values: []any{
			"id", callID, "fn", g.name, "method", "POST", "path", "/", "header", "{}", "body", "x",
			"callback", "http://localhost:" + port + "/late",
		}}).Err()
		if err != nil {
			t.Fatal(err)
		}
		testwait.Eventually(t, 15*time.Second, func() bool {
			n, _ := rdb.Exists(t.Context(), g.keys.Done(callID)).Result()
			return n == 1
		}, "the call finished")

		if n, _, _ := cb.count(callID); n != 0 {
			t.Errorf("refused callback delivered %d times", n)
		}
		if l := g.logs.String(); !strings.Contains(l, "callback failed; giving up") || !strings.Contains(l, "not allowed for webhooks") ||
			!strings.Contains(l, "attempts=1") {
			t.Errorf("no log of the refused callback (given up at once):\n%s", l)
		}
	})

	t.Run("allowed network", func(t *testing.T) {
		t.Parallel()
		g := gateway(t, loopbackNets)
		b, name, logs := g.bundle, g.name, g.logs
		for _, u := range []string{cb.srv.URL + "/done", "http://localhost:" + port + "/done"} {
			status, callID, body := postAsync(t, b, name, u)
			if status != http.StatusAccepted || callID == "" {
				t.Fatalf("X-Callback-Url %s with 127.0.0.0/8 allowed: %d %s", u, status, body)
			}
			testwait.Eventually(t, 10*time.Second, func() bool { n, _, _ := cb.count(callID); return n == 1 }, "callback to %s", u)
			if _, h, _ := cb.count(callID); h.Get("X-Function-Status") != "200" {
				t.Errorf("callback headers %v", h)
			}
		}
		// Still refused: what the allow-list does not name.
		if status, _, body := postAsync(t, b, name, "http://169.254.169.254/latest/meta-data/"); status != http.StatusUnprocessableEntity {
			t.Errorf("metadata address with 127.0.0.0/8 allowed: %d %s, want 422", status, body)
		}

		// A redirect is not followed: it could lead anywhere.
		redirector := httptest.NewServer(http.RedirectHandler(cb.srv.URL+"/redirected", http.StatusTemporaryRedirect))
		defer redirector.Close()
		status, callID, body := postAsync(t, b, name, redirector.URL+"/hook")
		if status != http.StatusAccepted {
			t.Fatalf("redirecting callback: %d %s", status, body)
		}
		testwait.Eventually(t, 15*time.Second, func() bool {
			return strings.Contains(logs.String(), "callback failed; giving up")
		}, "the redirected call given up")

		if n, _, _ := cb.count(callID); n != 0 {
			t.Errorf("redirect followed: %d callbacks at its target", n)
		}
		if !strings.Contains(logs.String(), "callback answered 307") {
			t.Errorf("no log of the redirect answer:\n%s", logs.String())
		}
	})
}
