package router

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/auth"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/lifecycle"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/internal/testlog"
)

// worker plays a worker of e's pool: it takes jobs from the queue and moves
// them through the lifecycle as worker/agent does.
type worker struct {
	e    *env
	c    *queue.Consumer
	life *lifecycle.Lifecycle
}

func (e *env) worker(t *testing.T) *worker {
	t.Helper()
	c, err := e.queue.Consumer(e.pool, "w-"+e.pool, queue.ConsumerOptions{Home: -1})
	if err != nil {
		t.Fatal(err)
	}
	return &worker{e: e, c: c, life: lifecycle.New(e.jobs, e.events, testlog.New(t), lifecycle.Backoff{})}
}

// take takes the next job (waiting up to block); nil when there is none.
func (w *worker) take(t *testing.T, block time.Duration) *queue.Delivery {
	t.Helper()
	ds, err := w.c.Take(w.e.ctx, 1, block)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) == 0 {
		return nil
	}
	return &ds[0]
}

// start starts the delivered job (queued → running).
func (w *worker) start(t *testing.T, d *queue.Delivery) *job.Job {
	t.Helper()
	j, err := w.e.jobs.GetByID(w.e.ctx, d.JobID)
	if err != nil {
		t.Fatal(err)
	}
	out, err := w.life.Start(w.e.ctx, j, "w1")
	if err != nil {
		t.Fatal(err)
	}
	return out.Job
}

// failForGood runs a delivery into a retryable failure with no retry left,
// which dead-letters it, as a worker does.
func (w *worker) failForGood(t *testing.T, d *queue.Delivery) {
	t.Helper()
	j := w.start(t, d)
	out, err := w.life.Fail(w.e.ctx, j, lifecycle.Failure{Error: &job.Error{Code: "oom", Message: "out of memory"}, Retryable: true})
	if err != nil || out.Queue.Verb != lifecycle.DeadLetter {
		t.Fatalf("fail: %+v %v, want dead_letter", out.Queue, err)
	}
	if err := w.c.DeadLetter(w.e.ctx, *d, out.Queue.Reason); err != nil {
		t.Fatal(err)
	}
}

type deadLettersReply struct {
	DeadLetters []deadLetterView `json:"dead_letters"`
}

func (e *env) deadLetters(t *testing.T, token string) []deadLetterView {
	t.Helper()
	var out deadLettersReply
	e.want(t, e.do(t, "GET", "/v1/admin/pools/"+e.pool+"/dead-letters?limit=10", token, ""), http.StatusOK).decode(t, &out)
	return out.DeadLetters
}

// TestDeadLettersListAndRedriveOne: an operator lists a pool's dead letters
// (job, tenant, algorithm, reason, deliveries, time) and redrives one: the job
// is queued again with its next attempt, delivered exactly once, and the entry
// is gone. A tenant's token gets 403; unknown pools and entries are 404.
func TestDeadLettersListAndRedriveOne(t *testing.T) {
	t.Parallel()
	e := setup(t, testConfig())
	e.register(t)
	op := e.is.Token(t, "operator", auth.ScopeJobsRead, auth.ScopeAlgorithmsAdmin)
	tenant := e.is.Token(t, "acme", auth.ScopeJobsRead, auth.ScopeJobsWrite)
	w := e.worker(t)

	before := time.Now().Add(-time.Second)
	sub := e.submit(t, `{"input":{"message":"doomed"},"policy":{"max_retries":0}}`)
	d := w.take(t, 5*time.Second)
	if d == nil || d.JobID != sub.ID {
		t.Fatalf("took %+v, want job %s", d, sub.ID)
	}
	w.failForGood(t, d)

	e.want(t, e.do(t, "GET", "/v1/admin/pools/"+e.pool+"/dead-letters", tenant, ""), http.StatusForbidden)
	e.want(t, e.do(t, "POST", "/v1/admin/pools/"+e.pool+"/dead-letters/redrive", tenant, ""), http.StatusForbidden)
	dls := e.deadLetters(t, op)
	if len(dls) != 1 {
		t.Fatalf("dead letters %+v, want 1", dls)
	}
	dl := dls[0]
	if dl.JobID != sub.ID || dl.Tenant != "acme" || dl.Algorithm != algoName || !strings.Contains(dl.Reason, "out of memory") ||
		dl.Deliveries != 1 || dl.DeadAt.Before(before) || dl.DeadAt.After(time.Now().Add(time.Second)) || !queue.ValidEntryID(dl.ID) {
		t.Fatalf("dead letter %+v", dl)
	}

	for _, path := range []string{
		"/v1/admin/pools/no-such-pool/dead-letters",
		"/v1/admin/pools/BAD!/dead-letters",
	} {
		e.want(t, e.do(t, "GET", path, op, ""), http.StatusNotFound)
	}
	r := e.want(t, e.do(t, "GET", "/v1/admin/pools/"+e.pool+"/dead-letters?limit=0", op, ""), http.StatusBadRequest)
	if _, msg := r.errorCode(t); !strings.Contains(msg, "limit") {
		t.Fatalf("bad limit: %s", msg)
	}
	for _, id := range []string{"1-0", "not-an-id"} {
		r := e.want(t, e.do(t, "POST", "/v1/admin/pools/"+e.pool+"/dead-letters/"+id+"/redrive", op, ""), http.StatusNotFound)
		if code, _ := r.errorCode(t); code != "not_found" {
			t.Fatalf("redrive %s: %s", id, r.body)
		}
	}

	r = e.want(t, e.do(t, "POST", "/v1/admin/pools/"+e.pool+"/dead-letters/"+dl.ID+"/redrive", op, ""), http.StatusAccepted)
	var j jobReply
	r.decode(t, &j)
	if j.ID != sub.ID || j.State != "queued" || j.Attempt != 2 {
		t.Fatalf("redriven job %s", r.body)
	}
	if got := e.deadLetters(t, op); len(got) != 0 {
		t.Fatalf("dead letters after redrive: %+v", got)
	}
	e.want(t, e.do(t, "POST", "/v1/admin/pools/"+e.pool+"/dead-letters/"+dl.ID+"/redrive", op, ""), http.StatusNotFound)

	// The job runs once: one delivery, then nothing.
	d = w.take(t, 5*time.Second)
	if d == nil || d.JobID != sub.ID {
		t.Fatalf("after redrive took %+v, want job %s", d, sub.ID)
	}
	if started := w.start(t, d); started.State != job.Running || started.Attempt != 2 {
		t.Fatalf("started %+v", started)
	}
	if again := w.take(t, 300*time.Millisecond); again != nil {
		t.Fatalf("a redriven job delivered twice: %+v", again)
	}
}

// TestDeadLettersRedriveAll: redrive-all redrives every entry whose job can
// run again and leaves the others (a job still running, e.g. one whose
// consumers kept dying, is 409 on its own redrive).
func TestDeadLettersRedriveAll(t *testing.T) {
	t.Parallel()
	e := setup(t, testConfig())
	e.register(t)
	op := e.is.Token(t, "operator", auth.ScopeJobsRead, auth.ScopeAlgorithmsAdmin)
	w := e.worker(t)

	failed := map[string]bool{}
	for range 3 {
		failed[e.submit(t, `{"input":{"message":"doomed"},"policy":{"max_retries":0}}`).ID] = true
	}
	running := e.submit(t, `{"input":{"message":"stuck"}}`).ID
	for range 4 {
		d := w.take(t, 5*time.Second)
		if d == nil {
			t.Fatal("fewer jobs than submitted")
		}
		if failed[d.JobID] {
			w.failForGood(t, d)
			continue
		}
		w.start(t, d)
		if err := w.c.DeadLetter(e.ctx, *d, "max_deliveries"); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(e.deadLetters(t, op)); n != 4 {
		t.Fatalf("%d dead letters, want 4", n)
	}

	r := e.want(t, e.do(t, "POST", "/v1/admin/pools/"+e.pool+"/dead-letters/redrive", op, ""), http.StatusOK)
	var out struct {
		Redriven *int `json:"redriven"`
	}
	r.decode(t, &out)
	if out.Redriven == nil || *out.Redriven != 3 {
		t.Fatalf("redrive all: %s, want 3", r.body)
	}
	left := e.deadLetters(t, op)
	if len(left) != 1 || left[0].JobID != running {
		t.Fatalf("left %+v, want only the running job's entry", left)
	}
	r = e.want(t, e.do(t, "POST", "/v1/admin/pools/"+e.pool+"/dead-letters/"+left[0].ID+"/redrive", op, ""), http.StatusConflict)
	if _, msg := r.errorCode(t); !strings.Contains(msg, "running") {
		t.Fatalf("redrive of a running job: %s", msg)
	}

	taken := map[string]int{}
	for range 3 {
		d := w.take(t, 5*time.Second)
		if d == nil {
			t.Fatalf("redriven jobs taken: %v, want 3", taken)
		}
		taken[d.JobID]++
	}
	if again := w.take(t, 300*time.Millisecond); again != nil {
		taken[again.JobID]++
	}
	for id := range failed {
		if taken[id] != 1 {
			t.Fatalf("redriven jobs taken %v: each failed job once", taken)
		}
	}
}
