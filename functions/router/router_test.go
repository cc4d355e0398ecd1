package router

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/aigw/aigw/internal/apispec"
	"github.com/aigw/aigw/internal/auth"
	"github.com/aigw/aigw/internal/auth/authtest"
	"github.com/aigw/aigw/internal/events"
	"github.com/aigw/aigw/internal/jobstore"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/internal/ratelimit"
	"github.com/aigw/aigw/internal/registry"
	"github.com/aigw/aigw/internal/testenv"
	"github.com/aigw/aigw/internal/testlog"
)

// env is one router served over HTTP on real servers, with its own database
// and pool, and a token issuer.
type env struct {
	ctx    context.Context
	url    string
	is     *authtest.Issuer
	db     *mongo.Database
	rdb    redis.UniversalClient
	jobs   *jobstore.Store
	events *events.Stream
	queue  *queue.Queue
	reg    *registry.Registry
	pool   string
	// token has every scope for tenant acme.
	token string
}

const algoName = "echo"

func testConfig() Config {
	return Config{
		RateLimit: ratelimit.Limit{Rate: 10000, Burst: 10000},
		Options:   Options{MaxWait: 10 * time.Second, Heartbeat: 200 * time.Millisecond, PublicURL: "https://api.example.com"},
	}
}

// setup serves a router on a fresh database and the shared Redis Cluster.
func setup(t *testing.T, cfg Config) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	e := &env{ctx: ctx, db: testenv.MongoDB(t), rdb: testenv.Redis(t), is: authtest.NewIssuer(t), pool: testenv.UniqueName(t, 50)}
	var err error
	if e.jobs, err = jobstore.New(ctx, e.db, jobstore.Options{}); err != nil {
		t.Fatal(err)
	}
	e.serve(t, e.db, e.rdb, cfg)
	e.events, e.queue, e.reg = events.New(e.rdb, events.Config{}), queue.New(e.rdb, queue.Config{}), registry.New(e.rdb)
	t.Cleanup(func() {
		_ = e.queue.Purge(context.Background(), e.pool)
		_ = e.reg.RemovePool(context.Background(), e.pool) // registering an algorithm adds it
	})
	e.token = e.is.Token(t, "acme", auth.ScopeJobsRead, auth.ScopeJobsWrite, auth.ScopeAlgorithmsAdmin)
	return e
}

// serve starts a router on db (with e.jobs) and rdb and points e.url at it.
func (e *env) serve(t *testing.T, db *mongo.Database, rdb redis.UniversalClient, cfg Config) {
	t.Helper()
	e.serveReplica(t, db, rdb, cfg, true)
}

// serveReplica is serve; with follow false the replica misses what the
// others announce of quota changes and deletions (as while its
// subscription is down).
func (e *env) serveReplica(t *testing.T, db *mongo.Database, rdb redis.UniversalClient, cfg Config, follow bool) {
	t.Helper()
	v, err := auth.NewVerifier(e.is.VerifierConfig())
	if err != nil {
		t.Fatal(err)
	}
	d, err := Build(db, e.jobs, rdb, v, cfg, testlog.AtLevel(t, slog.LevelWarn))
	if err != nil {
		t.Fatal(err)
	}
	if follow {
		if err := d.Tombstones.(tombstones).Follow(e.ctx, rdb); err != nil {
			t.Logf("not following quota changes (Redis away?): %v", err)
		}
	}
	srv := httptest.NewServer(New(d))
	t.Cleanup(srv.Close)
	e.url = srv.URL
}

// reply is a response with its body read.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// errorCode returns the code and message of an error reply, failing t if the
// body is not the API's error shape.
func (r reply) errorCode(t *testing.T) (string, string) {
	t.Helper()
	var b struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	r.decode(t, &b)
	if b.Error.Code == "" || b.Error.Message == "" {
		t.Fatalf("not an API error: %s", r.body)
	}
	return b.Error.Code, b.Error.Message
}

// do sends a request with token (none when ""), a JSON body when body is not
// "", and header pairs.
func (e *env) do(t *testing.T, method, path, token, body string, header ...string) reply {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(e.ctx, method, e.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := apiClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

// apiClient checks every request and response against the OpenAPI document.
func apiClient(t *testing.T) *http.Client {
	return &http.Client{Transport: apispec.Transport(t, nil)}
}

func (e *env) want(t *testing.T, r reply, status int) reply {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	return r
}

// register registers the echo algorithm on e's pool.
func (e *env) register(t *testing.T) {
	t.Helper()
	e.want(t, e.do(t, "PUT", "/v1/algorithms/"+algoName, e.token, echoDef(e.pool, "1.0.0")), http.StatusCreated)
}

func echoDef(pool, version string) string {
	return `{"version":"` + version + `","description":"echoes its input","pool":"` + pool + `",
		"runtime":{"type":"exec","command":["aigw-echo"]},"timeout_ms":30000,"max_retries":1,
		"input_schema":{"type":"object","required":["message"],"properties":{"message":{"type":"string"}}}}`
}

// jobReply is the part of a job the tests look at.
type jobReply struct {
	ID            string `json:"id"`
	State         string `json:"state"`
	Attempt       int    `json:"attempt"`
	Pool          string `json:"pool"`
	Version       string `json:"version"`
	QueuePosition *int64 `json:"queue_position"`
	Output        json.RawMessage
}

func (e *env) submit(t *testing.T, body string, header ...string) jobReply {
	t.Helper()
	r := e.want(t, e.do(t, "POST", "/v1/algorithms/"+algoName+"/jobs", e.token, body, header...), http.StatusAccepted)
	var j jobReply
	r.decode(t, &j)
	if r.header.Get("Location") != "https://api.example.com/v1/jobs/"+j.ID {
		t.Fatalf("Location %q", r.header.Get("Location"))
	}
	return j
}

// sse reads a server-sent event stream.
type sse struct {
	resp *http.Response
	r    *bufio.Reader
}

type sseEvent struct {
	id, event, data string
	ping            bool
}

func (e *env) openEvents(t *testing.T, jobID, lastID string) *sse {
	t.Helper()
	req, err := http.NewRequestWithContext(e.ctx, "GET", e.url+"/v1/jobs/"+jobID+"/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.token)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := apiClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, err := io.ReadAll(resp.Body)
		t.Fatalf("events: %d %s %s (%v)", resp.StatusCode, resp.Header.Get("Content-Type"), b, err)
	}
	return &sse{resp: resp, r: bufio.NewReader(resp.Body)}
}

// next returns the next event or ping; io.EOF once the server closed the stream.
func (s *sse) next() (sseEvent, error) {
	var ev sseEvent
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return ev, err
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if ev.event != "" || ev.ping {
				return ev, nil
			}
		case line == ": ping":
			ev.ping = true
		case strings.HasPrefix(line, "id: "):
			ev.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			ev.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			ev.data += line[6:]
		}
	}
}

// nextEvent skips pings.
func (s *sse) nextEvent(t *testing.T) sseEvent {
	t.Helper()
	for {
		ev, err := s.next()
		if err != nil {
			t.Fatalf("event stream: %v", err)
		}
		if !ev.ping {
			return ev
		}
	}
}
