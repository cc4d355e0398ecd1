package router

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/jobstore"
	"github.com/aigw/aigw/internal/testenv"
)

// proxy forwards TCP to target until stopped; stop closes every connection,
// so the clients behind it see their server die.
type proxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(s, c); _ = s.Close() }()
			go func() { _, _ = io.Copy(c, s); _ = c.Close() }()
		}
	}()
	t.Cleanup(p.stop)
	return p
}

func (p *proxy) stop() {
	_ = p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

// closedAddr is a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func deadRedis(t *testing.T) redis.UniversalClient {
	t.Helper()
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{closedAddr(t)},
		DialTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond, MaxRetries: 1})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func wantUnavailable(t *testing.T, r reply) {
	t.Helper()
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503: %s", r.status, r.body)
	}
	if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 {
		t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
	}
	if code, _ := r.errorCode(t); code != "unavailable" {
		t.Fatalf("code %s", code)
	}
}

func TestMongoDownIs503AndWritesNothing(t *testing.T) {
	t.Parallel()
	e := setup(t, testConfig())
	e.register(t)

	// A second router whose MongoDB connection goes through a proxy that dies.
	p := startProxy(t, strings.TrimSuffix(strings.TrimPrefix(testenv.MongoURI(t), "mongodb://"), "/"))
	client, err := mongo.Connect(options.Client().ApplyURI("mongodb://" + p.ln.Addr().String() + "/?directConnection=true").
		SetServerSelectionTimeout(time.Second).SetConnectTimeout(time.Second).SetTimeout(2 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	// A database of its own: devmongo drops the connection when indexes are
	// created again on e.db.
	db := client.Database(e.db.Name() + "_d")
	live := e.db.Client().Database(db.Name())
	t.Cleanup(func() { _ = live.Drop(context.Background()) })
	down := &env{ctx: e.ctx, is: e.is}
	if down.jobs, err = jobstore.New(e.ctx, db, jobstore.Options{}); err != nil {
		t.Fatal(err)
	}
	down.serve(t, db, e.rdb, testConfig())
	e.want(t, down.do(t, "PUT", "/v1/algorithms/echo", e.token, echoDef(e.pool, "1.0.0")), http.StatusCreated)
	p.stop()

	wantUnavailable(t, down.do(t, "POST", "/v1/algorithms/echo/jobs", e.token, `{"input":{"message":"hi"}}`))
	wantUnavailable(t, down.do(t, "GET", "/v1/jobs", e.token, ""))
	wantUnavailable(t, down.do(t, "GET", "/v1/algorithms", e.token, ""))
	if r := down.do(t, "GET", "/_/health", "", ""); r.status != http.StatusServiceUnavailable {
		t.Fatalf("health with MongoDB down: %d", r.status)
	}
	n, err := live.Collection("jobs").CountDocuments(e.ctx, map[string]any{})
	if err != nil || n != 0 {
		t.Fatalf("jobs after the failed submit: %d %v", n, err)
	}
	if st, err := e.queue.Stats(e.ctx, e.pool); err != nil || st.Depth() != 0 {
		t.Fatalf("queue after the failed submit: %+v %v", st, err)
	}
}

func TestRedisDown(t *testing.T) {
	t.Parallel()
	e := setup(t, testConfig())
	e.register(t)

	// Rate limited: the bucket is in Redis, so nothing happens at all.
	limited := &env{ctx: e.ctx, is: e.is, jobs: e.jobs}
	limited.serve(t, e.db, deadRedis(t), testConfig())
	wantUnavailable(t, limited.do(t, "POST", "/v1/algorithms/echo/jobs", e.token, `{"input":{"message":"hi"}}`))
	page, err := e.jobs.List(e.ctx, jobstore.Filter{Tenant: "acme"})
	if err != nil || len(page.Jobs) != 0 {
		t.Fatalf("jobs after a 503: %d %v", len(page.Jobs), err)
	}

	// Without a rate limit the record is written first, and the job stays
	// queued in MongoDB for the reconciler to enqueue: exactly one job.
	cfg := testConfig()
	cfg.RateLimit.Rate = 0
	unlimited := &env{ctx: e.ctx, is: e.is, jobs: e.jobs}
	unlimited.serve(t, e.db, deadRedis(t), cfg)
	r := unlimited.want(t, unlimited.do(t, "POST", "/v1/algorithms/echo/jobs", e.token, `{"input":{"message":"hi"}}`), http.StatusAccepted)
	var j jobReply
	r.decode(t, &j)
	page, err = e.jobs.List(e.ctx, jobstore.Filter{Tenant: "acme"})
	if err != nil || len(page.Jobs) != 1 || page.Jobs[0].ID != j.ID || page.Jobs[0].State != job.Queued {
		t.Fatalf("want the one queued job %s: %+v %v", j.ID, page.Jobs, err)
	}
	if ok, err := e.queue.Contains(e.ctx, e.pool, j.ID); err != nil || ok {
		t.Fatalf("queue holds the job (%v %v), but its Redis was down", ok, err)
	}
	wantUnavailable(t, unlimited.do(t, "GET", "/v1/jobs/"+j.ID+"/events", e.token, ""))
	wantUnavailable(t, unlimited.do(t, "GET", "/v1/pools", e.token, ""))
	wantUnavailable(t, unlimited.do(t, "PUT", "/v1/algorithms/echo", e.token, echoDef(e.pool, "5.0.0")))
	if r := unlimited.do(t, "GET", "/_/health", "", ""); r.status != http.StatusServiceUnavailable {
		t.Fatalf("health with Redis down: %d", r.status)
	}
}
