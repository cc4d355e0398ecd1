package orchestrator

import (
	"bytes"
	"context"
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
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/apispec"
	"github.com/aigw/aigw/internal/auth"
	"github.com/aigw/aigw/internal/auth/authtest"
	"github.com/aigw/aigw/internal/egress"
	"github.com/aigw/aigw/internal/events"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/jobstore"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/internal/registry"
	"github.com/aigw/aigw/internal/testenv"
	"github.com/aigw/aigw/internal/testlog"
	"github.com/aigw/aigw/internal/webhook"
)

const adminToken = "test-admin-token"

type bundle struct {
	ctx    context.Context
	db     *mongo.Database
	rdb    redis.UniversalClient
	jobs   *jobstore.Store
	queue  *queue.Queue
	svc    *Service
	srv    *httptest.Server
	issuer *authtest.Issuer
	pool   string
	log    *slog.Logger
}

func setup(t *testing.T) *bundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	b := &bundle{ctx: ctx, db: testenv.MongoDB(t), rdb: testenv.Redis(t), issuer: authtest.NewIssuer(t),
		pool: testenv.UniqueName(t, 50), log: testlog.AtLevel(t, slog.LevelInfo)}
	b.queue = queue.New(b.rdb, queue.Config{})
	t.Cleanup(func() { _ = b.queue.Purge(context.Background(), b.pool) })
	v, err := auth.NewVerifier(b.issuer.VerifierConfig())
	if err != nil {
		t.Fatal(err)
	}
	lockKey := "aigw:{" + b.pool + "}:tick"
	t.Cleanup(func() { _ = b.rdb.Del(context.Background(), lockKey).Err() })
	// New creates the job store and its indexes; the test shares it (a second
	// createIndexes of the same indexes crashes devmongo's FerretDB).
	b.svc, err = New(ctx, Deps{DB: b.db, Redis: b.rdb, Verifier: v, AdminToken: adminToken,
		Webhook: webhook.Config{Backoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, Timeout: 2 * time.Second,
			// The tests' receivers listen on 127.0.0.1, as an operator allows with AIGW_WEBHOOK_ALLOWED_NETS.
			Guard: egress.NewGuard([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})},
		ReconcileAge: 0, LockKey: lockKey, Log: b.log})
	if err != nil {
		t.Fatal(err)
	}
	b.jobs = b.svc.ticker.jobs
	b.srv = httptest.NewServer(b.svc.Handler())
	t.Cleanup(b.srv.Close)
	algos := algorithm.NewStore(b.db)
	for _, name := range []string{"echo", "kmeans"} {
		if _, _, err := algos.Put(ctx, algorithm.Definition{Name: name, Version: "1.0.0", Pool: b.pool,
			Runtime: algorithm.Runtime{Type: algorithm.Exec, Command: []string{"aigw-" + name}}}); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// call makes a request; token "" sends none. It returns the status and the
// decoded JSON body (into out, when not nil).
func (b *bundle) call(t *testing.T, method, path, token, body string, out any) int {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(b.ctx, method, b.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	// Every exchange is checked against the OpenAPI document.
	resp, err := (&http.Client{Transport: apispec.Transport(t, nil)}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode
}

func (b *bundle) tick(t *testing.T) Summary {
	t.Helper()
	var s Summary
	if code := b.call(t, http.MethodPost, "/tick", adminToken, "", &s); code != http.StatusOK || s.Errors != nil || s.Skipped {
		t.Fatalf("tick = %d %+v", code, s)
	}
	return s
}

func (b *bundle) createJob(t *testing.T, j job.Job) *job.Job {
	t.Helper()
	if j.Tenant == "" {
		j.Tenant = "acme"
	}
	j.Algorithm, j.Pool = "echo", b.pool
	if j.Input == nil {
		j.Input = json.RawMessage(`{}`)
	}
	out, _, err := b.jobs.Create(b.ctx, j)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (b *bundle) reaper(now time.Time) *Reaper {
	return b.svc.ticker.reaper.withNow(now)
}

func (r *Reaper) withNow(now time.Time) *Reaper {
	c := *r
	c.Now = func() time.Time { return now }
	return &c
}

func TestTickNeedsAdminTokenAndTakesTheLock(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	for _, tok := range []string{"", "wrong", b.issuer.Token(t, "acme", auth.ScopeJobsWrite)} {
		if code := b.call(t, http.MethodPost, "/tick", tok, "", &e); code != http.StatusUnauthorized || e.Error.Code != "unauthorized" {
			t.Errorf("tick with token %.10q = %d %s", tok, code, e.Error.Code)
		}
	}
	s := b.tick(t)
	if s.Skipped || s.DurationMS < 0 {
		t.Fatalf("summary = %+v", s)
	}
	// Another replica holds the lease: this tick is skipped, not run twice.
	held, ok, err := b.svc.ticker.lease.acquire(b.ctx)
	if err != nil || !ok {
		t.Fatalf("acquire the lease: %v %v", ok, err)
	}
	var skipped Summary
	if code := b.call(t, http.MethodPost, "/tick", adminToken, "", &skipped); code != http.StatusOK || !skipped.Skipped {
		t.Fatalf("tick under a held lock = %d %+v", code, skipped)
	}
	if err := held.release(b.ctx); err != nil {
		t.Fatal(err)
	}
	b.tick(t)

	var wg sync.WaitGroup
	results := make([]Summary, 4)
	for i := range results {
		wg.Go(func() {
			r, err := b.svc.Tick(b.ctx)
			if err != nil {
				t.Error(err)
			}
			results[i] = r
		})
	}
	wg.Wait()
	ran := 0
	for _, r := range results {
		if !r.Skipped {
			ran++
		}
	}
	if ran < 1 {
		t.Fatalf("of 4 concurrent ticks %d ran", ran)
	}
}

func TestReaperExpiresOnceWithRacingReapers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	past := time.Now().Add(-time.Minute)
	j := b.createJob(t, job.Job{ExpiresAt: &past, Webhook: &job.Webhook{URL: "http://127.0.0.1:1/hook"}})
	fresh := time.Now().Add(time.Hour)
	keep := b.createJob(t, job.Job{ExpiresAt: &fresh})
	now := time.Now()
	var wg sync.WaitGroup
	results := make([]ReapResult, 4)
	for i := range results {
		r := b.reaper(now)
		wg.Go(func() {
			res, err := r.Reap(b.ctx)
			if err != nil {
				t.Error(err)
			}
			results[i] = res
		})
	}
	wg.Wait()
	expired := 0
	for _, r := range results {
		expired += r.Expired
	}
	if expired != 1 {
		t.Fatalf("expired %d times across racing reapers (%+v), want exactly once", expired, results)
	}
	got, err := b.jobs.GetByID(b.ctx, j.ID)
	if err != nil || got.State != job.Expired || got.Error == nil || got.Error.Code != "expired" {
		t.Fatalf("job = %+v, %v", got, err)
	}
	if len(got.Outbox) != 1 || got.Outbox[0].State != job.Expired {
		t.Fatalf("outbox = %+v, want the expired notification", got.Outbox)
	}
	evs, err := events.New(b.rdb, events.Config{}).Read(b.ctx, j.ID, "", 10, -1)
	if err != nil || len(evs) != 1 || evs[0].Type != events.TypeState || !bytes.Contains(evs[0].Data, []byte(`"expired"`)) {
		t.Fatalf("events = %+v, %v; want one expired state event", evs, err)
	}
	if k, err := b.jobs.GetByID(b.ctx, keep.ID); err != nil || k.State != job.Queued {
		t.Fatalf("unexpired job = %v, %v", k.State, err)
	}
}

func TestReaperFailsLostRunningJobs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	start := func(timeoutMS int64) *job.Job {
		j := b.createJob(t, job.Job{ExecutionTimeoutMS: timeoutMS})
		j, err := b.jobs.Transition(b.ctx, j.ID, jobstore.Change{From: job.Queued, To: job.Running, Worker: "node-1"})
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	lost := start(1000)
	held := start(1000)
	young := start(0) // the algorithm's timeout: 10 min default
	if err := registry.New(b.rdb).Heartbeat(b.ctx, registry.Worker{Node: "node-1", Pool: b.pool, Slots: 2,
		Running: []string{held.ID}}, time.Minute); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.rdb.Del(context.Background(), registry.WorkersKey(b.pool)).Err() })
	// 1s timeout + 30s grace have passed; 10 min have not.
	r := b.reaper(time.Now().Add(time.Minute))
	r.Grace = 30 * time.Second
	res, err := r.Reap(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Lost != 1 {
		t.Fatalf("reap = %+v, want one lost job", res)
	}
	for id, want := range map[string]job.State{lost.ID: job.Failed, held.ID: job.Running, young.ID: job.Running} {
		got, err := b.jobs.GetByID(b.ctx, id)
		if err != nil || got.State != want {
			t.Errorf("job %s = %v (%v), want %s", id, got.State, err, want)
		}
		if id == lost.ID && (got.Error == nil || got.Error.Code != "lost") {
			t.Errorf("lost job error = %+v", got.Error)
		}
	}
	// A second pass finds nothing more; the reaped job is not reaped twice.
	if res, err := r.Reap(b.ctx); err != nil || res.Lost != 0 {
		t.Fatalf("second reap = %+v, %v", res, err)
	}
}

func TestReconcilerEnqueuesMissingJobs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	j := b.createJob(t, job.Job{}) // in MongoDB only, as after a lost enqueue
	if in, err := b.queue.Contains(b.ctx, b.pool, j.ID); err != nil || in {
		t.Fatalf("before: contains = %v, %v", in, err)
	}
	s := b.tick(t)
	if s.Reconciler.Enqueued < 1 {
		t.Fatalf("reconciler = %+v", s.Reconciler)
	}
	if in, err := b.queue.Contains(b.ctx, b.pool, j.ID); err != nil || !in {
		t.Fatalf("after a tick: contains = %v, %v", in, err)
	}
	// Already there: left alone.
	if res, err := b.svc.ticker.reconciler.Reconcile(b.ctx); err != nil || res.Enqueued != 0 || res.Checked < 1 {
		t.Fatalf("second pass = %+v, %v", res, err)
	}
	// Lost again (a failover): back after the next tick.
	if err := b.queue.Purge(b.ctx, b.pool); err != nil {
		t.Fatal(err)
	}
	b.tick(t)
	if in, err := b.queue.Contains(b.ctx, b.pool, j.ID); err != nil || !in {
		t.Fatalf("after purge and tick: contains = %v, %v", in, err)
	}
}

func TestWebhookDeliveredOnTickAndSignedWithTenantSecret(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var mu sync.Mutex
	var got []*http.Request
	var bodies [][]byte
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		mu.Lock()
		got, bodies = append(got, r), append(bodies, body)
		n := len(got)
		mu.Unlock()
		if n == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(rcv.Close)
	past := time.Now().Add(-time.Second)
	j := b.createJob(t, job.Job{ExpiresAt: &past, Webhook: &job.Webhook{URL: rcv.URL}})
	s := b.tick(t) // expires it, drains, first attempt: 503
	if s.Reaper.Expired != 1 || s.Drain.Recorded != 1 || s.Deliver.Retrying != 1 {
		t.Fatalf("first tick = %+v", s)
	}
	time.Sleep(50 * time.Millisecond)
	if s = b.tick(t); s.Deliver.Delivered != 1 {
		t.Fatalf("second tick = %+v", s)
	}
	var sec struct{ Tenant, Secret string }
	if code := b.call(t, http.MethodGet, "/admin/tenants/acme/webhook-secret", adminToken, "", &sec); code != 200 || sec.Tenant != "acme" {
		t.Fatalf("get secret = %d %+v", code, sec)
	}
	if code := b.call(t, http.MethodGet, "/admin/tenants/acme/webhook-secret", "", "", nil); code != http.StatusUnauthorized {
		t.Fatalf("secret without the admin token = %d", code)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0].Header.Get(webhook.HeaderID) != got[1].Header.Get(webhook.HeaderID) {
		t.Fatalf("receiver got %d requests", len(got))
	}
	for i, r := range got {
		if err := webhook.Verify(sec.Secret, r.Header, bodies[i], time.Minute); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if !bytes.Contains(bodies[1], []byte(`"type":"job.expired"`)) || !bytes.Contains(bodies[1], []byte(j.ID)) {
		t.Fatalf("payload = %s", bodies[1])
	}
	var rotated struct{ Secret string }
	if code := b.call(t, http.MethodPost, "/admin/tenants/acme/webhook-secret", adminToken, "", &rotated); code != 200 || rotated.Secret == sec.Secret {
		t.Fatalf("rotate = %d %+v", code, rotated)
	}
	ds, err := webhook.NewStore(b.db).Deliveries(b.ctx, "acme", j.ID)
	if err != nil || len(ds) != 1 || ds[0].Status != webhook.Delivered || ds[0].Attempts != 2 {
		t.Fatalf("delivery log = %+v, %v", ds, err)
	}
}
