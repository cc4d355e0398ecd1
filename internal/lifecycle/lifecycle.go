// Package lifecycle owns every move of a job between states. Each move is a
// named operation (Start, Claim, FailAtStart, Succeed, Fail, HandBack,
// TakeOver, Reap, Cancel, Expire, Retry) that does the compare-and-set on the
// record (jobstore), writes the webhook outbox entry in the same update when
// the job's webhook wants that state, publishes the state event and tells the
// caller what to do with the job's queue entry. Callers never build a
// jobstore.Change: what to write, whom to notify and how the queue entry ends
// are read from the record.
package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/events"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/jobstore"
)

// Store is the part of the job store transitions go through (*jobstore.Store).
type Store interface {
	Transition(ctx context.Context, id string, c jobstore.Change) (*job.Job, error)
	Claim(ctx context.Context, id, hint, worker string) (*job.Job, error)
}

// Publisher publishes a job's events (*events.Stream).
type Publisher interface {
	PublishState(ctx context.Context, j *job.Job) (string, error)
	Publish(ctx context.Context, jobID string, t events.Type, v any) (string, error)
}

// Backoff is the delay before automatic retry attempt+1: Base·2^(attempt-1),
// at most Max, with ±20 % jitter.
type Backoff struct {
	Base, Max time.Duration
}

// Delay is the backoff after attempt failed.
func (b Backoff) Delay(attempt int) time.Duration {
	d := b.Base
	for i := 1; i < attempt && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// Lifecycle moves jobs between states.
type Lifecycle struct {
	store   Store
	events  Publisher
	log     *slog.Logger
	backoff Backoff
	now     func() time.Time
	onEnd   EndHook
}

// EndHook is told, after the record changed, that job j left the queue
// without running (canceled, expired, failed at start) or that one of its
// runs ended (whatever came next), having used u: internal/fairq gives its
// room in the pool to the next job.
type EndHook func(ctx context.Context, j *job.Job, u job.Usage)

// OnEnd sets the end hook (nil: none) and returns l.
func (l *Lifecycle) OnEnd(h EndHook) *Lifecycle {
	l.onEnd = h
	return l
}

// New returns a Lifecycle over store and events. backoff spaces automatic
// retries (only Fail uses it).
func New(store Store, ev Publisher, log *slog.Logger, backoff Backoff) *Lifecycle {
	return &Lifecycle{store: store, events: ev, log: log, backoff: backoff, now: time.Now}
}

// Verb is what the caller does with the job's queue entry after an operation.
type Verb int

const (
	// Keep: leave the entry as it is (the caller goes on with the job, or
	// someone else holds it now).
	Keep Verb = iota
	// Ack: the job is finished; complete the entry.
	Ack
	// Requeue: hand the entry back, due at QueueAction.At (zero: now).
	Requeue
	// DeadLetter: the job failed for good with an error that was retryable:
	// move the entry to the dead-letter stream with QueueAction.Reason.
	DeadLetter
	// Enqueue: the job is queued again by hand and has no entry: add one.
	Enqueue
)

func (v Verb) String() string {
	return [...]string{"keep", "ack", "requeue", "dead_letter", "enqueue"}[v]
}

// QueueAction is what to do with the job's queue entry.
type QueueAction struct {
	Verb   Verb
	At     time.Time // Requeue: when the job is due again
	Reason string    // DeadLetter: why
}

// Outcome is the record after an operation and what to do with its queue entry.
// After a lost compare-and-set (an error matching jobstore.ErrConflict) Job is
// the record as found (nil if unknown) and Queue is Ack when someone else
// finished the job, else Keep.
type Outcome struct {
	Job   *job.Job
	Queue QueueAction
}

// Result is what a successful run produced.
type Result struct {
	Output    json.RawMessage
	Artifacts []job.Artifact
	Log       string
	// ColdStartMS is how long the attempt waited for a warm process to start
	// (0: it found one ready, or its runtime keeps none).
	ColdStartMS int64
	// Usage is what the attempt held (see Meter); added to the record's.
	Usage job.Usage
}

// Failure is why an attempt failed, and what it left behind.
type Failure struct {
	Error     *job.Error
	Retryable bool
	Artifacts []job.Artifact
	Log       string
	// ColdStartMS: see Result.
	ColdStartMS int64
	// Usage: see Result.
	Usage job.Usage
}

// Meter is the usage of running attempt j that ends at end, holding slots
// worker slots and gpus GPUs since the record's started_at (nothing when the
// record has no start).
func Meter(j *job.Job, slots, gpus int, end time.Time) job.Usage {
	if j == nil || j.StartedAt == nil {
		return job.Usage{}
	}
	wall := end.Sub(*j.StartedAt).Seconds()
	if wall <= 0 {
		return job.Usage{}
	}
	return job.Usage{GPUSeconds: float64(gpus) * wall, CPUSeconds: float64(slots) * wall}
}

// Timeout is the effective execution timeout of an attempt of j: the job's
// own, else def's (def nil: the algorithm is unknown, so the default).
func Timeout(j *job.Job, def *algorithm.Definition) time.Duration {
	if def == nil {
		return j.Timeout(algorithm.DefaultTimeout)
	}
	return j.Timeout(def.Timeout())
}

// Start moves a queued job to running for worker (queued → running). Like
// Claim, it leaves the running event to Announce, which the caller sends once
// the attempt's process has started: the stream then reads running before any
// of its output.
func (l *Lifecycle) Start(ctx context.Context, j *job.Job, worker string) (Outcome, error) {
	return l.apply(ctx, j, jobstore.Change{From: job.Queued, To: job.Running, Attempt: j.Attempt, Worker: worker}, Keep, false)
}

// Claim starts job id for worker from its queue entry alone (one update that
// also reads the record) when the entry carries the job's dispatch hint
// (job.DispatchHint: no gang, no webhook for running, so nothing else belongs
// in that update; the store's filter matches the hint the record was created
// with, so no other job is claimed this way). It reports ok false, having
// changed nothing, when the hint is missing or does not match, or the job is
// not queued: the caller reads the record and calls Start. Announce sends
// the running event.
func (l *Lifecycle) Claim(ctx context.Context, hint, id, worker string) (j *job.Job, ok bool, err error) {
	if _, _, hinted := job.ParseDispatchHint(hint); !hinted {
		return nil, false, nil
	}
	j, err = l.store.Claim(ctx, id, hint, worker)
	if errors.Is(err, jobstore.ErrConflict) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return j, true, nil
}

// Announce publishes the running event of a job Start or Claim moved.
func (l *Lifecycle) Announce(ctx context.Context, j *job.Job) { l.publish(ctx, j) }

// FailAtStart ends a queued job that cannot run at all (queued → failed, no
// retry): its algorithm is unknown, or no node of its pool is big enough.
func (l *Lifecycle) FailAtStart(ctx context.Context, j *job.Job, e *job.Error) (Outcome, error) {
	return l.apply(ctx, j, jobstore.Change{From: job.Queued, To: job.Failed, Attempt: j.Attempt, Error: e}, Ack, true)
}

// Succeed records a running attempt's result (running → succeeded). The
// output event goes out before the succeeded state event that ends the
// stream, and only once the record says succeeded.
func (l *Lifecycle) Succeed(ctx context.Context, j *job.Job, r Result) (Outcome, error) {
	out, err := l.apply(ctx, j, jobstore.Change{From: job.Running, To: job.Succeeded, Attempt: j.Attempt,
		Output: r.Output, Artifacts: r.Artifacts, Log: r.Log, ColdStartMS: r.ColdStartMS, Usage: r.Usage}, Ack, false)
	if err != nil {
		return out, err
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	if _, err := l.events.Publish(pctx, j.ID, events.TypeOutput,
		events.Output{Output: r.Output, Artifacts: r.Artifacts, At: l.now().UTC()}); err != nil {
		l.log.WarnContext(ctx, "publish output failed", "job_id", j.ID, "err", err)
	}
	l.publish(ctx, out.Job)
	return out, nil
}

// Fail records a failed running attempt: a retryable failure with retries
// left goes back to the queue (running → queued, attempt+1, due after the
// backoff: Requeue at that time); any other fails the job (running → failed:
// DeadLetter when the error was retryable but no retry is left, else Ack).
func (l *Lifecycle) Fail(ctx context.Context, j *job.Job, f Failure) (Outcome, error) {
	if f.Retryable && j.Attempt <= j.MaxRetries {
		nb := l.now().Add(l.backoff.Delay(j.Attempt))
		out, err := l.apply(ctx, j, jobstore.Change{From: job.Running, To: job.Queued, Attempt: j.Attempt,
			Error: f.Error, NotBefore: nb, Usage: f.Usage}, Requeue, true)
		if err == nil {
			out.Queue.At = nb
		}
		return out, err
	}
	then := Ack
	if f.Retryable {
		then = DeadLetter
	}
	out, err := l.apply(ctx, j, jobstore.Change{From: job.Running, To: job.Failed, Attempt: j.Attempt,
		Error: f.Error, Artifacts: f.Artifacts, Log: f.Log, ColdStartMS: f.ColdStartMS, Usage: f.Usage}, then, true)
	if err == nil && then == DeadLetter {
		out.Queue.Reason = f.Error.Code + ": " + f.Error.Message
	}
	return out, err
}

// HandBack returns a running attempt of a worker shutting down to the queue
// (running → queued, due now). It counts as an attempt, as a lost one does,
// but never fails the job by itself. u is what the attempt held until then.
func (l *Lifecycle) HandBack(ctx context.Context, j *job.Job, worker string, u job.Usage) (Outcome, error) {
	return l.apply(ctx, j, jobstore.Change{From: job.Running, To: job.Queued, Attempt: j.Attempt, Usage: u,
		Error: &job.Error{Code: job.CodeShutdown, Message: fmt.Sprintf("worker %s shut down during the run", worker)}}, Requeue, true)
}

// TakeOver counts a running attempt whose worker stopped renewing its lease
// as lost and queues the next (running → queued); the caller holds the queue
// entry and goes on to Start the job (Keep). A lost attempt's usage is not
// metered: no one measured it.
func (l *Lifecycle) TakeOver(ctx context.Context, j *job.Job) (Outcome, error) {
	return l.apply(ctx, j, jobstore.Change{From: job.Running, To: job.Queued, Attempt: j.Attempt,
		Error: &job.Error{Code: job.CodeLost, Message: fmt.Sprintf("worker %s stopped renewing its lease", j.Worker)}}, Keep, true)
}

// Reap fails a running job that ran past its timeout and that no live
// worker holds (running → failed, code lost).
func (l *Lifecycle) Reap(ctx context.Context, j *job.Job, timeout time.Duration) (Outcome, error) {
	return l.apply(ctx, j, jobstore.Change{From: job.Running, To: job.Failed, Attempt: j.Attempt,
		Error: &job.Error{Code: job.CodeLost, Message: fmt.Sprintf("the job ran past its timeout of %s and no live worker holds it", timeout)}}, Ack, true)
}

// Cancel ends a queued job canceled by its owner, or a running one whose
// worker stopped the run on a cancel request (log: the run's log tail; u:
// what the run held, zero for a queued job).
func (l *Lifecycle) Cancel(ctx context.Context, j *job.Job, log string, u job.Usage) (Outcome, error) {
	msg := "canceled by the client before it started"
	switch j.State {
	case job.Queued:
	case job.Running:
		msg = "canceled while running"
	default:
		return refused(j, job.Running)
	}
	return l.apply(ctx, j, jobstore.Change{From: j.State, To: job.Canceled, Attempt: j.Attempt,
		Error: &job.Error{Code: job.CodeCanceled, Message: msg}, Log: log, Usage: u}, Ack, true)
}

// Withdraw ends a queued job that an operator's action took back (e.g. its
// tenant was deleted): queued → canceled, reason as the error message.
func (l *Lifecycle) Withdraw(ctx context.Context, j *job.Job, reason string) (Outcome, error) {
	if j.State != job.Queued {
		return refused(j, job.Queued)
	}
	return l.apply(ctx, j, jobstore.Change{From: job.Queued, To: job.Canceled, Attempt: j.Attempt,
		Error: &job.Error{Code: job.CodeCanceled, Message: reason}}, Ack, true)
}

// Expire ends a queued job whose time to live passed (queued → expired).
func (l *Lifecycle) Expire(ctx context.Context, j *job.Job) (Outcome, error) {
	msg := "no worker started the job before it expired"
	if j.ExpiresAt != nil {
		msg += " at " + j.ExpiresAt.UTC().Format(time.RFC3339)
	}
	return l.apply(ctx, j, jobstore.Change{From: job.Queued, To: job.Expired, Attempt: j.Attempt,
		Error: &job.Error{Code: job.CodeExpired, Message: msg}}, Ack, true)
}

// Retry queues a failed or expired job again by hand (→ queued, attempt+1,
// expiring ttl from now); the caller adds its queue entry (Enqueue). The last
// attempt's error stays on the record until the next attempt ends.
func (l *Lifecycle) Retry(ctx context.Context, j *job.Job, ttl time.Duration) (Outcome, error) {
	if j.State != job.Failed && j.State != job.Expired {
		return refused(j, job.Failed)
	}
	return l.apply(ctx, j, jobstore.Change{From: j.State, To: job.Queued, Attempt: j.Attempt, Error: j.Error,
		ExpiresAt: l.now().Add(ttl)}, Enqueue, true)
}

// apply does c as a compare-and-set, with the outbox entry when j's webhook
// wants c.To, publishes the new state when announce is set and returns the
// record and then as the queue action. A lost compare-and-set returns the
// record found and Ack if it is finished, else Keep.
func (l *Lifecycle) apply(ctx context.Context, j *job.Job, c jobstore.Change, then Verb, announce bool) (Outcome, error) {
	c.Notify = j.Notifies(c.To)
	nj, err := l.store.Transition(ctx, j.ID, c)
	if err != nil {
		if nj != nil && nj.State.Terminal() {
			return Outcome{Job: nj, Queue: QueueAction{Verb: Ack}}, err
		}
		return Outcome{Job: nj}, err
	}
	if announce {
		l.publish(ctx, nj)
	}
	if l.onEnd != nil && c.To != job.Running && (c.From == job.Running || c.From == job.Queued) {
		l.onEnd(ctx, nj, c.Usage)
	}
	return Outcome{Job: nj, Queue: QueueAction{Verb: then}}, nil
}

// refused is the outcome of an operation that does not apply to j's state:
// a *jobstore.ConflictError naming the state it wants, nothing changed.
func refused(j *job.Job, want job.State) (Outcome, error) {
	out := Outcome{Job: j}
	if j.State.Terminal() {
		out.Queue.Verb = Ack
	}
	return out, &jobstore.ConflictError{ID: j.ID, Expected: want, Actual: j.State}
}

// publishTimeout bounds a state event that follows a durable write; it goes
// out even when the caller went away, so a job's stream is not left behind
// its record only because a client hung up.
const publishTimeout = 5 * time.Second

// publish sends j's state to its event stream; a failure is logged (the
// record, already written, stays the truth).
func (l *Lifecycle) publish(ctx context.Context, j *job.Job) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	if _, err := l.events.PublishState(ctx, j); err != nil {
		l.log.WarnContext(ctx, "publish state failed", "job_id", j.ID, "state", string(j.State), "err", err)
		return
	}
	l.log.InfoContext(ctx, "job state", "job_id", j.ID, "state", string(j.State), "attempt", j.Attempt)
}
