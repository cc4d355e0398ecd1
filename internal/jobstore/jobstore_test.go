package jobstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/testenv"
)

type bundle struct {
	ctx   context.Context
	store *Store
}

func setup(t *testing.T, o Options) *bundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	db := testenv.MongoDB(t)
	s, err := New(ctx, db, o)
	if err != nil {
		t.Fatal(err)
	}
	return &bundle{ctx: ctx, store: s}
}

func newJob(tenant, algo string) job.Job {
	return job.Job{Tenant: tenant, Algorithm: algo, Pool: "cpu", Input: json.RawMessage(`{"message":"hi","n":12345678901234567}`), MaxRetries: 2}
}

func (b *bundle) create(t *testing.T, j job.Job) *job.Job {
	t.Helper()
	got, created, err := b.store.Create(b.ctx, j)
	if err != nil || !created {
		t.Fatalf("create: %v (created %v)", err, created)
	}
	return got
}

func TestCreateAndGet(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	j := b.create(t, newJob("acme", "echo"))
	if j.State != job.Queued || j.Attempt != 1 || !job.ValidID(j.ID) || j.Priority != job.Normal || j.QueuedAt == nil {
		t.Fatalf("created %+v", j)
	}
	got, err := b.store.Get(b.ctx, "acme", j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Input) != `{"message":"hi","n":12345678901234567}` {
		t.Fatalf("input not kept byte for byte: %s", got.Input)
	}
	if got.ID != j.ID || got.State != job.Queued || !got.CreatedAt.Equal(j.CreatedAt) || got.MaxRetries != 2 {
		t.Fatalf("got %+v, want %+v", got, j)
	}
	if _, err := b.store.Get(b.ctx, "other-tenant", j.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another tenant's get: %v, want ErrNotFound", err)
	}
	if _, err := b.store.Get(b.ctx, "acme", job.NewID()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown id: %v, want ErrNotFound", err)
	}
}

func TestCreateRefusesBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	for _, j := range []job.Job{
		{Algorithm: "echo", Pool: "cpu"},
		{Tenant: "t", Pool: "cpu"},
		{Tenant: "t", Algorithm: "echo"},
		{Tenant: "t", Algorithm: "echo", Pool: "cpu", Priority: "urgent"},
		{Tenant: "t", Algorithm: "echo", Pool: "cpu", MaxRetries: -1},
	} {
		if _, _, err := b.store.Create(b.ctx, j); !errors.Is(err, ErrInvalid) {
			t.Errorf("Create(%+v) = %v, want ErrInvalid", j, err)
		}
	}
}

func TestTransitionsFollowTheLifecycle(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	j := b.create(t, newJob("acme", "echo"))
	run, err := b.store.Transition(b.ctx, j.ID, Change{From: job.Queued, To: job.Running, Worker: "w1", Attempt: 1})
	if err != nil || run.State != job.Running || run.Worker != "w1" || run.StartedAt == nil {
		t.Fatalf("start: %+v %v", run, err)
	}
	nb := time.Now().Add(time.Minute)
	retry, err := b.store.Transition(b.ctx, j.ID, Change{From: job.Running, To: job.Queued, Attempt: 1,
		Error: &job.Error{Code: "runtime_error", Message: "exit 1"}, NotBefore: nb})
	if err != nil || retry.Attempt != 2 || retry.State != job.Queued || retry.NotBefore == nil || retry.StartedAt != nil || retry.Worker != "" {
		t.Fatalf("retry: %+v %v", retry, err)
	}
	// The first attempt's worker may not finish the second attempt.
	_, err = b.store.Transition(b.ctx, j.ID, Change{From: job.Queued, To: job.Running, Attempt: 1})
	var ce *ConflictError
	if !errors.As(err, &ce) || ce.ActualAttempt != 2 {
		t.Fatalf("stale attempt: %v", err)
	}
	if _, err := b.store.Transition(b.ctx, j.ID, Change{From: job.Queued, To: job.Running, Attempt: 2, Worker: "w2"}); err != nil {
		t.Fatal(err)
	}
	done, err := b.store.Transition(b.ctx, j.ID, Change{From: job.Running, To: job.Succeeded, Output: json.RawMessage(`{"message":"hi"}`)})
	if err != nil || done.State != job.Succeeded || string(done.Output) != `{"message":"hi"}` || done.FinishedAt == nil || done.Error != nil {
		t.Fatalf("succeed: %+v %v", done, err)
	}
	// A transition the table does not allow is refused with a typed error, and
	// nothing changes.
	_, err = b.store.Transition(b.ctx, j.ID, Change{From: job.Succeeded, To: job.Running})
	if !errors.Is(err, job.ErrInvalidTransition) {
		t.Fatalf("succeeded → running: %v, want ErrInvalidTransition", err)
	}
	// A move from a state the job is no longer in is a conflict naming the real state.
	_, err = b.store.Transition(b.ctx, j.ID, Change{From: job.Running, To: job.Failed})
	if !errors.As(err, &ce) || ce.Actual != job.Succeeded || ce.Expected != job.Running || !errors.Is(err, ErrConflict) {
		t.Fatalf("running → failed on a succeeded job: %v", err)
	}
	if want := fmt.Sprintf("job %s is succeeded, not running", j.ID); err.Error() != want {
		t.Fatalf("conflict message %q, want %q", err, want)
	}
	if _, err := b.store.Transition(b.ctx, job.NewID(), Change{From: job.Queued, To: job.Running}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown job: %v", err)
	}
}

func TestCancelExpireAndManualRetry(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	a := b.create(t, newJob("acme", "echo"))
	c, err := b.store.Transition(b.ctx, a.ID, Change{From: job.Queued, To: job.Canceled, Error: &job.Error{Code: "canceled", Message: "by user"}})
	if err != nil || c.State != job.Canceled || c.FinishedAt == nil || c.Error.Code != "canceled" {
		t.Fatalf("cancel: %+v %v", c, err)
	}
	if _, err := b.store.Transition(b.ctx, a.ID, Change{From: job.Canceled, To: job.Queued}); !errors.Is(err, job.ErrInvalidTransition) {
		t.Fatalf("retry of a canceled job: %v", err)
	}
	e := b.create(t, newJob("acme", "echo"))
	if _, err := b.store.Transition(b.ctx, e.ID, Change{From: job.Queued, To: job.Expired}); err != nil {
		t.Fatal(err)
	}
	r, err := b.store.Transition(b.ctx, e.ID, Change{From: job.Expired, To: job.Queued})
	if err != nil || r.State != job.Queued || r.Attempt != 2 || r.FinishedAt != nil {
		t.Fatalf("manual retry of an expired job: %+v %v", r, err)
	}
}

// 16 goroutines race the same compare-and-set on one job, on 100 jobs: exactly one
// winner every time (FerretDB alone gets this wrong; the dev server serializes).
func TestRacingTransitionsHaveExactlyOneWinner(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	const jobs, racers = 100, 16
	for i := 0; i < jobs; i++ {
		j := b.create(t, newJob("acme", "race"))
		var winners, conflicts atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for r := 0; r < racers; r++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, err := b.store.Transition(b.ctx, j.ID, Change{From: job.Queued, To: job.Running, Worker: "w" + strconv.Itoa(r)})
				switch {
				case err == nil:
					winners.Add(1)
				case errors.Is(err, ErrConflict):
					conflicts.Add(1)
				default:
					t.Error(err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if winners.Load() != 1 || conflicts.Load() != racers-1 {
			t.Fatalf("job %d: %d winners, %d conflicts; want exactly 1 winner", i, winners.Load(), conflicts.Load())
		}
	}
}

// Claim is the worker's read and queued → running in one update: 16 racers on
// one job, exactly one winner, which gets the whole record; a job that is not
// queued (or does not exist) is left alone, with a conflict.
func TestClaim(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	plain := newJob("acme", "echo")
	plain.Version = "1.0.0"
	j := b.create(t, plain)
	const racers = 16
	var winners atomic.Int32
	var won *job.Job
	var wg sync.WaitGroup
	start := make(chan struct{})
	for r := range racers {
		wg.Go(func() {
			<-start
			got, err := b.store.Claim(b.ctx, j.ID, j.DispatchHint(), "w"+strconv.Itoa(r))
			switch {
			case err == nil:
				winners.Add(1)
				won = got
			case !errors.Is(err, ErrConflict):
				t.Error(err)
			}
		})
	}
	close(start)
	wg.Wait()
	if winners.Load() != 1 || won.State != job.Running || won.Worker == "" || won.StartedAt == nil ||
		string(won.Input) != string(j.Input) || won.Attempt != 1 || len(won.Outbox) != 0 {
		t.Fatalf("%d winners; record %+v", winners.Load(), won)
	}
	if _, err := b.store.Claim(b.ctx, j.ID, j.DispatchHint(), "late"); !errors.Is(err, ErrConflict) {
		t.Fatalf("claim of a running job: %v", err)
	}
	if cur, _ := b.store.GetByID(b.ctx, j.ID); cur.Worker != won.Worker || !cur.StartedAt.Equal(*won.StartedAt) {
		t.Fatalf("a lost claim changed the record: %+v", cur)
	}
	if _, err := b.store.Claim(b.ctx, "nosuchjob", "echo@1.0.0", "w"); !errors.Is(err, ErrConflict) {
		t.Fatalf("claim of no job: %v", err)
	}
	// The filter itself leaves out what must not be claimed this way, whatever
	// hint the caller holds: a gang, a job whose webhook wants running.
	gang := plain
	gang.GangSize = 2
	hooked := plain
	hooked.Webhook = &job.Webhook{URL: "https://hooks.example/x", Events: []string{"running", "succeeded"}}
	for _, o := range []job.Job{gang, hooked} {
		k := b.create(t, o)
		if _, err := b.store.Claim(b.ctx, k.ID, "echo@1.0.0", "w"); !errors.Is(err, ErrConflict) {
			t.Fatalf("claim of %+v: %v", k, err)
		}
		if cur, _ := b.store.GetByID(b.ctx, k.ID); cur.State != job.Queued {
			t.Fatalf("a refused claim changed the record: %+v", cur)
		}
	}
}

// 50 concurrent creates with one idempotency key give one job.
func TestConcurrentCreatesWithOneIdempotencyKeyGiveOneJob(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	const n = 50
	ids := make([]string, n)
	createdCount := atomic.Int32{}
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j := newJob("acme", "echo")
			j.IdempotencyKey = "order-42"
			got, created, err := b.store.Create(b.ctx, j)
			if err != nil {
				t.Error(err)
				return
			}
			if created {
				createdCount.Add(1)
			}
			ids[i] = got.ID
		}()
	}
	wg.Wait()
	if createdCount.Load() != 1 {
		t.Fatalf("%d creates reported created, want 1", createdCount.Load())
	}
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("creates returned different jobs: %s and %s", ids[0], id)
		}
	}
	page, err := b.store.List(b.ctx, Filter{Tenant: "acme"})
	if err != nil || len(page.Jobs) != 1 {
		t.Fatalf("jobs stored: %d, %v; want 1", len(page.Jobs), err)
	}
	// The same key for another tenant is another job.
	j := newJob("globex", "echo")
	j.IdempotencyKey = "order-42"
	if got, created, err := b.store.Create(b.ctx, j); err != nil || !created || got.ID == ids[0] {
		t.Fatalf("other tenant, same key: %+v %v %v", got, created, err)
	}
}

func TestIdempotencyKeyExpires(t *testing.T) {
	t.Parallel()
	clock := time.Now()
	var mu sync.Mutex
	b := setup(t, Options{IdempotencyTTL: time.Hour, Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }})
	j := newJob("acme", "echo")
	j.IdempotencyKey = "k"
	first := b.create(t, j)
	if again, created, err := b.store.Create(b.ctx, j); err != nil || created || again.ID != first.ID {
		t.Fatalf("within TTL: %v %v %v", again, created, err)
	}
	mu.Lock()
	clock = clock.Add(2 * time.Hour)
	mu.Unlock()
	second, created, err := b.store.Create(b.ctx, j)
	if err != nil || !created || second.ID == first.ID {
		t.Fatalf("after TTL: %+v %v %v", second, created, err)
	}
}

func TestListPagesWithStableCursorAndFilters(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	var want []string
	for i := 0; i < 25; i++ {
		algo := "echo"
		if i%5 == 0 {
			algo = "kmeans"
		}
		j := b.create(t, newJob("acme", algo))
		want = append([]string{j.ID}, want...) // newest first
	}
	b.create(t, newJob("globex", "echo"))
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		p, err := b.store.List(b.ctx, Filter{Tenant: "acme", Limit: 10, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range p.Jobs {
			got = append(got, j.ID)
		}
		if pages == 0 { // jobs created between pages must not shift later pages
			b.create(t, newJob("acme", "echo"))
		}
		if p.Next == "" {
			break
		}
		cursor = p.Next
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("paged ids\n got %v\nwant %v", got, want)
	}
	p, err := b.store.List(b.ctx, Filter{Tenant: "acme", Algorithm: "kmeans"})
	if err != nil || len(p.Jobs) != 5 {
		t.Fatalf("algorithm filter: %d %v", len(p.Jobs), err)
	}
	if _, err := b.store.Transition(b.ctx, want[0], Change{From: job.Queued, To: job.Canceled}); err != nil {
		t.Fatal(err)
	}
	p, err = b.store.List(b.ctx, Filter{Tenant: "acme", State: job.Canceled})
	if err != nil || len(p.Jobs) != 1 || p.Jobs[0].ID != want[0] {
		t.Fatalf("state filter: %+v %v", p, err)
	}
	p, err = b.store.List(b.ctx, Filter{Tenant: "acme", Since: time.Now().Add(time.Hour)})
	if err != nil || len(p.Jobs) != 0 {
		t.Fatalf("since filter: %d %v", len(p.Jobs), err)
	}
	for _, f := range []Filter{{}, {Tenant: "acme", Cursor: "not-a-cursor"}, {Tenant: "acme", Limit: 501}, {Tenant: "acme", State: "done"}} {
		if _, err := b.store.List(b.ctx, f); !errors.Is(err, ErrInvalid) {
			t.Errorf("List(%+v) = %v, want ErrInvalid", f, err)
		}
	}
}

func TestCountsPerStateAndAlgorithm(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	for i := 0; i < 3; i++ {
		b.create(t, newJob("acme", "echo"))
	}
	k := b.create(t, newJob("acme", "kmeans"))
	b.create(t, newJob("globex", "echo"))
	if _, err := b.store.Transition(b.ctx, k.ID, Change{From: job.Queued, To: job.Running}); err != nil {
		t.Fatal(err)
	}
	counts, err := b.store.Counts(b.ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, c := range counts {
		got[string(c.State)+"/"+c.Algorithm] = c.N
	}
	want := map[string]int64{"queued/echo": 3, "running/kmeans": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("counts %v, want %v", got, want)
	}
	all, err := b.store.Counts(b.ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, c := range all {
		total += c.N
	}
	if total != 5 {
		t.Fatalf("all tenants: %d jobs, want 5", total)
	}
}

func TestPoolScans(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	var a []*job.Job
	for range 5 {
		a = append(a, b.create(t, job.Job{Tenant: "acme", Algorithm: "echo", Pool: "pool-a"}))
	}
	other := b.create(t, job.Job{Tenant: "globex", Algorithm: "echo", Pool: "pool-b"})
	if _, err := b.store.Transition(b.ctx, a[2].ID, Change{From: job.Queued, To: job.Running}); err != nil {
		t.Fatal(err)
	}
	pools, err := b.store.Pools(b.ctx, job.Queued)
	if slices.Sort(pools); err != nil || !slices.Equal(pools, []string{"pool-a", "pool-b"}) {
		t.Fatalf("pools with queued jobs = %v, %v", pools, err)
	}
	if pools, err := b.store.Pools(b.ctx, job.Running); err != nil || !slices.Equal(pools, []string{"pool-a"}) {
		t.Fatalf("pools with running jobs = %v, %v", pools, err)
	}
	// Pages of 2 walk pool-a's queued jobs in order, and only those.
	var got []string
	after := ""
	for {
		page, err := b.store.PoolPage(b.ctx, "pool-a", job.Queued, after, time.Time{}, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range page {
			got = append(got, j.ID)
		}
		if len(page) < 2 {
			break
		}
		after = page[len(page)-1].ID
	}
	if want := []string{a[0].ID, a[1].ID, a[3].ID, a[4].ID}; !slices.Equal(got, want) {
		t.Fatalf("pages of pool-a = %v, want %v", got, want)
	}
	if page, err := b.store.PoolPage(b.ctx, "pool-b", job.Queued, "", a[0].CreatedAt, 10); err != nil || len(page) != 0 {
		t.Fatalf("pool-b jobs queued before the first job = %+v, %v", page, err)
	}
	if page, err := b.store.PoolPage(b.ctx, "pool-b", job.Queued, "", time.Now().Add(time.Second), 10); err != nil || len(page) != 1 || page[0].ID != other.ID {
		t.Fatalf("pool-b page = %+v, %v", page, err)
	}
	if _, err := b.store.PoolPage(b.ctx, "", job.Queued, "", time.Time{}, 10); !errors.Is(err, ErrInvalid) {
		t.Fatalf("page without a pool: %v, want ErrInvalid", err)
	}
}

func TestExpiredInPool(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	now := time.Now().UTC().Truncate(time.Millisecond)
	late := b.create(t, job.Job{Tenant: "acme", Algorithm: "echo", Pool: "pool-a", ExpiresAt: ptr(now.Add(-time.Second))})
	early := b.create(t, job.Job{Tenant: "acme", Algorithm: "echo", Pool: "pool-a", ExpiresAt: ptr(now.Add(-time.Hour))})
	b.create(t, job.Job{Tenant: "acme", Algorithm: "echo", Pool: "pool-a", ExpiresAt: ptr(now.Add(time.Hour))})
	b.create(t, job.Job{Tenant: "acme", Algorithm: "echo", Pool: "pool-a"})
	b.create(t, job.Job{Tenant: "acme", Algorithm: "echo", Pool: "pool-b", ExpiresAt: ptr(now.Add(-time.Hour))})
	got, err := b.store.ExpiredInPool(b.ctx, "pool-a", now, 10)
	if err != nil || len(got) != 2 || got[0].ID != early.ID || got[1].ID != late.ID {
		t.Fatalf("expired in pool-a = %+v, %v", got, err)
	}
}

func TestWebhookOutboxFollowsTransitions(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	plain := b.create(t, newJob("acme", "echo"))
	hooked := newJob("acme", "echo")
	hooked.Webhook = &job.Webhook{URL: "http://127.0.0.1:1/hook", Events: []string{"queued", "running", "succeeded"}}
	j := b.create(t, hooked)

	pending, err := b.store.PendingNotifications(b.ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 1 || pending[0].ID != j.ID || len(pending[0].Outbox) != 1 || pending[0].Outbox[0].State != job.Queued {
		t.Fatalf("after create: %+v", pending)
	}
	for _, to := range []job.State{job.Running, job.Succeeded} {
		from := job.Queued
		if to == job.Succeeded {
			from = job.Running
		}
		if _, err := b.store.Transition(b.ctx, j.ID, Change{From: from, To: to, Notify: j.Notifies(to)}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.store.Transition(b.ctx, plain.ID, Change{From: from, To: to, Notify: plain.Notifies(to)}); err != nil {
			t.Fatal(err)
		}
	}
	pending, err = b.store.PendingNotifications(b.ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 1 || len(pending[0].Outbox) != 3 {
		t.Fatalf("after two transitions: %+v", pending)
	}
	var states []job.State
	for _, n := range pending[0].Outbox {
		states = append(states, n.State)
		if err := b.store.AckNotification(b.ctx, j.ID, n); err != nil {
			t.Fatal(err)
		}
	}
	if fmt.Sprint(states) != "[queued running succeeded]" {
		t.Fatalf("outbox order %v", states)
	}
	pending, err = b.store.PendingNotifications(b.ctx, 10)
	if err != nil || len(pending) != 0 {
		t.Fatalf("after acks: %+v, %v", pending, err)
	}
}

func ptr[T any](v T) *T { return &v }
