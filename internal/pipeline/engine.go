package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/jobstore"
	"github.com/aigw/aigw/internal/submit"
)

// Submitter submits and cancels step jobs (implemented by *submit.Service).
type Submitter interface {
	Submit(ctx context.Context, req submit.Request) (*job.Job, bool, error)
	Cancel(ctx context.Context, tenant, id string) (*job.Job, error)
}

// Jobs reads step jobs (implemented by *jobstore.Store).
type Jobs interface {
	GetByID(ctx context.Context, id string) (*job.Job, error)
}

// Engine starts, advances and cancels runs.
type Engine struct {
	store  *Store
	submit Submitter
	jobs   Jobs
	log    *slog.Logger
	now    func() time.Time

	// after is the id of the last run AdvanceAll looked at: each call takes
	// the next page of unfinished runs, so that more of them than one page
	// holds are all advanced in turn (a restart starts from the oldest).
	mu    sync.Mutex
	after string
}

// NewEngine returns an Engine; log may be nil.
func NewEngine(store *Store, s Submitter, jobs Jobs, log *slog.Logger) *Engine {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Engine{store: store, submit: s, jobs: jobs, log: log, now: time.Now}
}

// Start creates a run of a tenant's pipeline with input (nil means {}) and
// advances it once. A failed first advance is logged, not returned: the run is
// recorded and the next tick advances it.
func (e *Engine) Start(ctx context.Context, tenant, name string, input json.RawMessage) (*Run, error) {
	p, err := e.store.Get(ctx, tenant, name)
	if err != nil {
		return nil, err
	}
	if len(input) == 0 {
		input = json.RawMessage(`{}`)
	}
	now := e.now().UTC().Truncate(time.Millisecond)
	r := &Run{
		ID: job.NewIDAt(now), Tenant: tenant, Pipeline: name, PipelineVersion: p.Version,
		State: RunQueued, Input: input, Steps: map[string]*StepRun{},
		CreatedAt: now, UpdatedAt: now, Definition: p.Definition,
	}
	for _, s := range p.Steps {
		r.Steps[s.Name] = &StepRun{State: StepPending, JobIDs: []string{}}
	}
	if err := e.store.createRun(ctx, r); err != nil {
		return nil, err
	}
	if _, err := e.advance(ctx, r); err != nil {
		e.log.WarnContext(ctx, "pipeline run recorded; the next tick advances it", "run", r.ID, "err", err)
		return e.store.getRun(ctx, r.ID)
	}
	return r, nil
}

// AdvanceResult counts what AdvanceAll did.
type AdvanceResult struct {
	Checked   int `json:"checked"`
	Changed   int `json:"changed"`
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	Errors    int `json:"errors"`
}

// AdvanceAll advances the next page of up to limit unfinished runs, in id
// order after the last run the previous call looked at, starting over after
// the last page. A run that cannot advance now (e.g. MongoDB or Redis
// unavailable) is counted in Errors and tried again next time; the first such
// error is returned.
func (e *Engine) AdvanceAll(ctx context.Context, limit int) (AdvanceResult, error) {
	var res AdvanceResult
	e.mu.Lock()
	after := e.after
	e.mu.Unlock()
	runs, err := e.store.activeRuns(ctx, after, limit)
	if err != nil {
		return res, err
	}
	e.mu.Lock()
	if e.after = ""; len(runs) == limit {
		e.after = runs[len(runs)-1].ID
	}
	e.mu.Unlock()
	var first error
	for i := range runs {
		res.Checked++
		changed, err := e.advance(ctx, &runs[i])
		if err != nil {
			res.Errors++
			first = cmp(first, err)
			e.log.WarnContext(ctx, "pipeline run not advanced", "run", runs[i].ID, "err", err)
			continue
		}
		if changed {
			res.Changed++
			switch runs[i].State {
			case RunSucceeded:
				res.Succeeded++
			case RunFailed:
				res.Failed++
			}
		}
	}
	return res, first
}

func cmp(first, next error) error {
	if first != nil {
		return first
	}
	return next
}

// advance moves r forward as far as it can and saves it. A save that loses to
// a concurrent one (another replica, a cancel) reloads and tries again; jobs
// this attempt submitted into a run that meanwhile ended are canceled.
func (e *Engine) advance(ctx context.Context, r *Run) (bool, error) {
	for range 5 {
		if r.State.Terminal() {
			return false, nil
		}
		changed, submitted, err := e.step(ctx, r)
		if err != nil || !changed {
			return false, err
		}
		err = e.store.saveRun(ctx, r)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, ErrConflict) {
			return false, err
		}
		fresh, gerr := e.store.getRun(ctx, r.ID)
		if gerr != nil {
			return false, gerr
		}
		if fresh.State.Terminal() {
			e.cancelJobs(ctx, fresh.Tenant, submitted)
		}
		*r = *fresh
	}
	return false, fmt.Errorf("pipeline run %s kept changing while being advanced", r.ID)
}

// step applies one round of progress to r in memory: it collects finished step
// jobs, submits the steps whose needs have succeeded, and ends the run when a
// step failed or all succeeded. It returns the ids of the jobs it submitted.
func (e *Engine) step(ctx context.Context, r *Run) (changed bool, submitted []string, err error) {
	sc := Scope{Outputs: map[string]any{}}
	if err := decode(r.Input, &sc.Input); err != nil {
		return false, nil, fmt.Errorf("run %s input: %w", r.ID, err)
	}
	var failed *job.Error
	for _, s := range r.Definition.Order() {
		sr := r.Steps[s.Name]
		if sr.State == StepRunning {
			c, err := e.collect(ctx, s, sr)
			if err != nil {
				return false, submitted, err
			}
			changed = changed || c
		}
		if sr.State == StepPending && failed == nil && needsMet(r, s) {
			ids, err := e.start(ctx, r, s, sr, sc)
			submitted = append(submitted, ids...)
			if err != nil {
				return false, submitted, err
			}
			changed = true
			if r.State == RunQueued {
				r.State = RunRunning
			}
		}
		switch sr.State {
		case StepSucceeded:
			var out any
			if err := decode(orNull(sr.Output), &out); err != nil {
				return false, submitted, fmt.Errorf("output of step %s: %w", s.Name, err)
			}
			sc.Outputs[s.Name] = out
		case StepFailed:
			if failed == nil {
				failed = sr.Error
			}
		}
	}
	now := e.now().UTC().Truncate(time.Millisecond)
	switch {
	case failed != nil:
		r.State, r.Error, r.FinishedAt = RunFailed, failed, &now
		e.stopSteps(ctx, r)
		return true, submitted, nil
	case allSucceeded(r):
		r.State, r.FinishedAt = RunSucceeded, &now
		return true, submitted, nil
	}
	return changed, submitted, nil
}

func orNull(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return json.RawMessage("null")
	}
	return raw
}

func needsMet(r *Run, s *Step) bool {
	for _, n := range s.Needs {
		if r.Steps[n].State != StepSucceeded {
			return false
		}
	}
	return true
}

func allSucceeded(r *Run) bool {
	for _, sr := range r.Steps {
		if sr.State != StepSucceeded {
			return false
		}
	}
	return true
}

// collect checks a running step's jobs: all succeeded → the step succeeded with
// their output; one ended otherwise → the step failed.
func (e *Engine) collect(ctx context.Context, s *Step, sr *StepRun) (bool, error) {
	outs := make([]json.RawMessage, len(sr.JobIDs))
	for i, id := range sr.JobIDs {
		j, err := e.jobs.GetByID(ctx, id)
		if err != nil {
			return false, err
		}
		switch j.State {
		case job.Succeeded:
			outs[i] = orNull(j.Output)
		case job.Failed, job.Canceled, job.Expired:
			msg := "job " + j.ID + " " + string(j.State)
			if j.Error != nil {
				msg += ": " + j.Error.Error()
			}
			sr.State = StepFailed
			sr.Error = &job.Error{Code: "step_failed", Message: fmt.Sprintf("step %s: %s", s.Name, msg)}
			return true, nil
		default:
			return false, nil
		}
	}
	sr.State = StepSucceeded
	if s.ForEach == "" {
		sr.Output = outs[0]
		return true, nil
	}
	out, err := json.Marshal(outs)
	if err != nil {
		return false, fmt.Errorf("output of step %s: %w", s.Name, err)
	}
	sr.Output = out
	return true, nil
}

// start submits a step's jobs (one, or one per for_each element). An input
// that cannot be built or that submit rejects fails the step; other errors are
// returned and the step stays pending (its idempotency keys make a repeat safe).
func (e *Engine) start(ctx context.Context, r *Run, s *Step, sr *StepRun, sc Scope) ([]string, error) {
	fail := func(code, format string, args ...any) {
		sr.State = StepFailed
		sr.Error = &job.Error{Code: code, Message: fmt.Sprintf("step %s: ", s.Name) + fmt.Sprintf(format, args...)}
	}
	var inputs []json.RawMessage
	if s.ForEach == "" {
		in, err := s.Resolve(sc)
		if err != nil {
			fail("step_input", "%v", err)
			return nil, nil
		}
		inputs = append(inputs, in)
	} else {
		items, err := s.Items(sc)
		if err != nil {
			fail("step_input", "%v", err)
			return nil, nil
		}
		for i, it := range items {
			isc := sc
			isc.Item, isc.Index, isc.HasItem = it, i, true
			in, err := s.Resolve(isc)
			if err != nil {
				fail("step_input", "element %d: %v", i, err)
				return nil, nil
			}
			inputs = append(inputs, in)
		}
	}
	ids := make([]string, 0, len(inputs))
	for i, in := range inputs {
		key := "pipeline:" + r.ID + ":" + s.Name
		if s.ForEach != "" {
			key += ":" + strconv.Itoa(i)
		}
		j, _, err := e.submit.Submit(ctx, submit.Request{
			Tenant: r.Tenant, Algorithm: s.Algorithm, Version: s.Version, Input: in,
			IdempotencyKey: key, Policy: s.Policy,
		})
		var inputErr *submit.InputError
		switch {
		case errors.As(err, &inputErr) || errors.Is(err, submit.ErrInvalid) || errors.Is(err, submit.ErrUnknownAlgorithm):
			e.cancelJobs(ctx, r.Tenant, ids)
			fail("step_rejected", "%v", err)
			return ids, nil
		case err != nil:
			return ids, err
		}
		ids = append(ids, j.ID)
	}
	sr.JobIDs = ids
	sr.State = StepRunning
	if len(ids) == 0 { // for_each over an empty array
		sr.State, sr.Output = StepSucceeded, json.RawMessage("[]")
	}
	return ids, nil
}

// stopSteps ends the unfinished steps of a run that failed or was canceled:
// running ones are canceled (their jobs too), pending ones skipped.
func (e *Engine) stopSteps(ctx context.Context, r *Run) {
	for _, sr := range r.Steps {
		switch sr.State {
		case StepRunning:
			sr.State = StepCanceled
			e.cancelJobs(ctx, r.Tenant, sr.JobIDs)
		case StepPending:
			sr.State = StepSkipped
		}
	}
}

// cancelJobs cancels jobs, ignoring those already finished; a cancel that
// fails is logged (the job then runs to its end, and its result is ignored).
func (e *Engine) cancelJobs(ctx context.Context, tenant string, ids []string) {
	for _, id := range ids {
		_, err := e.submit.Cancel(ctx, tenant, id)
		if err != nil && !errors.Is(err, jobstore.ErrConflict) {
			e.log.WarnContext(ctx, "pipeline step job not canceled", "job_id", id, "err", err)
		}
	}
}

// ErrFinished: the run already ended otherwise than by a cancel.
var ErrFinished = errors.New("pipeline run already finished")

// Cancel cancels a tenant's run: running steps' jobs are canceled, pending
// steps skipped, and the run marked canceled. Canceling a canceled run sends the
// cancels again (so a cancel interrupted half-way can be repeated); canceling a
// succeeded or failed run is ErrFinished.
func (e *Engine) Cancel(ctx context.Context, tenant, name, id string) (*Run, error) {
	r, err := e.store.GetRun(ctx, tenant, name, id)
	if err != nil {
		return nil, err
	}
	for range 5 {
		switch r.State {
		case RunCanceled:
			for _, sr := range r.Steps {
				if sr.State == StepCanceled {
					e.cancelJobs(ctx, r.Tenant, sr.JobIDs)
				}
			}
			return r, nil
		case RunSucceeded, RunFailed:
			return r, fmt.Errorf("%w: run %s %s", ErrFinished, r.ID, r.State)
		}
		now := e.now().UTC().Truncate(time.Millisecond)
		for _, sr := range r.Steps {
			switch sr.State {
			case StepRunning:
				sr.State = StepCanceled
			case StepPending:
				sr.State = StepSkipped
			}
		}
		r.State, r.FinishedAt = RunCanceled, &now
		r.Error = &job.Error{Code: "canceled", Message: "canceled by the client"}
		// Saved: the next round sends the cancels. Lost to a concurrent save:
		// decide again on the fresh run.
		err := e.store.saveRun(ctx, r)
		if errors.Is(err, ErrConflict) {
			r, err = e.store.getRun(ctx, id)
		}
		if err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("pipeline run %s kept changing while being canceled", id)
}
