package executors

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/apispec"
	"github.com/aigw/aigw/internal/events"
	"github.com/aigw/aigw/internal/executorapi"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/jobstore"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/internal/quota"
	"github.com/aigw/aigw/internal/registry"
	"github.com/aigw/aigw/internal/submit"
	"github.com/aigw/aigw/internal/testenv"
	"github.com/aigw/aigw/internal/testlog"
	"github.com/aigw/aigw/internal/testwait"
)

const adminToken = "test-admin-token"

type bundle struct {
	ctx    context.Context
	jobs   *jobstore.Store
	events *events.Stream
	reg    *registry.Registry
	sub    *submit.Service
	svc    *Service
	url    string
	admin  *executorapi.Client
	pool   string // algorithm "echo-<pool>" runs here
	other  string // algorithm "echo-<other>" runs here
	lease  time.Duration
	hc     *http.Client
	quotas *quota.Store
}

// client is a client of the API with token whose exchanges are checked
// against the OpenAPI document.
func (b *bundle) client(token string) *executorapi.Client {
	return executorapi.NewClient(b.url, token, b.hc)
}

func setup(t *testing.T) *bundle { return setupWith(t, Deps{}) }

// setupWith is setup with d's MaxBlocking.
func setupWith(t *testing.T, d Deps) *bundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	db, rdb := testenv.MongoDB(t), testenv.Redis(t)
	log := testlog.AtLevel(t, slog.LevelInfo)
	jobs, err := jobstore.New(ctx, db, jobstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	name := testenv.UniqueName(t, 40)
	b := &bundle{ctx: ctx, jobs: jobs, events: events.New(rdb, events.Config{}), reg: registry.New(rdb),
		pool: name + "-a", other: name + "-b", lease: 1500 * time.Millisecond}
	q := queue.New(rdb, queue.Config{})
	t.Cleanup(func() {
		_ = q.Purge(context.Background(), b.pool)
		_ = q.Purge(context.Background(), b.other)
	})
	algos := algorithm.NewStore(db)
	retries := 2
	for _, p := range []string{b.pool, b.other} {
		if _, _, err := algos.Put(ctx, algorithm.Definition{Name: b.algo(p), Version: "1.0.0", Pool: p,
			Runtime:   algorithm.Runtime{Type: algorithm.Exec, Command: []string{"aigw-echo"}},
			TimeoutMS: 30000, MaxRetries: &retries}); err != nil {
			t.Fatal(err)
		}
	}
	b.sub = submit.New(submit.Config{Jobs: jobs, Algorithms: algos, Queue: q, Events: b.events, Log: log})
	b.svc, err = New(ctx, Deps{DB: db, Redis: rdb, Jobs: jobs, AdminToken: adminToken, Lease: b.lease,
		Poll: 3 * time.Second, OutputLimit: 1024, MaxBlocking: d.MaxBlocking, QuotaCacheTTL: d.QuotaCacheTTL, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	b.quotas, err = quota.NewStore(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); b.svc.Run(runCtx) }()
	// Served as the gateway serves it, under /function/executors: every
	// exchange of the tests is checked against the OpenAPI document.
	mux := http.NewServeMux()
	mux.Handle(apispec.FunctionPrefix("executors")+"/", http.StripPrefix(apispec.FunctionPrefix("executors"), b.svc.Handler()))
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { srv.Close(); stop(); <-done })
	b.url = srv.URL + apispec.FunctionPrefix("executors")
	b.hc = &http.Client{Transport: apispec.Transport(t, nil)}
	b.admin = b.client(adminToken)
	return b
}

// algo is the algorithm of pool.
func (b *bundle) algo(pool string) string { return "echo-" + pool[len(pool)-1:] }

// executor creates a credential for pool and registers it.
func (b *bundle) executor(t *testing.T, pool, name string) (*executorapi.Client, executorapi.Created) {
	t.Helper()
	cr, err := b.admin.Create(b.ctx, pool, name)
	if err != nil {
		t.Fatal(err)
	}
	c := b.client(cr.Token)
	if _, err := c.Register(b.ctx, executorapi.Register{Version: "test", Slots: 2}); err != nil {
		t.Fatal(err)
	}
	return c, cr
}

func (b *bundle) submit(t *testing.T, pool, input string, p submit.Policy) *job.Job {
	t.Helper()
	j, _, err := b.sub.Submit(b.ctx, submit.Request{Tenant: "acme", Algorithm: b.algo(pool), Input: json.RawMessage(input), Policy: p})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func (b *bundle) claim(t *testing.T, c *executorapi.Client, pool string) executorapi.Job {
	t.Helper()
	js, err := c.Claim(b.ctx, executorapi.ClaimRequest{Pool: pool, Max: 1, WaitMS: 3000})
	if err != nil {
		t.Fatal(err)
	}
	if len(js) != 1 {
		t.Fatalf("claimed %d jobs, want 1", len(js))
	}
	return js[0]
}

func (b *bundle) record(t *testing.T, id string) *job.Job {
	t.Helper()
	j, err := b.jobs.GetByID(b.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func wantStatus(t *testing.T, err error, status int) {
	t.Helper()
	if got := executorapi.StatusOf(err); got != status {
		t.Fatalf("got %v (status %d), want %d", err, got, status)
	}
}

func TestAdminCreatesAndRevokesCredentials(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, err := b.client("wrong").Create(b.ctx, b.pool, "laptop-1")
	wantStatus(t, err, http.StatusUnauthorized)
	_, err = b.admin.Create(b.ctx, "Bad Pool", "laptop-1")
	wantStatus(t, err, http.StatusUnprocessableEntity)

	c, cr := b.executor(t, b.pool, "laptop-1")
	if cr.ID == "" || !strings.HasPrefix(cr.Token, "aigwx_"+cr.ID+"_") || cr.Pool != b.pool {
		t.Fatalf("created %+v", cr)
	}
	// Only the token's hash is stored.
	stored, err := b.svc.creds.Get(b.ctx, cr.ID)
	if err != nil || stored.TokenHash == "" || strings.Contains(stored.TokenHash, cr.Token) || stored.TokenHash != hashToken(cr.Token) {
		t.Fatalf("stored %+v, %v", stored, err)
	}
	// A token of another id, or a forged secret, is refused.
	_, err = b.client(cr.Token+"x").Register(b.ctx, executorapi.Register{})
	wantStatus(t, err, http.StatusUnauthorized)

	ws, err := b.reg.Workers(b.ctx, b.pool)
	if err != nil || len(ws) != 1 || ws[0].Kind != registry.KindExecutor || ws[0].Node != "laptop-1."+cr.ID || ws[0].Addr == "" {
		t.Fatalf("registry %+v, %v", ws, err)
	}

	if err := b.admin.Revoke(b.ctx, cr.ID); err != nil {
		t.Fatal(err)
	}
	_, err = c.Heartbeat(b.ctx, executorapi.Heartbeat{})
	wantStatus(t, err, http.StatusUnauthorized)
	wantStatus(t, b.admin.Revoke(b.ctx, "nope"), http.StatusNotFound)
	if ws, _ := b.reg.Workers(b.ctx, b.pool); len(ws) != 0 {
		t.Fatalf("a revoked executor stays in the registry: %+v", ws)
	}
}

// TestClaimRunAndFinish: an executor claims a job of its pool (its input
// comes with it), streams progress and log lines, heartbeats and finishes;
// the record moved queued → running → succeeded, once.
func TestClaimRunAndFinish(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c, cr := b.executor(t, b.pool, "edge-1")
	j := b.submit(t, b.pool, `{"text":"hi"}`, submit.Policy{})
	got := b.claim(t, c, "")
	if got.ID != j.ID || got.Attempt != 1 || string(got.Input) != `{"text":"hi"}` || got.Definition == nil ||
		got.Definition.Name != b.algo(b.pool) || got.TimeoutMS != 30000 {
		t.Fatalf("claimed %+v", got)
	}
	if r := b.record(t, j.ID); r.State != job.Running || r.Worker != "edge-1."+cr.ID {
		t.Fatalf("record %s on %q", r.State, r.Worker)
	}
	if err := c.Event(b.ctx, j.ID, executorapi.Event{Attempt: 1, Type: executorapi.EventProgress,
		Progress: &events.Progress{Progress: 0.5, Message: "half"}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Event(b.ctx, j.ID, executorapi.Event{Attempt: 1, Type: executorapi.EventLog, Lines: []string{"a line"}}); err != nil {
		t.Fatal(err)
	}
	hb, err := c.Heartbeat(b.ctx, executorapi.Heartbeat{Jobs: []string{j.ID, "not-mine"}, SlotsBusy: 1})
	if err != nil || len(hb.Cancel) != 0 || len(hb.Lost) != 1 || hb.Lost[0] != "not-mine" {
		t.Fatalf("heartbeat %+v, %v", hb, err)
	}
	ws, _ := b.reg.Workers(b.ctx, b.pool)
	if len(ws) != 1 || len(ws[0].Running) != 1 || ws[0].Running[0] != j.ID || ws[0].SlotsBusy != 1 {
		t.Fatalf("registry %+v", ws)
	}
	fin, err := c.Finish(b.ctx, j.ID, executorapi.Finish{Attempt: 1, Outcome: executorapi.OutcomeSucceeded,
		Output: json.RawMessage(`{"text":"hi"}`), Log: "done"})
	if err != nil || fin.State != string(job.Succeeded) {
		t.Fatalf("finish %+v, %v", fin, err)
	}
	r := b.record(t, j.ID)
	if r.State != job.Succeeded || string(r.Output) != `{"text":"hi"}` || r.Log != "done" || r.Attempt != 1 {
		t.Fatalf("record %+v", r)
	}
	// Metered: one slot, no GPU (the definition asks none), from the claim to the finish.
	if u := r.Usage; u == nil || u.GPUSeconds != 0 || u.CPUSeconds <= 0 || u.CPUSeconds > r.FinishedAt.Sub(*r.StartedAt).Seconds()+0.5 {
		t.Fatalf("usage %+v (ran %s)", u, r.FinishedAt.Sub(*r.StartedAt))
	}
	evs, err := b.events.Read(b.ctx, j.ID, "", 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range evs {
		types = append(types, string(e.Type))
	}
	if s := strings.Join(types, ","); s != "state,state,progress,log,output,state" {
		t.Fatalf("events %s", s)
	}
	// Finishing again: not held any more.
	_, err = c.Finish(b.ctx, j.ID, executorapi.Finish{Attempt: 1, Outcome: executorapi.OutcomeSucceeded, Output: json.RawMessage(`{}`)})
	wantStatus(t, err, http.StatusConflict)
}

// TestRefusals: another pool's claim 403, a job it does not hold 409 (403
// when the job is of another pool), an output over the limit 413 (the hold
// stays: a failure can still end the job), a cancel nobody asked for 400.
func TestRefusals(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a1, _ := b.executor(t, b.pool, "a1")
	a2, _ := b.executor(t, b.pool, "a2")
	bx, _ := b.executor(t, b.other, "b1")

	_, err := a1.Claim(b.ctx, executorapi.ClaimRequest{Pool: b.other, WaitMS: 10})
	wantStatus(t, err, http.StatusForbidden)

	ja := b.submit(t, b.pool, `{"n":1}`, submit.Policy{})
	jb := b.submit(t, b.other, `{"n":2}`, submit.Policy{})
	if got := b.claim(t, a1, b.pool); got.ID != ja.ID {
		t.Fatalf("a1 claimed %s", got.ID)
	}
	if got := b.claim(t, bx, ""); got.ID != jb.ID {
		t.Fatalf("b1 claimed %s", got.ID)
	}
	ok := executorapi.Finish{Attempt: 1, Outcome: executorapi.OutcomeSucceeded, Output: json.RawMessage(`{}`)}
	_, err = a2.Finish(b.ctx, ja.ID, ok)
	wantStatus(t, err, http.StatusConflict)
	_, err = a1.Finish(b.ctx, jb.ID, ok)
	wantStatus(t, err, http.StatusForbidden)
	wantStatus(t, a2.Event(b.ctx, ja.ID, executorapi.Event{Attempt: 1, Type: executorapi.EventLog, Lines: []string{"x"}}), http.StatusConflict)
	_, err = a1.Finish(b.ctx, ja.ID, executorapi.Finish{Attempt: 2, Outcome: executorapi.OutcomeSucceeded, Output: json.RawMessage(`{}`)})
	wantStatus(t, err, http.StatusConflict)

	big := json.RawMessage(`{"s":"` + strings.Repeat("x", 2000) + `"}`)
	_, err = a1.Finish(b.ctx, ja.ID, executorapi.Finish{Attempt: 1, Outcome: executorapi.OutcomeSucceeded, Output: big})
	wantStatus(t, err, http.StatusRequestEntityTooLarge)
	_, err = a1.Finish(b.ctx, ja.ID, executorapi.Finish{Attempt: 1, Outcome: executorapi.OutcomeCanceled})
	wantStatus(t, err, http.StatusBadRequest)
	fin, err := a1.Finish(b.ctx, ja.ID, executorapi.Finish{Attempt: 1, Outcome: executorapi.OutcomeFailed,
		Error: &executorapi.Failure{Code: job.CodeBadOutput, Message: "output over the limit"}})
	if err != nil || fin.State != string(job.Failed) {
		t.Fatalf("finish %+v, %v", fin, err)
	}
	if r := b.record(t, ja.ID); r.State != job.Failed || r.Error == nil || r.Error.Code != job.CodeBadOutput {
		t.Fatalf("record %+v", r)
	}
}

// TestLeaseExpiryRunsTheJobElsewhere: an executor that stops heartbeating
// loses its job after the lease (attempt 2, code lost); another executor
// runs it; the cut-off executor's late result is refused and the job ends
// once.
func TestLeaseExpiryRunsTheJobElsewhere(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cut, _ := b.executor(t, b.pool, "cut")
	j := b.submit(t, b.pool, `{"n":1}`, submit.Policy{})
	if got := b.claim(t, cut, ""); got.ID != j.ID {
		t.Fatalf("claimed %s", got.ID)
	}
	testwait.Eventually(t, 10*time.Second, func() bool { return b.record(t, j.ID).State == job.Queued }, "the job back in the queue")
	r := b.record(t, j.ID)
	if r.Attempt != 2 || r.Error == nil || r.Error.Code != job.CodeLost {
		t.Fatalf("record after the lease %+v", r)
	}
	other, _ := b.executor(t, b.pool, "other")
	got := b.claim(t, other, "")
	if got.ID != j.ID || got.Attempt != 2 {
		t.Fatalf("claimed %+v", got)
	}
	_, err := cut.Finish(b.ctx, j.ID, executorapi.Finish{Attempt: 1, Outcome: executorapi.OutcomeSucceeded, Output: json.RawMessage(`{"late":true}`)})
	wantStatus(t, err, http.StatusConflict)
	hb, err := cut.Heartbeat(b.ctx, executorapi.Heartbeat{Jobs: []string{j.ID}})
	if err != nil || len(hb.Lost) != 1 {
		t.Fatalf("the cut-off executor's heartbeat %+v, %v", hb, err)
	}
	if _, err := other.Finish(b.ctx, j.ID, executorapi.Finish{Attempt: 2, Outcome: executorapi.OutcomeSucceeded, Output: json.RawMessage(`{"n":1}`)}); err != nil {
		t.Fatal(err)
	}
	if r := b.record(t, j.ID); r.State != job.Succeeded || string(r.Output) != `{"n":1}` || r.Attempt != 2 {
		t.Fatalf("record %+v", r)
	}
}

// TestCancelIsLearnedWithinASecond: a cancel request is in the next
// heartbeat's answer; the executor stops and finishes the job canceled.
func TestCancelIsLearnedWithinASecond(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c, _ := b.executor(t, b.pool, "c")
	reg, err := c.Register(b.ctx, executorapi.Register{Version: "test", Slots: 1})
	if err != nil || reg.HeartbeatMS > 500 || reg.LeaseMS != b.lease.Milliseconds() {
		t.Fatalf("registered %+v, %v", reg, err)
	}
	j := b.submit(t, b.pool, `{}`, submit.Policy{})
	b.claim(t, c, "")
	asked := time.Now()
	if err := b.events.RequestCancel(b.ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	var learned time.Duration
	testwait.Eventually(t, 5*time.Second, func() bool {
		hb, err := c.Heartbeat(b.ctx, executorapi.Heartbeat{Jobs: []string{j.ID}})
		if err == nil && len(hb.Cancel) == 1 && hb.Cancel[0] == j.ID {
			learned = time.Since(asked)
			return true
		}
		return false
	}, "the cancel in a heartbeat")
	if learned > time.Second {
		t.Fatalf("cancel learned after %s", learned)
	}
	if _, err := c.Finish(b.ctx, j.ID, executorapi.Finish{Attempt: 1, Outcome: executorapi.OutcomeCanceled, Log: "stopped"}); err != nil {
		t.Fatal(err)
	}
	if r := b.record(t, j.ID); r.State != job.Canceled {
		t.Fatalf("record %s", r.State)
	}
}

// TestRevokedCredentialRequeuesItsJobs: revoking an executor hands its jobs
// back at once (attempt 2) and its next call is a 401.
func TestRevokedCredentialRequeuesItsJobs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c, cr := b.executor(t, b.pool, "r")
	j := b.submit(t, b.pool, `{}`, submit.Policy{})
	b.claim(t, c, "")
	if err := b.admin.Revoke(b.ctx, cr.ID); err != nil {
		t.Fatal(err)
	}
	if r := b.record(t, j.ID); r.State != job.Queued || r.Attempt != 2 || r.Error.Code != job.CodeLost {
		t.Fatalf("record %+v", r)
	}
	_, err := c.Finish(b.ctx, j.ID, executorapi.Finish{Attempt: 1, Outcome: executorapi.OutcomeSucceeded, Output: json.RawMessage(`{}`)})
	wantStatus(t, err, http.StatusUnauthorized)
	other, _ := b.executor(t, b.pool, "s")
	if got := b.claim(t, other, ""); got.ID != j.ID || got.Attempt != 2 {
		t.Fatalf("claimed %+v", got)
	}
}

// TestClaimInFlightAcrossRevocation: a claim long-polling when its
// credential is revoked answers 401 and holds nothing: a job queued then is
// claimed by another executor at its first attempt.
func TestClaimInFlightAcrossRevocation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c, cr := b.executor(t, b.pool, "r")
	claimed := make(chan error, 1)
	go func() {
		js, err := c.Claim(b.ctx, executorapi.ClaimRequest{Max: 1, WaitMS: 4000})
		if err == nil {
			err = fmt.Errorf("the revoked executor's claim got %d jobs", len(js))
		}
		claimed <- err
	}()
	time.Sleep(300 * time.Millisecond) // the claim is waiting in the function
	if err := b.admin.Revoke(b.ctx, cr.ID); err != nil {
		t.Fatal(err)
	}
	j := b.submit(t, b.pool, `{}`, submit.Policy{})
	wantStatus(t, <-claimed, http.StatusUnauthorized)
	other, _ := b.executor(t, b.pool, "s")
	if got := b.claim(t, other, ""); got.ID != j.ID || got.Attempt != 1 {
		t.Fatalf("claimed %+v, want job %s at attempt 1", got, j.ID)
	}
}

// TestGangsAreRefusedOnExecutorPools: a pool served by executors alone
// fails a gang job at once, saying why.
func TestGangsAreRefusedOnExecutorPools(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c, _ := b.executor(t, b.pool, "g")
	j := b.submit(t, b.pool, `{}`, submit.Policy{Gang: &submit.Gang{Size: 2}})
	js, err := c.Claim(b.ctx, executorapi.ClaimRequest{WaitMS: 1500})
	if err != nil || len(js) != 0 {
		t.Fatalf("claimed %+v, %v", js, err)
	}
	r := b.record(t, j.ID)
	if r.State != job.Failed || r.Error.Code != job.CodeUnschedulable || !strings.Contains(r.Error.Message, "gang") {
		t.Fatalf("record %+v", r)
	}
}

// TestManyLongPollsAreBounded: more open claims than MaxBlocking all answer
// (none waits for a Redis connection and fails), a job submitted while they
// wait goes to exactly one of them, and what they hold is measured.
func TestManyLongPollsAreBounded(t *testing.T) {
	t.Parallel()
	const n = 60
	b := setupWith(t, Deps{MaxBlocking: 4})
	clients := make([]*executorapi.Client, n)
	for i := range clients {
		clients[i], _ = b.executor(t, b.pool, "poll-"+strconv.Itoa(i))
	}
	before := runtime.NumGoroutine()
	var wg sync.WaitGroup
	var mu sync.Mutex
	claimed, failed := 0, 0
	for _, c := range clients {
		wg.Go(func() {
			js, err := c.Claim(b.ctx, executorapi.ClaimRequest{WaitMS: 2500})
			for _, j := range js { // finished at once: its lease never runs out
				if _, err := c.Finish(b.ctx, j.ID, executorapi.Finish{Attempt: j.Attempt, Outcome: executorapi.OutcomeSucceeded,
					Output: json.RawMessage(`{}`)}); err != nil {
					t.Errorf("finish: %v", err)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				t.Errorf("claim: %v", err)
			}
			claimed += len(js)
		})
	}
	var during int
	testwait.Eventually(t, 5*time.Second, func() bool {
		during = runtime.NumGoroutine()
		return during-before >= n
	}, "the polls open")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	j := b.submit(t, b.pool, `{"n":1}`, submit.Policy{})
	wg.Wait()
	t.Logf("%d open long polls (MaxBlocking 4): %d goroutines in the test process (client and server), heap %d KiB",
		n, during-before, ms.HeapAlloc>>10)
	if failed != 0 || claimed != 1 {
		t.Fatalf("%d claims failed, %d jobs claimed, want 0 and 1", failed, claimed)
	}
	if r := b.record(t, j.ID); r.State != job.Succeeded || r.Attempt != 1 {
		t.Fatalf("record %s attempt %d", r.State, r.Attempt)
	}
}

// TestMaxRunningQuota: with max_running 1, an executor gets a tenant's second
// job only once the first has finished, on its first attempt (holding it back
// uses none).
func TestMaxRunningQuota(t *testing.T) {
	t.Parallel()
	b := setupWith(t, Deps{QuotaCacheTTL: time.Nanosecond})
	if _, err := b.quotas.Put(b.ctx, quota.Tenant{Tenant: "acme", Pools: []quota.Quota{{Pool: b.pool, MaxRunning: 1}}}); err != nil {
		t.Fatal(err)
	}
	c, _ := b.executor(t, b.pool, "edge-1")
	j1 := b.submit(t, b.pool, `{"text":"1"}`, submit.Policy{})
	j2 := b.submit(t, b.pool, `{"text":"2"}`, submit.Policy{})
	first := b.claim(t, c, "")
	// A third of the lease: the first job's hold must outlive this wait,
	// as no heartbeat is sent meanwhile.
	js, err := c.Claim(b.ctx, executorapi.ClaimRequest{Max: 1, WaitMS: b.lease.Milliseconds() / 3})
	if err != nil || len(js) != 0 {
		t.Fatalf("a second job of acme while one runs: %+v %v", js, err)
	}
	if _, err := c.Finish(b.ctx, first.ID, executorapi.Finish{Attempt: 1, Outcome: executorapi.OutcomeSucceeded, Output: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
	second := b.claim(t, c, "")
	if first.ID == second.ID || (first.ID != j1.ID && first.ID != j2.ID) || (second.ID != j1.ID && second.ID != j2.ID) || second.Attempt != 1 {
		t.Fatalf("claimed %s then %s (attempt %d); submitted %s, %s", first.ID, second.ID, second.Attempt, j1.ID, j2.ID)
	}
}
