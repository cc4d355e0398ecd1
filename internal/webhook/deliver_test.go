package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/egress"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/jobstore"
	"github.com/aigw/aigw/internal/testenv"
	"github.com/aigw/aigw/internal/testlog"
	"github.com/aigw/aigw/internal/testwait"
)

type bundle struct {
	ctx   context.Context
	jobs  *jobstore.Store
	store *Store
}

func setup(t *testing.T) *bundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	db := testenv.MongoDB(t)
	jobs, err := jobstore.New(ctx, db, jobstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := NewStore(db)
	if err := s.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	return &bundle{ctx: ctx, jobs: jobs, store: s}
}

func (b *bundle) deliverer(t *testing.T) *Deliverer {
	return NewDeliverer(b.store, Config{Backoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		Timeout: 2 * time.Second, Log: testlog.New(t), Guard: loopbackAllowed})
}

// loopbackAllowed lets deliveries reach the tests' receivers on 127.0.0.1, as
// an operator allows a network with AIGW_WEBHOOK_ALLOWED_NETS.
var loopbackAllowed = egress.NewGuard([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})

// succeed creates a job with a webhook on url and runs it to succeeded, each
// transition notifying as the job's webhook events say.
func (b *bundle) succeed(t *testing.T, tenant, url string, events ...string) *job.Job {
	t.Helper()
	j, _, err := b.jobs.Create(b.ctx, job.Job{Tenant: tenant, Algorithm: "echo", Pool: "cpu",
		Input: json.RawMessage(`{"x":1}`), Webhook: &job.Webhook{URL: url, Events: events}})
	if err != nil {
		t.Fatal(err)
	}
	for _, to := range []job.State{job.Running, job.Succeeded} {
		if j, err = b.jobs.Transition(b.ctx, j.ID, jobstore.Change{From: j.State, To: to,
			Output: json.RawMessage(`{"y":2}`), Notify: j.Notifies(to)}); err != nil {
			t.Fatal(err)
		}
	}
	return j
}

// receiver records every request it gets; answer decides the status of each
// (n counts requests from 1).
type receiver struct {
	mu       sync.Mutex
	requests []received
	answer   func(n int) int
}

type received struct {
	header http.Header
	body   []byte
	status int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	status := rc.answer(len(rc.requests) + 1)
	rc.requests = append(rc.requests, received{header: r.Header.Clone(), body: body, status: status})
	rc.mu.Unlock()
	w.WriteHeader(status)
}

func (rc *receiver) got() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.requests...)
}

// deliverUntil runs Deliver until no delivery of jobID is pending, or fails t.
func (b *bundle) deliverUntil(t *testing.T, d *Deliverer, tenant, jobID string) []Delivery {
	t.Helper()
	var ds []Delivery
	testwait.Eventually(t, 20*time.Second, func() bool {
		if _, err := d.Deliver(b.ctx); err != nil {
			t.Fatal(err)
		}
		var err error
		if ds, err = b.store.Deliveries(b.ctx, tenant, jobID); err != nil {
			t.Fatal(err)
		}
		for _, dl := range ds {
			if dl.Status == Pending {
				return false
			}
		}
		return true
	}, "deliveries of job %s no longer pending", jobID)
	return ds
}

func TestDeliveryRetriesWhileReceiverIsDown(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// Reserve a port, then leave it closed: the first attempt is refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	j := b.succeed(t, "acme", "http://"+addr+"/hook")
	d := b.deliverer(t)
	if res, err := d.Drain(b.ctx, b.jobs); err != nil || res.Recorded != 1 || res.Acked != 1 {
		t.Fatalf("drain = %+v, %v; want the one terminal notification", res, err)
	}
	if res, err := d.Deliver(b.ctx); err != nil || res.Retrying != 1 {
		t.Fatalf("deliver to a closed port = %+v, %v", res, err)
	}
	// Up, but 503 twice before it accepts.
	rc := &receiver{answer: func(n int) int {
		if n <= 2 {
			return http.StatusServiceUnavailable
		}
		return http.StatusNoContent
	}}
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", addr, err)
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: rc}}
	srv.Start()
	t.Cleanup(srv.Close)

	ds := b.deliverUntil(t, d, "acme", j.ID)
	if len(ds) != 1 {
		t.Fatalf("deliveries = %+v, want one", ds)
	}
	dl := ds[0]
	if dl.Status != Delivered || dl.Attempts != 4 || len(dl.Log) != 4 || dl.DeliveredAt == nil || dl.LastStatusCode != 204 {
		t.Fatalf("delivery = %+v, want delivered on the 4th attempt", dl)
	}
	if dl.Log[0].StatusCode != 0 || !strings.Contains(dl.Log[0].Error, "refused") || dl.Log[1].StatusCode != 503 || dl.Log[3].StatusCode != 204 {
		t.Fatalf("attempts log = %+v", dl.Log)
	}
	wantID := MessageID(j.ID, job.Notification{State: job.Succeeded, At: *j.FinishedAt})
	if dl.ID != wantID || dl.Event != "job.succeeded" || dl.JobID != j.ID {
		t.Fatalf("delivery id %s event %s, want %s job.succeeded", dl.ID, dl.Event, wantID)
	}

	secret, err := b.store.Secret(b.ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	reqs := rc.got()
	if len(reqs) != 3 {
		t.Fatalf("receiver got %d requests, want 3", len(reqs))
	}
	accepted := 0
	for _, r := range reqs {
		if id := r.header.Get(HeaderID); id != wantID {
			t.Errorf("webhook-id %q, want %q on every retry", id, wantID)
		}
		if err := Verify(secret, r.header, r.body, time.Minute); err != nil {
			t.Errorf("signature: %v", err)
		}
		if r.status/100 == 2 {
			accepted++
		}
		if string(r.body) != string(reqs[0].body) {
			t.Errorf("body changed between retries")
		}
	}
	if accepted != 1 {
		t.Fatalf("%d accepted deliveries, want exactly 1", accepted)
	}
	var p struct {
		Type      string    `json:"type"`
		Timestamp time.Time `json:"timestamp"`
		Data      job.Job   `json:"data"`
	}
	if err := json.Unmarshal(reqs[0].body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Type != "job.succeeded" || p.Data.ID != j.ID || p.Data.State != job.Succeeded || string(p.Data.Output) != `{"y":2}` || !p.Timestamp.Equal(*j.FinishedAt) {
		t.Fatalf("payload = %+v", p)
	}
	// Nothing is left to send.
	if res, err := d.Deliver(b.ctx); err != nil || res.Attempted != 0 {
		t.Fatalf("deliver after success = %+v, %v", res, err)
	}
}

// crashingOutbox fails every ack: the orchestrator "crashed" after recording.
type crashingOutbox struct{ Outbox }

var errCrash = errors.New("crashed before the ack")

func (crashingOutbox) AckNotification(context.Context, string, job.Notification) error {
	return errCrash
}

func TestDrainAfterCrashDeliversOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rc := &receiver{answer: func(int) int { return http.StatusOK }}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	j := b.succeed(t, "acme", srv.URL, "running", "succeeded")
	d := b.deliverer(t)
	if _, err := d.Drain(b.ctx, crashingOutbox{b.jobs}); !errors.Is(err, errCrash) {
		t.Fatalf("drain with a crash = %v", err)
	}
	res, err := d.Drain(b.ctx, b.jobs)
	if err != nil {
		t.Fatal(err)
	}
	if res.Duplicates != 1 || res.Recorded != 1 || res.Acked != 2 {
		t.Fatalf("re-drain = %+v, want the crashed one as duplicate and the other recorded", res)
	}
	if res, err := d.Drain(b.ctx, b.jobs); err != nil || res != (DrainResult{}) {
		t.Fatalf("third drain = %+v, %v; want an empty outbox", res, err)
	}
	ds := b.deliverUntil(t, d, "acme", j.ID)
	if len(ds) != 2 || ds[0].Event != "job.running" || ds[1].Event != "job.succeeded" {
		t.Fatalf("deliveries = %+v", ds)
	}
	seen := map[string]int{}
	for _, r := range rc.got() {
		seen[r.header.Get(HeaderID)]++
	}
	if len(seen) != 2 || seen[ds[0].ID] != 1 || seen[ds[1].ID] != 1 {
		t.Fatalf("requests per webhook-id = %v, want one each", seen)
	}
}

func TestGoneStopsDelivery(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rc := &receiver{answer: func(int) int { return http.StatusGone }}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	j := b.succeed(t, "acme", srv.URL)
	d := b.deliverer(t)
	if _, err := d.Drain(b.ctx, b.jobs); err != nil {
		t.Fatal(err)
	}
	ds := b.deliverUntil(t, d, "acme", j.ID)
	if len(ds) != 1 || ds[0].Status != Failed || ds[0].Attempts != 1 || ds[0].LastStatusCode != 410 || ds[0].NextAttemptAt != nil {
		t.Fatalf("delivery = %+v, want failed after one 410", ds)
	}
	time.Sleep(100 * time.Millisecond)
	if res, err := d.Deliver(b.ctx); err != nil || res.Attempted != 0 {
		t.Fatalf("deliver after 410 = %+v, %v", res, err)
	}
	if n := len(rc.got()); n != 1 {
		t.Fatalf("receiver got %d requests, want 1", n)
	}
}

func TestGivesUpAfterMaxAge(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rc := &receiver{answer: func(int) int { return http.StatusInternalServerError }}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	j := b.succeed(t, "acme", srv.URL)
	// The deliverer's clock is a day ahead: the first failure is the last.
	later := func() time.Time { return time.Now().Add(24*time.Hour + time.Minute) }
	d := NewDeliverer(b.store, Config{Now: later, Log: testlog.New(t), Guard: loopbackAllowed})
	if _, err := d.Drain(b.ctx, b.jobs); err != nil {
		t.Fatal(err)
	}
	res, err := d.Deliver(b.ctx)
	if err != nil || res.Failed != 1 {
		t.Fatalf("deliver = %+v, %v; want failed", res, err)
	}
	ds, err := b.store.Deliveries(b.ctx, "acme", j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ds[0].Status != Failed || !strings.Contains(ds[0].LastError, "not delivered within 24h") {
		t.Fatalf("delivery = %+v", ds[0])
	}
}

func TestRacingDeliverersSendEachAttemptOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rc := &receiver{answer: func(int) int { time.Sleep(20 * time.Millisecond); return http.StatusOK }}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	const jobs = 6
	for range jobs {
		b.succeed(t, "acme", srv.URL)
	}
	if _, err := b.deliverer(t).Drain(b.ctx, b.jobs); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := make([]DeliverResult, 3)
	for i := range results {
		d := b.deliverer(t)
		wg.Go(func() {
			res, err := d.Deliver(b.ctx)
			if err != nil {
				t.Error(err)
			}
			results[i] = res
		})
	}
	wg.Wait()
	delivered := 0
	for _, r := range results {
		delivered += r.Delivered
	}
	seen := map[string]int{}
	for _, r := range rc.got() {
		seen[r.header.Get(HeaderID)]++
	}
	if delivered != jobs || len(seen) != jobs {
		t.Fatalf("delivered %d, ids seen %d, want %d (results %+v)", delivered, len(seen), jobs, results)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s sent %d times", id, n)
		}
	}
}

func TestSecretRotationSignsWithBoth(t *testing.T) {
	t.Parallel()
	b := setup(t)
	first, err := b.store.Secret(b.ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	again, err := b.store.Secret(b.ctx, "acme")
	if err != nil || again != first || !strings.HasPrefix(first, SecretPrefix) {
		t.Fatalf("secret %q then %q (%v): want one stable whsec_ secret", first, again, err)
	}
	other, err := b.store.Secret(b.ctx, "globex")
	if err != nil || other == first {
		t.Fatalf("another tenant's secret = %q, %v", other, err)
	}
	rotated, err := b.store.RotateSecret(b.ctx, "acme")
	if err != nil || rotated == first {
		t.Fatalf("rotate = %q, %v", rotated, err)
	}
	if cur, err := b.store.Secret(b.ctx, "acme"); err != nil || cur != rotated {
		t.Fatalf("secret after rotation = %q, %v", cur, err)
	}

	rc := &receiver{answer: func(int) int { return http.StatusOK }}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	j := b.succeed(t, "acme", srv.URL)
	d := b.deliverer(t)
	if _, err := d.Drain(b.ctx, b.jobs); err != nil {
		t.Fatal(err)
	}
	b.deliverUntil(t, d, "acme", j.ID)
	r := rc.got()[0]
	for _, s := range []string{first, rotated} {
		if err := Verify(s, r.header, r.body, time.Minute); err != nil {
			t.Errorf("verify with %s during the overlap: %v", s[:10], err)
		}
	}
	if err := Verify(other, r.header, r.body, time.Minute); !errors.Is(err, ErrNoMatchingSig) {
		t.Errorf("another tenant's secret verified: %v", err)
	}
	if ds, err := b.store.Deliveries(b.ctx, "globex", j.ID); err != nil || len(ds) != 0 {
		t.Fatalf("another tenant sees %d deliveries (%v)", len(ds), err)
	}
}

func TestJobsWithoutWebhookEventsAreNotDelivered(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rc := &receiver{answer: func(int) int { return http.StatusOK }}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	j := b.succeed(t, "acme", srv.URL, "failed")
	d := b.deliverer(t)
	if res, err := d.Drain(b.ctx, b.jobs); err != nil || res.Recorded != 0 {
		t.Fatalf("drain = %+v, %v; the job only asked for failed", res, err)
	}
	if ds, err := b.store.Deliveries(b.ctx, "acme", j.ID); err != nil || len(ds) != 0 {
		t.Fatalf("deliveries = %+v, %v", ds, err)
	}
}

// TestRedeliverSendsAFinishedDeliveryAgain: an operator's or tenant's
// redelivery of a failed delivery sends the same message (same webhook-id and
// body) once more; a pending delivery, another tenant's or another job's is
// refused.
func TestRedeliverSendsAFinishedDeliveryAgain(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rc := &receiver{answer: func(n int) int {
		if n == 1 {
			return http.StatusGone
		}
		return http.StatusNoContent
	}}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	j := b.succeed(t, "acme", srv.URL)
	d := b.deliverer(t)
	if _, err := d.Drain(b.ctx, b.jobs); err != nil {
		t.Fatal(err)
	}
	ds := b.deliverUntil(t, d, "acme", j.ID)
	if len(ds) != 1 || ds[0].Status != Failed {
		t.Fatalf("deliveries = %+v, want one failed", ds)
	}
	id := ds[0].ID
	for name, args := range map[string][2]string{"another tenant": {"globex", j.ID}, "another job": {"acme", "01M0000000000000000000000X"}} {
		if _, err := b.store.Redeliver(b.ctx, args[0], args[1], id); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", name, err)
		}
	}
	got, err := b.store.Redeliver(b.ctx, "acme", j.ID, id)
	if err != nil || got.Status != Pending || got.RedeliveredAt == nil {
		t.Fatalf("redeliver = %+v, %v", got, err)
	}
	if _, err := b.store.Redeliver(b.ctx, "acme", j.ID, id); !errors.Is(err, ErrPending) {
		t.Fatalf("second redeliver while pending: %v, want ErrPending", err)
	}
	ds = b.deliverUntil(t, d, "acme", j.ID)
	if ds[0].Status != Delivered || ds[0].Attempts != 2 {
		t.Fatalf("after redelivery = %+v", ds[0])
	}
	reqs := rc.got()
	if len(reqs) != 2 || reqs[0].header.Get(HeaderID) != reqs[1].header.Get(HeaderID) || string(reqs[0].body) != string(reqs[1].body) {
		t.Fatalf("receiver got %d requests; want the same message twice", len(reqs))
	}
}
