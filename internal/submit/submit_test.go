package submit

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/events"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/jobstore"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/internal/testenv"
	"github.com/aigw/aigw/internal/testlog"
)

type bundle struct {
	ctx    context.Context
	svc    *Service
	jobs   *jobstore.Store
	algos  *algorithm.Store
	queue  *queue.Queue
	events *events.Stream
	algo   string
	pool   string
}

const echoSchema = `{"type":"object","required":["message"],"properties":{"message":{"type":"string"},"n":{"type":"object","properties":{"a":{"type":"integer","minimum":3}}}}}`

func setup(t *testing.T) *bundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	db := testenv.MongoDB(t)
	rdb := testenv.Redis(t)
	jobs, err := jobstore.New(ctx, db, jobstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := &bundle{
		ctx: ctx, jobs: jobs, algos: algorithm.NewStore(db),
		queue: queue.New(rdb, queue.Config{}), events: events.New(rdb, events.Config{}),
		algo: "echo", pool: testenv.UniqueName(t, 50),
	}
	t.Cleanup(func() { _ = b.queue.Purge(context.Background(), b.pool) })
	b.svc = New(Config{Jobs: b.jobs, Algorithms: b.algos, Queue: b.queue, Events: b.events,
		Log: testlog.AtLevel(t, slog.LevelInfo)})
	retries := 1
	b.put(t, algorithm.Definition{Name: b.algo, Version: "1.0.0", Pool: b.pool,
		Runtime:   algorithm.Runtime{Type: algorithm.Exec, Command: []string{"aigw-echo"}},
		TimeoutMS: 30000, MaxRetries: &retries, InputSchema: json.RawMessage(echoSchema)})
	return b
}

func (b *bundle) put(t *testing.T, d algorithm.Definition) {
	t.Helper()
	if _, _, err := b.algos.Put(b.ctx, d); err != nil {
		t.Fatal(err)
	}
}

func (b *bundle) submit(t *testing.T, req Request) *job.Job {
	t.Helper()
	if req.Tenant == "" {
		req.Tenant = "acme"
	}
	if req.Algorithm == "" {
		req.Algorithm = b.algo
	}
	if req.Input == nil {
		req.Input = json.RawMessage(`{"message":"hi"}`)
	}
	j, created, err := b.svc.Submit(b.ctx, req)
	if err != nil || !created {
		t.Fatalf("submit: %v (created %v)", err, created)
	}
	return j
}

func (b *bundle) states(t *testing.T, id string) []job.State {
	t.Helper()
	evs, err := b.events.Read(b.ctx, id, "", 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []job.State
	for _, e := range evs {
		var s events.State
		if e.Type != events.TypeState || json.Unmarshal(e.Data, &s) != nil {
			t.Fatalf("unexpected event %+v", e)
		}
		out = append(out, s.State)
	}
	return out
}

func (b *bundle) queued(t *testing.T, id string) bool {
	t.Helper()
	ok, err := b.queue.Contains(b.ctx, b.pool, id)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestSubmitRecordsPublishesAndEnqueues(t *testing.T) {
	t.Parallel()
	b := setup(t)
	before := time.Now()
	j := b.submit(t, Request{Input: json.RawMessage(`{"message": "hi", "n": {"a": 12345678901234567}}`)})
	if j.State != job.Queued || j.Pool != b.pool || j.Version != "1.0.0" || j.MaxRetries != 1 ||
		j.ExecutionTimeoutMS != 30000 || j.Priority != job.Normal || j.GangSize != 0 {
		t.Fatalf("submitted %+v", j)
	}
	if j.ExpiresAt == nil || j.ExpiresAt.Before(before.Add(DefaultTTL-time.Second)) || j.ExpiresAt.After(time.Now().Add(DefaultTTL)) {
		t.Fatalf("expires_at %v, want now+%s", j.ExpiresAt, DefaultTTL)
	}
	got, err := b.jobs.Get(b.ctx, "acme", j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Input) != `{"message": "hi", "n": {"a": 12345678901234567}}` {
		t.Fatalf("input not kept byte for byte: %s", got.Input)
	}
	if s := b.states(t, j.ID); len(s) != 1 || s[0] != job.Queued {
		t.Fatalf("events %v, want [queued]", s)
	}
	if !b.queued(t, j.ID) {
		t.Fatal("job not in its pool's queue")
	}
}

func TestSubmitPolicyOverridesTheDefinition(t *testing.T) {
	t.Parallel()
	b := setup(t)
	zero := 0
	j := b.submit(t, Request{
		Webhook: "https://hooks.example.com/aigw", WebhookEvents: []string{"succeeded", "failed"},
		Policy: Policy{Priority: "high", TTL: "10m", ExecutionTimeout: "90s", MaxRetries: &zero, Gang: &Gang{Size: 4}},
	})
	if j.Priority != job.High || j.ExecutionTimeoutMS != 90000 || j.MaxRetries != 0 || j.GangSize != 4 ||
		j.Webhook == nil || j.Webhook.URL != "https://hooks.example.com/aigw" || len(j.Webhook.Events) != 2 {
		t.Fatalf("submitted %+v", j)
	}
	if d := j.ExpiresAt.Sub(j.CreatedAt); d < 10*time.Minute-time.Second || d > 10*time.Minute+time.Second {
		t.Fatalf("ttl %s, want 10m", d)
	}
}

func TestSubmitPicksTheVersion(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.put(t, algorithm.Definition{Name: b.algo, Version: "1.10.0", Pool: b.pool,
		Runtime: algorithm.Runtime{Type: algorithm.Exec, Command: []string{"aigw-echo"}}})
	if j := b.submit(t, Request{Input: json.RawMessage(`42`)}); j.Version != "1.10.0" {
		t.Fatalf("latest version: got %s, want 1.10.0", j.Version)
	}
	if j := b.submit(t, Request{Version: "1.0.0"}); j.Version != "1.0.0" {
		t.Fatalf("pinned version: got %s", j.Version)
	}
	_, _, err := b.svc.Submit(b.ctx, Request{Tenant: "acme", Algorithm: b.algo, Version: "9.9.9", Input: json.RawMessage(`{}`)})
	if !errors.Is(err, ErrUnknownAlgorithm) || !errors.Is(err, algorithm.ErrNotFound) {
		t.Fatalf("unknown version: %v", err)
	}
}

func TestSubmitRefusesBadRequests(t *testing.T) {
	t.Parallel()
	b := setup(t)
	neg, many := -1, 99
	ok := json.RawMessage(`{"message":"hi"}`)
	cases := []struct {
		name string
		req  Request
		want error
	}{
		{"unknown algorithm", Request{Algorithm: "nope", Input: ok}, ErrUnknownAlgorithm},
		{"bad algorithm name", Request{Algorithm: "No!", Input: ok}, ErrUnknownAlgorithm},
		{"priority", Request{Input: ok, Policy: Policy{Priority: "urgent"}}, ErrInvalid},
		{"ttl", Request{Input: ok, Policy: Policy{TTL: "forever"}}, ErrInvalid},
		{"ttl too long", Request{Input: ok, Policy: Policy{TTL: "8760h"}}, ErrInvalid},
		{"timeout", Request{Input: ok, Policy: Policy{ExecutionTimeout: "-1s"}}, ErrInvalid},
		{"retries negative", Request{Input: ok, Policy: Policy{MaxRetries: &neg}}, ErrInvalid},
		{"retries too many", Request{Input: ok, Policy: Policy{MaxRetries: &many}}, ErrInvalid},
		{"gang", Request{Input: ok, Policy: Policy{Gang: &Gang{Size: 0}}}, ErrInvalid},
		{"webhook scheme", Request{Input: ok, Webhook: "ftp://example.com/x"}, ErrInvalid},
		{"webhook relative", Request{Input: ok, Webhook: "/hook"}, ErrInvalid},
		{"webhook events alone", Request{Input: ok, WebhookEvents: []string{"failed"}}, ErrInvalid},
		{"webhook event name", Request{Input: ok, Webhook: "http://h/x", WebhookEvents: []string{"done"}}, ErrInvalid},
		{"idempotency key", Request{Input: ok, IdempotencyKey: string(make([]byte, 256))}, ErrInvalid},
	}
	for _, c := range cases {
		c.req.Tenant = "acme"
		if c.req.Algorithm == "" {
			c.req.Algorithm = b.algo
		}
		if _, _, err := b.svc.Submit(b.ctx, c.req); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
	page, err := b.jobs.List(b.ctx, jobstore.Filter{Tenant: "acme"})
	if err != nil || len(page.Jobs) != 0 {
		t.Fatalf("refused submits left jobs: %v %v", page.Jobs, err)
	}
}

func TestSubmitNamesTheFailingInputPath(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cases := map[string]struct{ path, msg string }{
		`{"message": 3}`:                  {"/message", "got number, want string"},
		`{}`:                              {"", "missing property 'message'"},
		`{"message":"x","n":{"a":1}}`:     {"/n/a", "minimum: got 1, want 3"},
		`{"message":"x","n":{"a":"one"}}`: {"/n/a", "got string, want integer"},
		`[1, 2`:                           {"", ""},
	}
	for in, want := range cases {
		_, _, err := b.svc.Submit(b.ctx, Request{Tenant: "acme", Algorithm: b.algo, Input: json.RawMessage(in)})
		var ie *InputError
		if !errors.As(err, &ie) {
			t.Errorf("%s: got %v, want an *InputError", in, err)
			continue
		}
		if ie.Path != want.path || (want.msg != "" && ie.Message != want.msg) {
			t.Errorf("%s: got path %q message %q, want %q %q", in, ie.Path, ie.Message, want.path, want.msg)
		}
	}
	if _, _, err := b.svc.Submit(b.ctx, Request{Tenant: "acme", Algorithm: b.algo}); !errors.As(err, new(*InputError)) {
		t.Fatalf("missing input: %v", err)
	}
}

func TestConcurrentIdempotentSubmitsMakeOneJob(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const n = 20
	var created atomic.Int32
	ids := make(chan string, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			j, c, err := b.svc.Submit(b.ctx, Request{Tenant: "acme", Algorithm: b.algo,
				Input: json.RawMessage(`{"message":"once"}`), IdempotencyKey: "order-42"})
			if err != nil {
				t.Error(err)
				return
			}
			if c {
				created.Add(1)
			}
			ids <- j.ID
		})
	}
	wg.Wait()
	close(ids)
	var first string
	for id := range ids {
		if first == "" {
			first = id
		}
		if id != first {
			t.Fatalf("two jobs for one key: %s and %s", first, id)
		}
	}
	if created.Load() != 1 {
		t.Fatalf("created %d times, want 1", created.Load())
	}
	if s := b.states(t, first); len(s) != 1 {
		t.Fatalf("events %v, want one queued event", s)
	}
	if !b.queued(t, first) {
		t.Fatal("job not queued")
	}
	// Another tenant's key is its own.
	other := b.submit(t, Request{Tenant: "globex", IdempotencyKey: "order-42"})
	if other.ID == first {
		t.Fatal("tenants share an idempotency key")
	}
}

func TestIdempotentSubmitReenqueuesAQueuedJob(t *testing.T) {
	t.Parallel()
	b := setup(t)
	j := b.submit(t, Request{IdempotencyKey: "k"})
	if err := b.queue.Purge(b.ctx, b.pool); err != nil { // as if lost in a failover
		t.Fatal(err)
	}
	again, created, err := b.svc.Submit(b.ctx, Request{Tenant: "acme", Algorithm: b.algo, Input: json.RawMessage(`{"message":"hi"}`), IdempotencyKey: "k"})
	if err != nil || created || again.ID != j.ID {
		t.Fatalf("repeat: %v created=%v id=%s", err, created, again.ID)
	}
	if !b.queued(t, j.ID) {
		t.Fatal("repeat submit did not enqueue the queued job again")
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	b := setup(t)

	queued := b.submit(t, Request{Webhook: "http://hooks.example.com/x", WebhookEvents: []string{"canceled"}})
	got, err := b.svc.Cancel(b.ctx, "acme", queued.ID)
	if err != nil || got.State != job.Canceled || got.FinishedAt == nil {
		t.Fatalf("cancel queued: %v %+v", err, got)
	}
	if len(got.Outbox) != 1 || got.Outbox[0].State != job.Canceled {
		t.Fatalf("cancel did not notify the webhook: outbox %+v", got.Outbox)
	}
	if s := b.states(t, queued.ID); len(s) != 2 || s[1] != job.Canceled {
		t.Fatalf("events %v, want [queued canceled]", s)
	}
	if req, err := b.events.CancelRequested(b.ctx, queued.ID); err != nil || !req[queued.ID] {
		t.Fatalf("no cancel request for a worker that took it: %v %v", req, err)
	}

	running := b.submit(t, Request{})
	if _, err := b.jobs.Transition(b.ctx, running.ID, jobstore.Change{From: job.Queued, To: job.Running, Worker: "w1"}); err != nil {
		t.Fatal(err)
	}
	got, err = b.svc.Cancel(b.ctx, "acme", running.ID)
	if err != nil || got.State != job.Running {
		t.Fatalf("cancel running: %v %+v", err, got)
	}
	if req, err := b.events.CancelRequested(b.ctx, running.ID); err != nil || !req[running.ID] {
		t.Fatalf("running job: no cancel request: %v %v", req, err)
	}

	_, err = b.svc.Cancel(b.ctx, "acme", queued.ID)
	var conflict *jobstore.ConflictError
	if !errors.As(err, &conflict) || conflict.Actual != job.Canceled {
		t.Fatalf("cancel canceled: %v, want a conflict", err)
	}
	if _, err := b.svc.Cancel(b.ctx, "globex", running.ID); !errors.Is(err, jobstore.ErrNotFound) {
		t.Fatalf("another tenant's cancel: %v", err)
	}
}

func TestRetry(t *testing.T) {
	t.Parallel()
	b := setup(t)
	j := b.submit(t, Request{})
	if _, err := b.svc.Retry(b.ctx, "acme", j.ID); !errors.Is(err, jobstore.ErrConflict) {
		t.Fatalf("retry queued: %v, want a conflict", err)
	}
	if _, err := b.jobs.Transition(b.ctx, j.ID, jobstore.Change{From: job.Queued, To: job.Running}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.jobs.Transition(b.ctx, j.ID, jobstore.Change{From: job.Running, To: job.Failed,
		Error: &job.Error{Code: "runtime_error", Message: "exit 1"}}); err != nil {
		t.Fatal(err)
	}
	if err := b.queue.Purge(b.ctx, b.pool); err != nil { // as a worker's ack would
		t.Fatal(err)
	}
	got, err := b.svc.Retry(b.ctx, "acme", j.ID)
	if err != nil || got.State != job.Queued || got.Attempt != 2 {
		t.Fatalf("retry failed: %v %+v", err, got)
	}
	if !b.queued(t, j.ID) {
		t.Fatal("retried job not enqueued")
	}
	if s := b.states(t, j.ID); len(s) != 2 || s[1] != job.Queued {
		t.Fatalf("events %v, want [queued queued]", s)
	}
	if _, err := b.svc.Retry(b.ctx, "globex", j.ID); !errors.Is(err, jobstore.ErrNotFound) {
		t.Fatalf("another tenant's retry: %v", err)
	}
}
