package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aigw/aigw/gateway/internal/async"
	"github.com/aigw/aigw/gateway/internal/config"
	"github.com/aigw/aigw/internal/testenv"
	"github.com/aigw/aigw/internal/testwait"
)

type callbacks struct {
	mu    sync.Mutex
	calls []http.Header
	body  []string
	srv   *httptest.Server
}

func newCallbacks(t *testing.T) *callbacks {
	c := &callbacks{}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		c.mu.Lock()
		c.calls = append(c.calls, r.Header.Clone())
		c.body = append(c.body, string(b))
		c.mu.Unlock()
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *callbacks) count(callID string) (n int, last http.Header, body string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, h := range c.calls {
		if h.Get("X-Call-Id") == callID {
			n, last, body = n+1, h, c.body[i]
		}
	}
	return n, last, body
}

// asyncConfig returns gateway options with a queue of the test's own and short
// backoffs, and the queue's hash tag.
func asyncConfig(t *testing.T) (opts func() Options, tag string) {
	tag = testenv.UniqueName(t, 40)
	return func() Options {
		return Options{Async: async.Options{Tag: tag, MinBackoff: 100 * time.Millisecond, MaxBackoff: 300 * time.Millisecond, ClaimIdle: time.Second, Workers: 4}}
	}, tag
}

// TestAsyncInvoke: 202 with X-Call-Id once the call is in Redis, then the
// result POSTed to X-Callback-Url, through go-sdk's async invoke.
func TestAsyncInvoke(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	cfg := testConfig(t)
	cfg.RedisAddrs = testenv.RedisAddrs(t)
	cfg.WebhookAllowedNets = loopbackNets // the callback receiver is on 127.0.0.1
	cfg.AsyncMaxBody = 1024
	opts, tag := asyncConfig(t)
	b := start(t, cfg, opts())
	cb := newCallbacks(t)
	name := fnName("async")
	b.deploy(name, nil)

	// go-sdk posts to /async-function/<name>.<ns> (its path replaces the request's).
	req, _ := http.NewRequest(http.MethodPost, "http://x/?ms=700", strings.NewReader(""))
	req.Header.Set("X-Callback-Url", cb.srv.URL+"/done")
	res, err := b.client.InvokeFunction(name, "", true, false, req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	callID := res.Header.Get("X-Call-Id")
	if res.StatusCode != http.StatusAccepted || callID == "" {
		t.Fatalf("async invoke: %d, X-Call-Id %q", res.StatusCode, callID)
	}
	testwait.Eventually(t, 10*time.Second, func() bool { n, _, _ := cb.count(callID); return n == 1 }, "callback")
	_, h, body := cb.count(callID)
	if h.Get("X-Function-Status") != "200" || h.Get("X-Duration-Seconds") == "" || !strings.Contains(body, `"query":"ms=700"`) {
		t.Errorf("callback headers %v body %q", h, body)
	}

	// The call is in Redis before the 202: a slow call is still in the stream then.
	res, err = http.Post(b.url+"/async-function/"+name+"/sleep?ms=1500", "text/plain", strings.NewReader("payload"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	callID = res.Header.Get("X-Call-Id")
	msgs, err := rdb.XRange(t.Context(), async.KeysFor(tag).Stream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range msgs {
		found = found || (m.Values["id"] == callID && m.Values["body"] == "payload" && m.Values["path"] == "/sleep?ms=1500")
	}
	if res.StatusCode != http.StatusAccepted || !found {
		t.Errorf("call %s (%d) not in the stream right after the 202: %v", callID, res.StatusCode, msgs)
	}

	res, err = http.Post(b.url+"/async-function/"+name, "text/plain", strings.NewReader(strings.Repeat("x", 2048)))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: %d, want 413", res.StatusCode)
	}
	res, err = http.Post(b.url+"/async-function/"+fnName("nope"), "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("unknown function: %d, want 404", res.StatusCode)
	}
}

// TestAsyncSurvivesGatewayRestart: a call being retried when its gateway stops
// is finished by the next gateway, and called back exactly once.
func TestAsyncSurvivesGatewayRestart(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	cfg := testConfig(t)
	cfg.RedisAddrs = testenv.RedisAddrs(t)
	cfg.WebhookAllowedNets = loopbackNets // the callback receiver is on 127.0.0.1
	cfg.AsyncMaxAttempts = 100
	opts, tag := asyncConfig(t)
	cb := newCallbacks(t)
	name := fnName("retry")
	flag := filepath.Join(t.TempDir(), "ready")

	for _, consumer := range []string{"same", "other"} {
		t.Run(consumer, func(t *testing.T) {
			first := start(t, withConsumer(cfg, "gw-a"), opts())
			first.deploy(name, nil)
			_ = os.Remove(flag)
			req, _ := http.NewRequest(http.MethodPost, first.url+"/async-function/"+name+"/until?file="+flag, nil)
			req.Header.Set("X-Callback-Url", cb.srv.URL)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			callID := res.Header.Get("X-Call-Id")
			testwait.Eventually(t, 10*time.Second, func() bool {
				n, _ := rdb.HGet(t.Context(), async.KeysFor(tag).Attempts, callID).Int()
				return n >= 2
			}, "two failed attempts")

			if err := first.g.Shutdown(t.Context()); err != nil {
				t.Fatal(err)
			}
			if n, _, _ := cb.count(callID); n != 0 {
				t.Fatalf("called back before the function succeeded")
			}
			if err := os.WriteFile(flag, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			next := "gw-a" // a restart: resumes its own pending calls at once
			if consumer == "other" {
				next = "gw-b" // another gateway: takes the call over after ClaimIdle
			}
			second := start(t, withConsumer(cfg, next), opts())
			testwait.Eventually(t, 20*time.Second, func() bool { n, _, _ := cb.count(callID); return n >= 1 }, "callback after restart")
			time.Sleep(1500 * time.Millisecond) // more than ClaimIdle: no second delivery
			n, h, _ := cb.count(callID)
			if n != 1 || h.Get("X-Function-Status") != "200" {
				t.Errorf("callbacks for %s: %d (status %s), want exactly 1 with 200", callID, n, h.Get("X-Function-Status"))
			}
			pending, err := rdb.XPending(t.Context(), async.KeysFor(tag).Stream, "aigw-gateway").Result()
			if err != nil || pending.Count != 0 {
				t.Errorf("pending after delivery: %+v %v", pending, err)
			}
			if err := second.g.Shutdown(t.Context()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func withConsumer(cfg config.Config, name string) config.Config {
	cfg.AsyncConsumer = name
	return cfg
}

// TestAsyncRecoversLostStream: the calls stream deleted under a running gateway
// (a failover that lost the master's last writes) comes back with its consumer
// group, so a call accepted afterwards is processed and called back, once.
func TestAsyncRecoversLostStream(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	cfg := testConfig(t)
	cfg.RedisAddrs = testenv.RedisAddrs(t)
	cfg.WebhookAllowedNets = loopbackNets // the callback receiver is on 127.0.0.1
	opts, tag := asyncConfig(t)
	b := start(t, cfg, opts())
	cb := newCallbacks(t)
	name := fnName("lost")
	b.deploy(name, nil)

	call := func() string {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, b.url+"/async-function/"+name, strings.NewReader("x"))
		req.Header.Set("X-Callback-Url", cb.srv.URL)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusAccepted {
			t.Fatalf("async call: %d, want 202", res.StatusCode)
		}
		return res.Header.Get("X-Call-Id")
	}
	first := call()
	testwait.Eventually(t, 10*time.Second, func() bool { n, _, _ := cb.count(first); return n == 1 }, "callback before the loss")

	stream := async.KeysFor(tag).Stream
	if err := rdb.Del(t.Context(), stream).Err(); err != nil {
		t.Fatal(err)
	}
	after := call()
	testwait.Eventually(t, 15*time.Second, func() bool { n, _, _ := cb.count(after); return n >= 1 }, "callback of a call accepted after the stream was lost")
	time.Sleep(1500 * time.Millisecond) // more than ClaimIdle: no second delivery
	if n, h, _ := cb.count(after); n != 1 || h.Get("X-Function-Status") != "200" {
		t.Errorf("callbacks for %s: %d (status %s), want exactly 1 with 200", after, n, h.Get("X-Function-Status"))
	}
	pending, err := rdb.XPending(t.Context(), stream, "aigw-gateway").Result()
	if err != nil || pending.Count != 0 {
		t.Errorf("pending after delivery: %+v %v", pending, err)
	}
}
