package lifecycle_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aigw/aigw/internal/events"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/jobstore"
	"github.com/aigw/aigw/internal/lifecycle"
	"github.com/aigw/aigw/internal/testenv"
)

type env struct {
	ctx   context.Context
	rdb   redis.UniversalClient
	store *jobstore.Store
	ev    *events.Stream
	lc    *lifecycle.Lifecycle
}

func setup(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	store, err := jobstore.New(ctx, testenv.MongoDB(t), jobstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rdb := testenv.Redis(t)
	ev := events.New(rdb, events.Config{DoneTTL: time.Minute})
	lc := lifecycle.New(store, ev, slog.New(slog.DiscardHandler), lifecycle.Backoff{Base: time.Second, Max: time.Minute})
	return &env{ctx: ctx, rdb: rdb, store: store, ev: ev, lc: lc}
}

// inState creates a job (its webhook wants every state, one retry left) and
// brings it to state s through the store.
func (e *env) inState(t *testing.T, s job.State, maxRetries int) *job.Job {
	t.Helper()
	var all []string
	for _, st := range job.States() {
		all = append(all, string(st))
	}
	expires := time.Now().Add(time.Hour)
	j, _, err := e.store.Create(e.ctx, job.Job{Tenant: "t-lifecycle", Algorithm: "echo", Version: "1", Pool: "cpu",
		Input: json.RawMessage(`{}`), MaxRetries: maxRetries, ExpiresAt: &expires,
		Webhook: &job.Webhook{URL: "https://hooks.example/x", Events: all}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.rdb.Del(context.Background(), events.Key(j.ID)) })
	path := map[job.State][]job.State{
		job.Queued: nil, job.Running: {job.Running}, job.Succeeded: {job.Running, job.Succeeded},
		job.Failed: {job.Failed}, job.Canceled: {job.Canceled}, job.Expired: {job.Expired},
	}[s]
	for _, to := range path {
		if j, err = e.store.Transition(e.ctx, j.ID, jobstore.Change{From: j.State, To: to, Attempt: j.Attempt}); err != nil {
			t.Fatalf("bring job to %s: %v", s, err)
		}
	}
	return j
}

// states returns the state events of j's stream, in order.
func (e *env) states(t *testing.T, id string) []job.State {
	t.Helper()
	evs, err := e.ev.Read(e.ctx, id, "", 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []job.State
	for _, ev := range evs {
		if ev.Type != events.TypeState {
			continue
		}
		var s events.State
		if err := json.Unmarshal(ev.Data, &s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s.State)
	}
	return out
}

type op struct {
	name       string
	maxRetries int
	run        func(*env, *job.Job) (lifecycle.Outcome, error)
	from       []job.State // the states it moves a job out of
	to         job.State
	verb       lifecycle.Verb
	announce   bool // publishes the new state itself
}

func ops() []op {
	return []op{
		{name: "start", run: func(e *env, j *job.Job) (lifecycle.Outcome, error) { return e.lc.Start(e.ctx, j, "node-1") },
			from: []job.State{job.Queued}, to: job.Running, verb: lifecycle.Keep},
		{name: "fail at start", run: func(e *env, j *job.Job) (lifecycle.Outcome, error) {
			return e.lc.FailAtStart(e.ctx, j, &job.Error{Code: job.CodeUnknownAlgorithm, Message: "gone"})
		}, from: []job.State{job.Queued}, to: job.Failed, verb: lifecycle.Ack, announce: true},
		{name: "succeed", run: func(e *env, j *job.Job) (lifecycle.Outcome, error) {
			return e.lc.Succeed(e.ctx, j, lifecycle.Result{Output: json.RawMessage(`{"ok":true}`), Log: "done"})
		}, from: []job.State{job.Running}, to: job.Succeeded, verb: lifecycle.Ack, announce: true},
		{name: "fail retryable, retry left", maxRetries: 1, run: func(e *env, j *job.Job) (lifecycle.Outcome, error) {
			return e.lc.Fail(e.ctx, j, lifecycle.Failure{Error: &job.Error{Code: job.CodeRuntime, Message: "exit 1"}, Retryable: true})
		}, from: []job.State{job.Running}, to: job.Queued, verb: lifecycle.Requeue, announce: true},
		{name: "fail retryable, no retry left", run: func(e *env, j *job.Job) (lifecycle.Outcome, error) {
			return e.lc.Fail(e.ctx, j, lifecycle.Failure{Error: &job.Error{Code: job.CodeTimeout, Message: "slow"}, Retryable: true})
		}, from: []job.State{job.Running}, to: job.Failed, verb: lifecycle.DeadLetter, announce: true},
		{name: "fail not retryable", maxRetries: 1, run: func(e *env, j *job.Job) (lifecycle.Outcome, error) {
			return e.lc.Fail(e.ctx, j, lifecycle.Failure{Error: &job.Error{Code: job.CodeBadOutput, Message: "not JSON"}})
		}, from: []job.State{job.Running}, to: job.Failed, verb: lifecycle.Ack, announce: true},
		{name: "hand back", run: func(e *env, j *job.Job) (lifecycle.Outcome, error) {
			return e.lc.HandBack(e.ctx, j, "node-1", job.Usage{})
		},
			from: []job.State{job.Running}, to: job.Queued, verb: lifecycle.Requeue, announce: true},
		{name: "take over", run: func(e *env, j *job.Job) (lifecycle.Outcome, error) { return e.lc.TakeOver(e.ctx, j) },
			from: []job.State{job.Running}, to: job.Queued, verb: lifecycle.Keep, announce: true},
		{name: "reap", run: func(e *env, j *job.Job) (lifecycle.Outcome, error) { return e.lc.Reap(e.ctx, j, time.Minute) },
			from: []job.State{job.Running}, to: job.Failed, verb: lifecycle.Ack, announce: true},
		{name: "cancel", run: func(e *env, j *job.Job) (lifecycle.Outcome, error) { return e.lc.Cancel(e.ctx, j, "tail", job.Usage{}) },
			from: []job.State{job.Queued, job.Running}, to: job.Canceled, verb: lifecycle.Ack, announce: true},
		{name: "expire", run: func(e *env, j *job.Job) (lifecycle.Outcome, error) { return e.lc.Expire(e.ctx, j) },
			from: []job.State{job.Queued}, to: job.Expired, verb: lifecycle.Ack, announce: true},
		{name: "retry by hand", run: func(e *env, j *job.Job) (lifecycle.Outcome, error) { return e.lc.Retry(e.ctx, j, time.Hour) },
			from: []job.State{job.Failed, job.Expired}, to: job.Queued, verb: lifecycle.Enqueue, announce: true},
	}
}

// Every operation from every state, on the real store and event stream: it
// moves exactly the states it names, to its state, with the outbox entry the
// webhook wants, the state event and the queue action; from any other state
// it changes nothing and publishes nothing.
func TestEveryOperationFromEveryState(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for _, o := range ops() {
		for _, from := range job.States() {
			t.Run(o.name+"/from "+string(from), func(t *testing.T) {
				j := e.inState(t, from, o.maxRetries)
				before := e.states(t, j.ID)
				out, err := o.run(e, j)
				moves := false
				for _, f := range o.from {
					moves = moves || f == from
				}
				if !moves {
					if err == nil {
						t.Fatalf("%s from %s succeeded: %+v", o.name, from, out.Job)
					}
					if !errors.Is(err, jobstore.ErrConflict) && !errors.Is(err, job.ErrInvalidTransition) {
						t.Fatalf("%s from %s: %v, want a conflict or an invalid transition", o.name, from, err)
					}
					cur, gerr := e.store.GetByID(e.ctx, j.ID)
					if gerr != nil || cur.State != from || cur.Attempt != j.Attempt || len(cur.Outbox) != len(j.Outbox) {
						t.Fatalf("record changed: %+v %v", cur, gerr)
					}
					if want := lifecycle.Keep; cur.State.Terminal() && errors.Is(err, jobstore.ErrConflict) {
						if out.Queue.Verb != lifecycle.Ack {
							t.Fatalf("conflict on finished job: queue %v, want ack", out.Queue.Verb)
						}
					} else if out.Queue.Verb != want {
						t.Fatalf("queue %v, want %v", out.Queue.Verb, want)
					}
					if after := e.states(t, j.ID); len(after) != len(before) {
						t.Fatalf("state events %v after a refused move, had %v", after, before)
					}
					return
				}
				if err != nil {
					t.Fatalf("%s from %s: %v", o.name, from, err)
				}
				if out.Job.State != o.to || out.Queue.Verb != o.verb {
					t.Fatalf("%s from %s: %s, queue %v; want %s, %v", o.name, from, out.Job.State, out.Queue.Verb, o.to, o.verb)
				}
				stored, err := e.store.GetByID(e.ctx, j.ID)
				if err != nil || stored.State != o.to {
					t.Fatalf("stored %+v %v", stored, err)
				}
				if n := len(stored.Outbox); n != len(j.Outbox)+1 || stored.Outbox[n-1].State != o.to {
					t.Fatalf("outbox %+v, want one more entry for %s", stored.Outbox, o.to)
				}
				after := e.states(t, j.ID)
				switch {
				case o.announce && (len(after) != len(before)+1 || after[len(after)-1] != o.to):
					t.Fatalf("state events %v, want %v then %s", after, before, o.to)
				case !o.announce && len(after) != len(before):
					t.Fatalf("state events %v: the running event is the caller's (Announce)", after)
				}
				if o.to == job.Queued && stored.Attempt != j.Attempt+1 {
					t.Fatalf("attempt %d → %d, want +1", j.Attempt, stored.Attempt)
				}
				switch o.verb {
				case lifecycle.Requeue:
					if o.name == "hand back" && !out.Queue.At.IsZero() {
						t.Fatalf("hand back due at %v, want now", out.Queue.At)
					}
					if o.name != "hand back" && (stored.NotBefore == nil || !out.Queue.At.Truncate(time.Millisecond).Equal(stored.NotBefore.Truncate(time.Millisecond))) {
						t.Fatalf("requeue at %v, record not_before %v", out.Queue.At, stored.NotBefore)
					}
				case lifecycle.DeadLetter:
					if out.Queue.Reason != "timeout: slow" {
						t.Fatalf("dead-letter reason %q", out.Queue.Reason)
					}
				}
			})
		}
	}
}

// A job that cannot run at all goes straight from queued to failed: its
// stream never says running.
func TestFailAtStartNeverRuns(t *testing.T) {
	t.Parallel()
	e := setup(t)
	j := e.inState(t, job.Queued, 2)
	out, err := e.lc.FailAtStart(e.ctx, j, &job.Error{Code: job.CodeUnschedulable, Message: "no node has 8 GPUs"})
	if err != nil {
		t.Fatal(err)
	}
	if out.Job.State != job.Failed || out.Job.StartedAt != nil || out.Job.Error.Code != job.CodeUnschedulable {
		t.Fatalf("record %+v", out.Job)
	}
	if got := e.states(t, j.ID); len(got) != 1 || got[0] != job.Failed {
		t.Fatalf("state events %v, want [failed]", got)
	}
}

// Claim starts a job only from a queue entry carrying its dispatch hint,
// and only while it is queued; Announce then sends the running event. A job
// whose webhook wants the running event is never claimed, whatever hint a
// queue entry carries.
func TestClaim(t *testing.T) {
	t.Parallel()
	e := setup(t)
	hooked := e.inState(t, job.Queued, 0) // its webhook wants every state
	if got, ok, err := e.lc.Claim(e.ctx, "echo@1", hooked.ID, "node-1"); ok || err != nil || got != nil {
		t.Fatalf("claim of a job whose webhook wants running: %v %v %v", got, ok, err)
	}
	j, _, err := e.store.Create(e.ctx, job.Job{Tenant: "t-lifecycle", Algorithm: "echo", Version: "1", Pool: "cpu",
		Input: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.rdb.Del(context.Background(), events.Key(j.ID)) })
	if got, ok, err := e.lc.Claim(e.ctx, "", j.ID, "node-1"); ok || err != nil || got != nil {
		t.Fatalf("claim without a hint: %v %v %v", got, ok, err)
	}
	if got, ok, err := e.lc.Claim(e.ctx, "echo@2", j.ID, "node-1"); ok || err != nil || got != nil {
		t.Fatalf("claim with another version's hint: %v %v %v", got, ok, err)
	}
	got, ok, err := e.lc.Claim(e.ctx, "echo@1", j.ID, "node-1")
	if !ok || err != nil || got.State != job.Running || got.Worker != "node-1" {
		t.Fatalf("claim: %+v %v %v", got, ok, err)
	}
	if _, ok, err := e.lc.Claim(e.ctx, "echo@1", j.ID, "node-2"); ok || err != nil {
		t.Fatalf("second claim: %v %v", ok, err)
	}
	e.lc.Announce(e.ctx, got)
	if s := e.states(t, j.ID); len(s) != 1 || s[0] != job.Running {
		t.Fatalf("state events %v", s)
	}
}

func TestTimeoutAndBackoff(t *testing.T) {
	j := &job.Job{}
	if got := lifecycle.Timeout(j, nil); got != 10*time.Minute {
		t.Errorf("no job or algorithm timeout: %v", got)
	}
	j.ExecutionTimeoutMS = 1500
	if got := lifecycle.Timeout(j, nil); got != 1500*time.Millisecond {
		t.Errorf("job timeout: %v", got)
	}
	b := lifecycle.Backoff{Base: time.Second, Max: 4 * time.Second}
	for attempt, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 9: 4 * time.Second} {
		if d := b.Delay(attempt); d < want*8/10 || d > want*12/10 {
			t.Errorf("delay after attempt %d: %v, want %v ± 20%%", attempt, d, want)
		}
	}
}

// A warm attempt's cold start goes on the record with its outcome; a manual
// retry clears it.
func TestColdStartRecorded(t *testing.T) {
	t.Parallel()
	e := setup(t)
	j := e.inState(t, job.Running, 0)
	out, err := e.lc.Succeed(e.ctx, j, lifecycle.Result{Output: json.RawMessage(`{}`), ColdStartMS: 1234})
	if err != nil || out.Job.ColdStartMS != 1234 {
		t.Fatalf("succeeded record %+v %v", out.Job, err)
	}
	f := e.inState(t, job.Running, 0)
	out, err = e.lc.Fail(e.ctx, f, lifecycle.Failure{Error: &job.Error{Code: job.CodeRuntime, Message: "x"}, ColdStartMS: 77})
	if err != nil || out.Job.State != job.Failed || out.Job.ColdStartMS != 77 {
		t.Fatalf("failed record %+v %v", out.Job, err)
	}
	out, err = e.lc.Retry(e.ctx, out.Job, time.Hour)
	if err != nil || out.Job.ColdStartMS != 0 {
		t.Fatalf("retried record %+v %v", out.Job, err)
	}
}

// Every attempt's usage is added to the record's: a retried attempt, a
// handed-back one and the last one sum up; a manual retry keeps the sum.
func TestUsageSummedOverAttempts(t *testing.T) {
	t.Parallel()
	e := setup(t)
	j := e.inState(t, job.Running, 1)
	out, err := e.lc.Fail(e.ctx, j, lifecycle.Failure{Error: &job.Error{Code: job.CodeRuntime, Message: "x"}, Retryable: true,
		Usage: job.Usage{GPUSeconds: 2, CPUSeconds: 1}})
	if err != nil || out.Job.State != job.Queued || out.Job.Usage == nil || *out.Job.Usage != (job.Usage{GPUSeconds: 2, CPUSeconds: 1}) {
		t.Fatalf("retried record %+v %v", out.Job, err)
	}
	r, err := e.store.Transition(e.ctx, j.ID, jobstore.Change{From: job.Queued, To: job.Running, Attempt: out.Job.Attempt})
	if err != nil {
		t.Fatal(err)
	}
	out, err = e.lc.HandBack(e.ctx, r, "node-1", job.Usage{GPUSeconds: 0.5, CPUSeconds: 0.25})
	if err != nil || *out.Job.Usage != (job.Usage{GPUSeconds: 2.5, CPUSeconds: 1.25}) {
		t.Fatalf("handed-back record %+v %v", out.Job, err)
	}
	r, err = e.store.Transition(e.ctx, j.ID, jobstore.Change{From: job.Queued, To: job.Running, Attempt: out.Job.Attempt})
	if err != nil {
		t.Fatal(err)
	}
	// The caller meters from the record's start.
	u := lifecycle.Meter(r, 1, 2, r.StartedAt.Add(1500*time.Millisecond))
	if u != (job.Usage{GPUSeconds: 3, CPUSeconds: 1.5}) {
		t.Fatalf("Meter = %+v", u)
	}
	out, err = e.lc.Succeed(e.ctx, r, lifecycle.Result{Output: json.RawMessage(`{}`), Usage: u})
	if err != nil || *out.Job.Usage != (job.Usage{GPUSeconds: 5.5, CPUSeconds: 2.75}) {
		t.Fatalf("succeeded record %+v %v", out.Job, err)
	}
	got, err := e.store.GetByID(e.ctx, j.ID)
	if err != nil || *got.Usage != (job.Usage{GPUSeconds: 5.5, CPUSeconds: 2.75}) {
		t.Fatalf("stored record %+v %v", got, err)
	}
	// Nothing measured (a queued cancel, an attempt with no start): no usage.
	c := e.inState(t, job.Queued, 0)
	out, err = e.lc.Cancel(e.ctx, c, "", job.Usage{})
	if err != nil || out.Job.Usage != nil {
		t.Fatalf("canceled record %+v %v", out.Job, err)
	}
	if u := lifecycle.Meter(c, 1, 1, time.Now()); !u.Zero() {
		t.Fatalf("Meter of a queued job = %+v", u)
	}
}
