package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/events"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/jobstore"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/internal/submit"
	"github.com/aigw/aigw/internal/testenv"
	"github.com/aigw/aigw/internal/testlog"
)

type bundle struct {
	ctx    context.Context
	jobs   *jobstore.Store
	store  *Store
	engine *Engine
	queue  *queue.Queue
	pool   string
}

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
	b := &bundle{ctx: ctx, jobs: jobs, store: NewStore(db), queue: queue.New(rdb, queue.Config{}), pool: testenv.UniqueName(t, 50)}
	t.Cleanup(func() { _ = b.queue.Purge(context.Background(), b.pool) })
	if err := b.store.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	algos := algorithm.NewStore(db)
	for _, name := range []string{"echo", "kmeans"} {
		if _, _, err := algos.Put(ctx, algorithm.Definition{Name: name, Version: "1.0.0", Pool: b.pool,
			Runtime: algorithm.Runtime{Type: algorithm.Exec, Command: []string{"aigw-" + name}}}); err != nil {
			t.Fatal(err)
		}
	}
	log := testlog.AtLevel(t, slog.LevelInfo)
	svc := submit.New(submit.Config{Jobs: jobs, Algorithms: algos, Queue: b.queue, Events: events.New(rdb, events.Config{}), Log: log})
	b.engine = NewEngine(b.store, svc, jobs, log)
	return b
}

func (b *bundle) register(t *testing.T, tenant, name, doc string) {
	t.Helper()
	d, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.store.Put(b.ctx, tenant, name, *d); err != nil {
		t.Fatal(err)
	}
}

// finish plays a worker: the job runs and ends in state to (succeeded with
// output, or failed).
func (b *bundle) finish(t *testing.T, id string, to job.State, output string) {
	t.Helper()
	if _, err := b.jobs.Transition(b.ctx, id, jobstore.Change{From: job.Queued, To: job.Running}); err != nil {
		t.Fatal(err)
	}
	c := jobstore.Change{From: job.Running, To: to}
	if to == job.Succeeded {
		c.Output = json.RawMessage(output)
	} else {
		c.Error = &job.Error{Code: "exit", Message: "exit status 1"}
	}
	if _, err := b.jobs.Transition(b.ctx, id, c); err != nil {
		t.Fatal(err)
	}
}

func (b *bundle) advance(t *testing.T, id string) *Run {
	t.Helper()
	if _, err := b.engine.AdvanceAll(b.ctx, 100); err != nil {
		t.Fatal(err)
	}
	r, err := b.store.getRun(b.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (b *bundle) input(t *testing.T, id string) string {
	t.Helper()
	j, err := b.jobs.GetByID(b.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return string(j.Input)
}

func TestChainPassesOutputByPath(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.register(t, "acme", "chain", `{"steps":[
		{"name":"a","algorithm":"echo","input":{"message":"$.input.text"}},
		{"name":"b","algorithm":"kmeans","needs":["a"],"input":{"points":"$.steps.a.output.points","k":"$.input.k","tag":"$$lit"}}]}`)
	r, err := b.engine.Start(b.ctx, "acme", "chain", json.RawMessage(`{"text":"hi","k":3}`))
	if err != nil {
		t.Fatal(err)
	}
	a, bs := r.Steps["a"], r.Steps["b"]
	if r.State != RunRunning || a.State != StepRunning || len(a.JobIDs) != 1 || bs.State != StepPending {
		t.Fatalf("after start: run %s, a %+v, b %+v", r.State, a, bs)
	}
	if got := b.input(t, a.JobIDs[0]); got != `{"message":"hi"}` {
		t.Fatalf("a's input = %s", got)
	}
	if r = b.advance(t, r.ID); r.Steps["b"].State != StepPending {
		t.Fatalf("b started before a finished: %+v", r.Steps["b"])
	}
	b.finish(t, a.JobIDs[0], job.Succeeded, `{"points":[[1,2],[3,4]],"junk":true}`)
	r = b.advance(t, r.ID)
	bs = r.Steps["b"]
	if r.Steps["a"].State != StepSucceeded || bs.State != StepRunning || len(bs.JobIDs) != 1 {
		t.Fatalf("after a: %+v %+v", r.Steps["a"], bs)
	}
	if got := b.input(t, bs.JobIDs[0]); got != `{"k":3,"points":[[1,2],[3,4]],"tag":"$lit"}` {
		t.Fatalf("b's input = %s", got)
	}
	b.finish(t, bs.JobIDs[0], job.Succeeded, `{"centroids":[[2,3]]}`)
	r = b.advance(t, r.ID)
	if r.State != RunSucceeded || r.FinishedAt == nil || string(r.Steps["b"].Output) != `{"centroids":[[2,3]]}` {
		t.Fatalf("run = %s, b = %+v", r.State, r.Steps["b"])
	}
	// A finished run is left alone.
	if res, err := b.engine.AdvanceAll(b.ctx, 100); err != nil || res.Checked != 0 {
		t.Fatalf("advance after the end = %+v, %v", res, err)
	}
}

func TestForEachFansOut(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.register(t, "acme", "fan", `{"steps":[
		{"name":"split","algorithm":"echo","input":{"message":"x"}},
		{"name":"each","algorithm":"kmeans","needs":["split"],"for_each":"$.steps.split.output.items","input":{"p":"$.item.p","i":"$.index"}},
		{"name":"none","algorithm":"kmeans","needs":["split"],"for_each":"$.steps.split.output.empty","input":{"p":"$.item"}},
		{"name":"join","algorithm":"echo","needs":["each","none"],"input":{"all":"$.steps.each.output","none":"$.steps.none.output"}}]}`)
	r, err := b.engine.Start(b.ctx, "acme", "fan", nil)
	if err != nil {
		t.Fatal(err)
	}
	b.finish(t, r.Steps["split"].JobIDs[0], job.Succeeded, `{"items":[{"p":1},{"p":2},{"p":3}],"empty":[]}`)
	r = b.advance(t, r.ID)
	each := r.Steps["each"]
	if each.State != StepRunning || len(each.JobIDs) != 3 {
		t.Fatalf("each = %+v, want 3 jobs", each)
	}
	if none := r.Steps["none"]; none.State != StepSucceeded || string(none.Output) != `[]` {
		t.Fatalf("for_each over [] = %+v, want succeeded with []", none)
	}
	for i, id := range each.JobIDs {
		want := `{"i":` + strconv.Itoa(i) + `,"p":` + strconv.Itoa(i+1) + `}`
		if got := b.input(t, id); got != want {
			t.Errorf("element %d input = %s, want %s", i, got, want)
		}
	}
	// Finish out of order; the output keeps element order.
	for _, i := range []int{2, 0} {
		b.finish(t, each.JobIDs[i], job.Succeeded, `{"c":`+strconv.Itoa(i)+`}`)
	}
	if r = b.advance(t, r.ID); r.Steps["each"].State != StepRunning {
		t.Fatalf("each finished with one member still running: %+v", r.Steps["each"])
	}
	b.finish(t, each.JobIDs[1], job.Succeeded, `{"c":1}`)
	r = b.advance(t, r.ID)
	if got := string(r.Steps["each"].Output); got != `[{"c":0},{"c":1},{"c":2}]` {
		t.Fatalf("each output = %s", got)
	}
	join := r.Steps["join"]
	if join.State != StepRunning {
		t.Fatalf("join = %+v", join)
	}
	if got := b.input(t, join.JobIDs[0]); got != `{"all":[{"c":0},{"c":1},{"c":2}],"none":[]}` {
		t.Fatalf("join input = %s", got)
	}
}

func TestFailedStepFailsRunAndCancelsOthers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.register(t, "acme", "par", `{"steps":[
		{"name":"a","algorithm":"echo"},{"name":"b","algorithm":"echo"},
		{"name":"c","algorithm":"echo","needs":["a","b"]}]}`)
	r, err := b.engine.Start(b.ctx, "acme", "par", nil)
	if err != nil {
		t.Fatal(err)
	}
	b.finish(t, r.Steps["a"].JobIDs[0], job.Failed, "")
	r = b.advance(t, r.ID)
	if r.State != RunFailed || r.Error == nil || r.Error.Code != "step_failed" {
		t.Fatalf("run = %s %+v", r.State, r.Error)
	}
	if r.Steps["a"].State != StepFailed || r.Steps["b"].State != StepCanceled || r.Steps["c"].State != StepSkipped {
		t.Fatalf("steps a %s b %s c %s", r.Steps["a"].State, r.Steps["b"].State, r.Steps["c"].State)
	}
	j, err := b.jobs.GetByID(b.ctx, r.Steps["b"].JobIDs[0])
	if err != nil || j.State != job.Canceled {
		t.Fatalf("b's job = %v, %v; want canceled", j.State, err)
	}
}

func TestMissingOutputFailsTheStep(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.register(t, "acme", "p", `{"steps":[{"name":"a","algorithm":"echo"},
		{"name":"b","algorithm":"echo","needs":["a"],"input":{"x":"$.steps.a.output.missing"}}]}`)
	r, err := b.engine.Start(b.ctx, "acme", "p", nil)
	if err != nil {
		t.Fatal(err)
	}
	b.finish(t, r.Steps["a"].JobIDs[0], job.Succeeded, `{"other":1}`)
	r = b.advance(t, r.ID)
	if r.State != RunFailed || r.Steps["b"].State != StepFailed || r.Steps["b"].Error.Code != "step_input" {
		t.Fatalf("run %s, b %+v", r.State, r.Steps["b"])
	}
}

func TestCancelRun(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.register(t, "acme", "p", `{"steps":[{"name":"a","algorithm":"echo"},{"name":"b","algorithm":"echo","needs":["a"]}]}`)
	r, err := b.engine.Start(b.ctx, "acme", "p", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.engine.Cancel(b.ctx, "globex", "p", r.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another tenant's cancel = %v, want not found", err)
	}
	for range 2 { // a repeated cancel is fine
		r, err = b.engine.Cancel(b.ctx, "acme", "p", r.ID)
		if err != nil {
			t.Fatal(err)
		}
	}
	if r.State != RunCanceled || r.Steps["a"].State != StepCanceled || r.Steps["b"].State != StepSkipped {
		t.Fatalf("run %s a %s b %s", r.State, r.Steps["a"].State, r.Steps["b"].State)
	}
	if j, err := b.jobs.GetByID(b.ctx, r.Steps["a"].JobIDs[0]); err != nil || j.State != job.Canceled {
		t.Fatalf("a's job = %v, %v", j.State, err)
	}
	if res, err := b.engine.AdvanceAll(b.ctx, 10); err != nil || res.Checked != 0 {
		t.Fatalf("advance after cancel = %+v, %v", res, err)
	}

	b.register(t, "acme", "one", `{"steps":[{"name":"a","algorithm":"echo"}]}`)
	done, err := b.engine.Start(b.ctx, "acme", "one", nil)
	if err != nil {
		t.Fatal(err)
	}
	b.finish(t, done.Steps["a"].JobIDs[0], job.Succeeded, `{}`)
	b.advance(t, done.ID)
	if _, err := b.engine.Cancel(b.ctx, "acme", "one", done.ID); !errors.Is(err, ErrFinished) {
		t.Fatalf("cancel of a succeeded run = %v", err)
	}
}

// A replica that advances a stale copy of a run (it lost the race, or crashed
// after submitting and before saving) submits nothing twice.
func TestRepeatedAdvanceSubmitsOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.register(t, "acme", "p", `{"steps":[{"name":"a","algorithm":"echo"},{"name":"b","algorithm":"echo","needs":["a"]}]}`)
	r, err := b.engine.Start(b.ctx, "acme", "p", nil)
	if err != nil {
		t.Fatal(err)
	}
	b.finish(t, r.Steps["a"].JobIDs[0], job.Succeeded, `{}`)
	stale, err := b.store.getRun(b.ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	r = b.advance(t, r.ID)
	if _, err := b.engine.advance(b.ctx, stale); err != nil {
		t.Fatal(err)
	}
	if stale.Rev != r.Rev || stale.Steps["b"].JobIDs[0] != r.Steps["b"].JobIDs[0] {
		t.Fatalf("stale advance: rev %d vs %d, b jobs %v vs %v", stale.Rev, r.Rev, stale.Steps["b"].JobIDs, r.Steps["b"].JobIDs)
	}
	page, err := b.jobs.List(b.ctx, jobstore.Filter{Tenant: "acme"})
	if err != nil || len(page.Jobs) != 2 {
		t.Fatalf("tenant has %d jobs (%v), want 2", len(page.Jobs), err)
	}
}

func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.register(t, "acme", "p", `{"steps":[{"name":"a","algorithm":"echo"}]}`)
	if _, err := b.store.Get(b.ctx, "globex", "p"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("globex sees acme's pipeline: %v", err)
	}
	if _, err := b.engine.Start(b.ctx, "globex", "p", nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("globex runs acme's pipeline: %v", err)
	}
	r, err := b.engine.Start(b.ctx, "acme", "p", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.store.GetRun(b.ctx, "globex", "p", r.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("globex sees acme's run: %v", err)
	}
	if _, err := b.store.GetRun(b.ctx, "acme", "other", r.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("run found under another pipeline name: %v", err)
	}
	if list, err := b.store.List(b.ctx, "globex"); err != nil || len(list) != 0 {
		t.Fatalf("globex lists %d pipelines (%v)", len(list), err)
	}
}

// More unfinished runs than one AdvanceAll takes are all advanced in turn:
// the oldest page never hides the runs after it.
func TestAdvanceAllPagesThroughEveryRun(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.register(t, "acme", "p", `{"steps":[{"name":"a","algorithm":"echo"},{"name":"b","algorithm":"echo","needs":["a"]}]}`)
	var ids []string
	for range 3 {
		r, err := b.engine.Start(b.ctx, "acme", "p", nil)
		if err != nil {
			t.Fatal(err)
		}
		b.finish(t, r.Steps["a"].JobIDs[0], job.Succeeded, `{}`)
		ids = append(ids, r.ID)
	}
	for range 2 { // pages of 2: runs 1-2, then run 3
		if _, err := b.engine.AdvanceAll(b.ctx, 2); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids {
		r, err := b.store.getRun(b.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Steps["b"].JobIDs) != 1 {
			t.Errorf("run %s: step b jobs %v after two passes, want one submitted", id, r.Steps["b"].JobIDs)
		}
	}
}
