package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/auth"
	"github.com/aigw/aigw/internal/auth/authtest"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/internal/testenv"
	"github.com/aigw/aigw/internal/testlog"
)

// tcpProxy forwards connections to a real server until it is cut: then it
// closes its listener and every connection, as a server that went away would.
type tcpProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func startProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target}
	p.wg.Go(p.accept)
	t.Cleanup(p.cut)
	return p
}

func (p *tcpProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Go(func() { _, _ = io.Copy(s, c); _ = s.Close() })
		p.wg.Go(func() { _, _ = io.Copy(c, s); _ = c.Close() })
	}
}

// cut stops forwarding; later connections to its address are refused.
func (p *tcpProxy) cut() {
	_ = p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}

// TestMongoOutageIs503OnEveryRoute cuts the orchestrator off its MongoDB (a real
// server behind a proxy that is then closed) and checks that every pipeline and
// webhook-secret route answers 503 with Retry-After, as the router's do.
func TestMongoOutageIs503OnEveryRoute(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	// A database of its own (dropped at the end), reached through the proxy.
	b := &bundle{ctx: ctx, db: testenv.MongoDB(t), rdb: testenv.Redis(t), issuer: authtest.NewIssuer(t),
		pool: testenv.UniqueName(t, 50), log: testlog.AtLevel(t, slog.LevelInfo)}
	if _, _, err := algorithm.NewStore(b.db).Put(ctx, algorithm.Definition{Name: "echo", Version: "1.0.0", Pool: b.pool,
		Runtime: algorithm.Runtime{Type: algorithm.Exec, Command: []string{"aigw-echo"}}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = queue.New(b.rdb, queue.Config{}).Purge(context.Background(), b.pool) })
	u, err := url.Parse(testenv.MongoURI(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := startProxy(t, u.Host)
	client, err := mongo.Connect(options.Client().
		ApplyURI("mongodb://" + proxy.ln.Addr().String() + "/?directConnection=true").
		SetServerSelectionTimeout(500 * time.Millisecond).SetConnectTimeout(500 * time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	v, err := auth.NewVerifier(b.issuer.VerifierConfig())
	if err != nil {
		t.Fatal(err)
	}
	lockKey := "aigw:{" + b.pool + "}:tick"
	t.Cleanup(func() { _ = b.rdb.Del(context.Background(), lockKey).Err() })
	svc, err := New(ctx, Deps{DB: client.Database(b.db.Name()), Redis: b.rdb, Verifier: v,
		AdminToken: adminToken, LockKey: lockKey, Log: b.log})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)
	b.srv = srv
	token := b.issuer.Token(t, "acme", auth.ScopeJobsRead, auth.ScopeJobsWrite)
	// Up: the routes work through the proxy.
	if code := b.call(t, "PUT", "/v1/pipelines/outage", token, `{"steps":[{"name":"a","algorithm":"echo"}]}`, nil); code != http.StatusCreated {
		t.Fatalf("PUT pipeline before the outage = %d", code)
	}
	var run struct{ ID string }
	if code := b.call(t, "POST", "/v1/pipelines/outage/runs", token, `{"input":{}}`, &run); code != http.StatusCreated {
		t.Fatalf("start run before the outage = %d", code)
	}

	proxy.cut()

	routes := []struct{ method, path, token, body string }{
		{"GET", "/admin/tenants/acme/webhook-secret", adminToken, ""},
		{"POST", "/admin/tenants/acme/webhook-secret", adminToken, ""},
		{"GET", "/v1/pipelines", token, ""},
		{"GET", "/v1/pipelines/outage", token, ""},
		{"PUT", "/v1/pipelines/outage", token, `{"steps":[{"name":"a","algorithm":"echo"}]}`},
		{"POST", "/v1/pipelines/outage/runs", token, `{"input":{}}`},
		{"GET", "/v1/pipelines/outage/runs/" + run.ID, token, ""},
		{"POST", "/v1/pipelines/outage/runs/" + run.ID + "/cancel", token, ""},
	}
	for _, r := range routes {
		req, err := http.NewRequestWithContext(b.ctx, r.method, srv.URL+r.path, strings.NewReader(r.body))
		if err != nil {
			t.Fatal(err)
		}
		if r.body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Authorization", "Bearer "+r.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Error struct{ Code, Message string }
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		_ = resp.Body.Close()
		if err != nil && !errors.Is(err, io.EOF) {
			t.Fatalf("%s %s: %v", r.method, r.path, err)
		}
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "5" || body.Error.Code != "unavailable" {
			t.Errorf("%s %s during a MongoDB outage = %d Retry-After %q %+v; want 503, Retry-After 5, code unavailable",
				r.method, r.path, resp.StatusCode, resp.Header.Get("Retry-After"), body.Error)
		}
	}
}
