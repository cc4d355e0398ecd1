package executors

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/aigw/aigw/internal/events"
	"github.com/aigw/aigw/internal/executorapi"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/jobstore"
	"github.com/aigw/aigw/internal/lifecycle"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/internal/web"
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$`)

// handleCreate makes a credential: {"pool","name"} → {"id","token"}.
func (s *Service) handleCreate(w http.ResponseWriter, r *http.Request) error {
	var req executorapi.CreateRequest
	if err := web.DecodeJSON(w, r, 4096, &req); err != nil {
		return err
	}
	if err := queue.ValidatePool(req.Pool); err != nil {
		return web.Errorf(http.StatusUnprocessableEntity, "invalid_input", "pool: %v", err)
	}
	if !nameRE.MatchString(req.Name) {
		return web.Errorf(http.StatusUnprocessableEntity, "invalid_input", "name: 1-63 of A-Z a-z 0-9 _ -, starting with a letter or digit")
	}
	cr, token, err := s.creds.Create(r.Context(), req.Pool, req.Name)
	if err != nil {
		return web.Unavailable(web.RetryAfter, err)
	}
	s.log.Info("executor created", "executor_id", cr.ID, "pool", cr.Pool, "name", cr.Name)
	web.WriteJSON(w, http.StatusCreated, executorapi.Created{ID: cr.ID, Token: token, Pool: cr.Pool, Name: cr.Name})
	return nil
}

// handleRevoke revokes a credential; the jobs its executor held go back to
// the queue now, and its next call is a 401.
func (s *Service) handleRevoke(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	cr, err := s.creds.Revoke(r.Context(), id)
	if errors.Is(err, ErrNotFound) {
		return web.NotFound("no executor %q", id)
	}
	if err != nil {
		return web.Unavailable(web.RetryAfter, err)
	}
	s.forget(r.Context(), id)
	s.log.Info("executor revoked", "executor_id", cr.ID, "pool", cr.Pool, "name", cr.Name)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Service) handleRegister(w http.ResponseWriter, r *http.Request, x *executor) error {
	var req executorapi.Register
	if err := web.DecodeJSON(w, r, 64<<10, &req); err != nil {
		return err
	}
	if req.Slots <= 0 {
		req.Slots = 1
	}
	x.mu.Lock()
	x.reg, x.registered = req, true
	x.mu.Unlock()
	s.publish(r.Context(), x)
	s.log.Info("executor registered", "executor_id", x.cred.ID, "pool", x.cred.Pool, "node", x.node,
		"version", req.Version, "slots", req.Slots, "gpus", len(req.GPUs), "addr", remoteAddr(r))
	web.WriteJSON(w, http.StatusOK, executorapi.Registered{ID: x.cred.ID, Pool: x.cred.Pool, Name: x.cred.Name, Node: x.node,
		LeaseMS: s.leaseMS(), HeartbeatMS: executorapi.Ms(s.heartbeatEvery()), OutputLimit: s.d.OutputLimit})
	return nil
}

// heartbeatEvery is the heartbeat period executors are told: often enough to
// learn of a cancel within a second, and at least three per lease.
func (s *Service) heartbeatEvery() time.Duration { return min(500*time.Millisecond, s.d.Lease/3) }

// handleClaim long-polls for up to max jobs of the executor's pool.
func (s *Service) handleClaim(w http.ResponseWriter, r *http.Request, x *executor) error {
	var req executorapi.ClaimRequest
	if err := web.DecodeJSON(w, r, 4096, &req); err != nil {
		return err
	}
	if req.Pool != "" && req.Pool != x.cred.Pool {
		return web.Forbidden("this executor serves pool %s, not %s", x.cred.Pool, req.Pool)
	}
	x.mu.Lock()
	registered := x.registered
	x.mu.Unlock()
	if !registered {
		return web.Conflict("register first: POST /v1/executor/register")
	}
	limit := min(max(req.Max, 1), 64)
	wait := min(max(time.Duration(req.WaitMS)*time.Millisecond, 0), s.d.Poll)
	if !x.takeMu.TryLock() {
		return web.Conflict("another claim of this executor is waiting; claim more jobs at once with max")
	}
	defer x.takeMu.Unlock()
	ctx := r.Context()
	deadline := time.Now().Add(wait)
	jobs := []executorapi.Job{}
	for {
		// Block slices of 250 ms, as the agent takes: a job the queue's wake-up
		// does not bring to this consumer is found at the next slice's look.
		block := min(time.Until(deadline), 250*time.Millisecond)
		blocking := false
		if block > 0 {
			select {
			case s.blockers <- struct{}{}:
				blocking = true
			default:
				block = 0 // MaxBlocking polls wait on Redis already: look, then sleep
			}
		}
		ds, err := x.taker.Take(ctx, limit-len(jobs), max(block, 0))
		if blocking {
			<-s.blockers
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return web.Unavailable(web.RetryAfter, err)
		}
		for _, d := range ds {
			if x.isRevoked() {
				// Revoked while this claim waited: the entry goes back untouched.
				s.settle(context.WithoutCancel(ctx), x, d, lifecycle.QueueAction{Verb: lifecycle.Requeue})
				continue
			}
			// A job taken is claimed even if the caller went away meanwhile:
			// it is then held, unheard of, until its lease runs out.
			if j, ok := s.claim(context.WithoutCancel(ctx), x, d); ok {
				jobs = append(jobs, j)
			}
		}
		if x.isRevoked() {
			return web.Unauthorized("unknown or revoked executor token")
		}
		if len(jobs) > 0 || !time.Now().Before(deadline) || ctx.Err() != nil {
			break
		}
		if !blocking && len(ds) == 0 {
			select {
			case <-ctx.Done():
			case <-time.After(min(time.Until(deadline), 500*time.Millisecond)):
			}
		}
	}
	if len(jobs) > 0 {
		// The registry entry (jobs held) off the claim's answer: the
		// executor starts its runs meanwhile.
		go s.publish(context.WithoutCancel(ctx), x)
	}
	web.WriteJSON(w, http.StatusOK, executorapi.Claimed{Jobs: jobs})
	return nil
}

// handleHeartbeat renews the executor's holds of the jobs it lists and
// answers which of them to stop: canceled by their owner, or lost.
func (s *Service) handleHeartbeat(w http.ResponseWriter, r *http.Request, x *executor) error {
	var req executorapi.Heartbeat
	if err := web.DecodeJSON(w, r, 256<<10, &req); err != nil {
		return err
	}
	now := time.Now()
	ans := executorapi.HeartbeatAnswer{Cancel: []string{}, Lost: []string{}, LeaseMS: s.leaseMS()}
	var held []string
	x.mu.Lock()
	x.busy = req.SlotsBusy
	if req.GPUs != nil {
		x.reg.GPUs = req.GPUs
	}
	for _, id := range req.Jobs {
		if h := x.holds[id]; h != nil {
			h.beat = now
			held = append(held, id)
		} else {
			ans.Lost = append(ans.Lost, id)
		}
	}
	x.mu.Unlock()
	if len(held) > 0 {
		req, err := s.events.CancelRequested(r.Context(), held...)
		if err != nil {
			s.log.Warn("cancel check failed", "node", x.node, "err", err)
		}
		for _, id := range held {
			if req[id] {
				ans.Cancel = append(ans.Cancel, id)
			}
		}
	}
	s.publish(r.Context(), x)
	web.WriteJSON(w, http.StatusOK, ans)
	return nil
}

// attemptOf reads the attempt a call is about (query or body), > 0.
func attemptOf(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, web.BadRequest("attempt must be the claimed job's attempt (a number ≥ 1)")
	}
	return n, nil
}

// heldOf returns x's hold of the job a path-addressed call names ({id} and
// ?attempt=N), else the error to answer.
func (s *Service) heldOf(r *http.Request, x *executor) (*hold, error) {
	id := r.PathValue("id")
	attempt, err := attemptOf(r.URL.Query().Get("attempt"))
	if err != nil {
		return nil, err
	}
	h := x.get(id, attempt)
	if h == nil {
		return nil, s.notHeld(r.Context(), x, id)
	}
	return h, nil
}

// notHeld is the answer to a call about job id that x does not hold: 403 for
// a job of another pool, else 409.
func (s *Service) notHeld(ctx context.Context, x *executor, id string) error {
	j, err := s.jobs.GetByID(ctx, id)
	if err == nil && j.Pool != x.cred.Pool {
		return web.Forbidden("job %s is not of pool %s", id, x.cred.Pool)
	}
	if errors.Is(err, jobstore.ErrNotFound) {
		return web.Conflict("this executor does not hold job %s", id)
	}
	if err == nil {
		return web.Conflict("this executor does not hold job %s at that attempt (state %s, attempt %d): its lease ran out or it was never claimed here",
			id, j.State, j.Attempt)
	}
	return web.Conflict("this executor does not hold job %s", id)
}

func (s *Service) handleEvent(w http.ResponseWriter, r *http.Request, x *executor) error {
	var req executorapi.Event
	if err := web.DecodeJSON(w, r, 256<<10, &req); err != nil {
		return err
	}
	id := r.PathValue("id")
	if x.get(id, req.Attempt) == nil || req.Attempt < 1 {
		return s.notHeld(r.Context(), x, id)
	}
	var err error
	switch req.Type {
	case executorapi.EventProgress:
		if req.Progress == nil {
			return web.BadRequest("a progress event needs progress")
		}
		p := *req.Progress
		p.At = time.Now().UTC()
		_, err = s.events.Publish(r.Context(), id, events.TypeProgress, p)
	case executorapi.EventLog:
		_, err = s.events.Publish(r.Context(), id, events.TypeLog, events.Log{Lines: req.Lines, At: time.Now().UTC()})
	default:
		return web.BadRequest("type must be %s or %s", executorapi.EventProgress, executorapi.EventLog)
	}
	if err != nil {
		return web.Unavailable(web.RetryAfter, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

var artifactRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,200}$`)

// artifactName says whether name is a file's path relative to a run's output
// directory, as the agent names artifacts in subfolders (a/b.txt).
func artifactName(name string) bool {
	parts := strings.Split(name, "/")
	if len(parts) > 16 {
		return false
	}
	for _, p := range parts {
		if !artifactRE.MatchString(p) || p == "." || p == ".." {
			return false
		}
	}
	return true
}

// handleArtifact stores one file of a held attempt in the object store, as
// the worker does (artifacts/<job>/<attempt>/<name>); the finish records it.
func (s *Service) handleArtifact(w http.ResponseWriter, r *http.Request, x *executor) error {
	h, err := s.heldOf(r, x)
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	if !artifactName(name) {
		return web.BadRequest("artifact name: a path relative to the output directory (send / as %%2F), at most 16 parts of 1-200 of A-Z a-z 0-9 . _ - each, no . or .. part")
	}
	if s.d.Objects == nil {
		return web.Errorf(http.StatusNotImplemented, "", "this deployment has no object store (AIGW_S3_ENDPOINT): artifacts of executors are not kept")
	}
	if r.ContentLength < 0 {
		return web.Errorf(http.StatusLengthRequired, "", "send Content-Length")
	}
	if r.ContentLength > s.d.ArtifactLimit {
		return web.Errorf(http.StatusRequestEntityTooLarge, "", "artifact is over the limit of %d bytes", s.d.ArtifactLimit)
	}
	key := "artifacts/" + h.j.ID + "/" + strconv.Itoa(h.j.Attempt) + "/" + name
	obj, err := s.d.Objects.Put(r.Context(), key, http.MaxBytesReader(w, r.Body, s.d.ArtifactLimit), r.ContentLength)
	if err != nil {
		return web.Unavailable(web.RetryAfter, err)
	}
	x.mu.Lock()
	h.arts = append(h.arts, job.Artifact{Name: name, Key: obj.Key, Size: obj.Size, SHA256: obj.SHA256})
	x.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// handleFinish ends a held attempt with one transition out of running.
func (s *Service) handleFinish(w http.ResponseWriter, r *http.Request, x *executor) error {
	var req executorapi.Finish
	if err := web.DecodeJSON(w, r, s.d.OutputLimit+(1<<20), &req); err != nil {
		return err
	}
	id := r.PathValue("id")
	if req.Attempt < 1 {
		return web.BadRequest("attempt must be the claimed job's attempt (a number ≥ 1)")
	}
	if int64(len(req.Output)) > s.d.OutputLimit {
		return web.Errorf(http.StatusRequestEntityTooLarge, "", "output is %d bytes, over the limit of %d: finish with a failure (code bad_output)",
			len(req.Output), s.d.OutputLimit)
	}
	switch req.Outcome {
	case executorapi.OutcomeSucceeded:
		if len(req.Output) == 0 || !json.Valid(req.Output) {
			return web.BadRequest("a succeeded attempt needs its output as JSON")
		}
	case executorapi.OutcomeFailed:
		if req.Error == nil || req.Error.Code == "" {
			return web.BadRequest("a failed attempt needs error.code and error.message")
		}
	case executorapi.OutcomeCanceled, executorapi.OutcomeHandedBack:
	default:
		return web.BadRequest("outcome must be succeeded, failed, canceled or handed_back")
	}
	ctx := context.WithoutCancel(r.Context())
	if req.Outcome == executorapi.OutcomeCanceled {
		asked, err := s.events.CancelRequested(ctx, id)
		if err != nil {
			return web.Unavailable(web.RetryAfter, err)
		}
		if !asked[id] {
			return web.BadRequest("no cancel was requested for job %s: finish it as succeeded or failed", id)
		}
	}
	h := x.take(id, req.Attempt)
	if h == nil {
		return s.notHeld(ctx, x, id)
	}
	out, err := s.record(ctx, x, h, req)
	s.release(ctx, x.cred.Pool, h.j)
	if err != nil {
		s.settle(ctx, x, h.d, out.Queue)
		state := "unknown"
		if out.Job != nil {
			state = string(out.Job.State)
		}
		return web.Conflict("job %s changed under this attempt (state %s): result not recorded", id, state)
	}
	s.settle(ctx, x, h.d, out.Queue)
	s.publish(ctx, x)
	web.WriteJSON(w, http.StatusOK, executorapi.Finished{State: string(out.Job.State), Attempt: out.Job.Attempt})
	return nil
}

// record writes the outcome of held attempt h, as the agent's record does.
func (s *Service) record(ctx context.Context, x *executor, h *hold, f executorapi.Finish) (lifecycle.Outcome, error) {
	u := lifecycle.Meter(h.j, 1, s.gpuNeed(x, h.def), time.Now())
	switch f.Outcome {
	case executorapi.OutcomeSucceeded:
		return s.lc.Succeed(ctx, h.j, lifecycle.Result{Output: f.Output, Artifacts: h.arts, Log: f.Log, ColdStartMS: f.ColdStartMS, Usage: u})
	case executorapi.OutcomeCanceled:
		return s.lc.Cancel(ctx, h.j, f.Log, u)
	case executorapi.OutcomeHandedBack:
		return s.lc.HandBack(ctx, h.j, x.node, u)
	}
	e := &job.Error{Code: f.Error.Code, Message: f.Error.Message}
	s.log.Info("attempt failed", "job_id", h.j.ID, "attempt", h.j.Attempt, "node", x.node, "code", e.Code, "err", e.Message)
	return s.lc.Fail(ctx, h.j, lifecycle.Failure{Error: e, Retryable: f.Error.Retryable, Artifacts: h.arts, Log: f.Log,
		ColdStartMS: f.ColdStartMS, Usage: u})
}
