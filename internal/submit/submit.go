// Package submit is the job service shared by the router (the public API) and
// the orchestrator (pipeline steps): it submits, cancels and retries jobs,
// keeping the MongoDB record (the source of truth), the job's event stream and
// its pool's queue in step.
//
// Order of writes, so nothing is half-written: a submit validates everything
// first, then inserts the queued record, then publishes the queued state event,
// then enqueues. When MongoDB fails nothing exists; when Redis fails after the
// insert the job exists as queued and the orchestrator's reconciler enqueues it
// (Submit still returns the job, and logs the error).
package submit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/egress"
	"github.com/aigw/aigw/internal/events"
	"github.com/aigw/aigw/internal/fairq"
	"github.com/aigw/aigw/internal/inputfiles"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/jobstore"
	"github.com/aigw/aigw/internal/lifecycle"
	"github.com/aigw/aigw/internal/queue"
)

// Limits of a job's policy.
const (
	DefaultTTL  = 24 * time.Hour
	MaxTTL      = 7 * 24 * time.Hour
	MaxGangSize = 64
	// MaxIdempotencyKey is the longest accepted idempotency key, in bytes.
	MaxIdempotencyKey = 255
	// afterInsertTimeout bounds the Redis writes that follow a durable MongoDB
	// write; they run even when the caller went away, so a job is not left
	// without its event or queue entry only because a client hung up.
	afterInsertTimeout = 5 * time.Second
)

var (
	// ErrUnknownAlgorithm: no such algorithm (or version). Errors wrap it and
	// algorithm.ErrNotFound.
	ErrUnknownAlgorithm = errors.New("unknown algorithm")
	// ErrInvalid: a bad policy, webhook or request field; the message says which.
	ErrInvalid = errors.New("invalid job request")
	// ErrIdempotencyKeyReused: the idempotency key was first used for a
	// different request (algorithm, version or body); the message names the key.
	ErrIdempotencyKeyReused = errors.New("idempotency key reused")
	// ErrPurged: the job's retention ran out and its input is gone, so it
	// cannot run again.
	ErrPurged = errors.New("job purged")
)

// InputError is a job input that breaks the algorithm's input schema. Path is
// the JSON Pointer of the failing value within the input ("" for the input as
// a whole), Message what rule it broke.
type InputError struct {
	Path    string
	Message string
}

func (e *InputError) Error() string {
	if e.Path == "" {
		return "input: " + e.Message
	}
	return "input at " + e.Path + ": " + e.Message
}

// Policy is how a job asks to be run; zero fields take the algorithm's
// defaults.
type Policy struct {
	// Priority is high, normal (default) or low.
	Priority string `json:"priority,omitempty"`
	// TTL is a Go duration (e.g. "10m"): a job still queued after it expires.
	TTL string `json:"ttl,omitempty"`
	// ExecutionTimeout is a Go duration bounding one attempt (default: the
	// algorithm's timeout, at most algorithm.MaxTimeout).
	ExecutionTimeout string `json:"execution_timeout,omitempty"`
	// MaxRetries is the number of automatic retries (default: the algorithm's,
	// 0 to algorithm.MaxRetriesLimit).
	MaxRetries *int `json:"max_retries,omitempty"`
	// Gang runs the job as Size members at once.
	Gang *Gang `json:"gang,omitempty"`
}

// Gang asks for Size worker slots, all or nothing.
type Gang struct {
	Size int `json:"size"`
}

// Request is one job submission.
type Request struct {
	Tenant    string
	Algorithm string
	// Version "" runs the highest registered version.
	Version string
	Input   json.RawMessage
	// IdempotencyKey, when set, makes a repeated submit of the tenant return the
	// first job.
	IdempotencyKey string
	// Webhook is an http(s) URL told about state changes filtered by
	// WebhookEvents (state names; empty: every terminal state).
	Webhook       string
	WebhookEvents []string
	Policy        Policy
}

// Config wires a Service.
type Config struct {
	Jobs       *jobstore.Store
	Algorithms *algorithm.Store
	Queue      *queue.Queue
	Events     *events.Stream
	Log        *slog.Logger
	// DefaultTTL applies when a policy names none (default 24h); MaxTTL is the
	// longest a policy may ask for (default 7 days).
	DefaultTTL, MaxTTL time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Webhooks decides which addresses a job's webhook URL may name (nil:
	// public ones only); the deliverer checks again when it sends.
	Webhooks *egress.Guard
	// Files, when set, resolves the input's {"$file": …} references (the
	// tenant's own uploads, https URLs of public addresses); nil leaves them
	// as they are.
	Files *inputfiles.Resolver
	// Admit, when set, may refuse a valid submit of tenant to pool before it
	// is recorded (quota.Admission: GPU-seconds quotas); its error is
	// returned as is.
	Admit func(ctx context.Context, tenant, pool string) error
	// Fair, when set, admits jobs to their pools by fair share (a job waits
	// in its tenant's sub-queue while its pool is full) instead of putting
	// them straight into the queue; a queued job canceled leaves it.
	Fair *fairq.Fair
}

// Service submits, cancels and retries jobs. It is safe for concurrent use and
// keeps nothing in memory but compiled input schemas.
type Service struct {
	cfg     Config
	log     *slog.Logger
	life    *lifecycle.Lifecycle
	schemas *schemaCache
}

// New returns a Service.
func New(cfg Config) *Service {
	if cfg.DefaultTTL <= 0 {
		cfg.DefaultTTL = DefaultTTL
	}
	if cfg.MaxTTL <= 0 {
		cfg.MaxTTL = MaxTTL
	}
	cfg.DefaultTTL = min(cfg.DefaultTTL, cfg.MaxTTL)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	life := lifecycle.New(cfg.Jobs, cfg.Events, log, lifecycle.Backoff{})
	if cfg.Fair != nil {
		life.OnEnd(cfg.Fair.Ended)
	}
	return &Service{cfg: cfg, log: log, schemas: newSchemaCache(), life: life}
}

// Submit records a new queued job and enqueues it. With an idempotency key, a
// repeated submit of the tenant returns the existing job and created=false
// (re-enqueued when it is still queued, which is idempotent per job id); the
// key reused for a different request is ErrIdempotencyKeyReused.
//
// Errors: ErrUnknownAlgorithm, *InputError, ErrInvalid,
// ErrIdempotencyKeyReused, and
// mongoconn.ErrUnavailable or a Redis error when a backing server fails before
// the job is recorded.
func (s *Service) Submit(ctx context.Context, req Request) (*job.Job, bool, error) {
	if req.Tenant == "" {
		return nil, false, fmt.Errorf("%w: tenant is required", ErrInvalid)
	}
	if !algorithm.ValidName(req.Algorithm) {
		return nil, false, fmt.Errorf("%w: %q is not an algorithm name", ErrUnknownAlgorithm, req.Algorithm)
	}
	if len(req.IdempotencyKey) > MaxIdempotencyKey {
		return nil, false, fmt.Errorf("%w: idempotency key is %d bytes, over the limit of %d", ErrInvalid, len(req.IdempotencyKey), MaxIdempotencyKey)
	}
	hook, err := s.parseWebhook(ctx, req.Webhook, req.WebhookEvents)
	if err != nil {
		return nil, false, err
	}
	def, err := s.cfg.Algorithms.Get(ctx, req.Algorithm, req.Version)
	if errors.Is(err, algorithm.ErrNotFound) {
		return nil, false, fmt.Errorf("%w: %w", ErrUnknownAlgorithm, err)
	}
	if err != nil {
		return nil, false, err
	}
	now := s.cfg.Now()
	j, err := s.jobFor(def, req, now)
	if err != nil {
		return nil, false, err
	}
	j.Webhook = hook
	if err := s.validateInput(def, req.Input); err != nil {
		return nil, false, err
	}
	if s.cfg.Files != nil && inputfiles.Has(req.Input) {
		in, err := s.cfg.Files.Resolve(ctx, req.Tenant, req.Input)
		var fe *inputfiles.Error
		if errors.As(err, &fe) {
			return nil, false, &InputError{Path: fe.Path, Message: fe.Message}
		}
		if err != nil {
			return nil, false, err
		}
		j.Input = in
	}
	if s.cfg.Admit != nil {
		if err := s.cfg.Admit(ctx, req.Tenant, j.Pool); err != nil {
			return nil, false, err
		}
	}
	if req.IdempotencyKey != "" {
		if j.IdempotencyFingerprint, err = fingerprint(req); err != nil {
			return nil, false, err
		}
	}
	out, created, err := s.cfg.Jobs.Create(ctx, j)
	if err != nil {
		return nil, false, err
	}
	// Records from before fingerprints have none: they keep matching any repeat.
	if !created && out.IdempotencyFingerprint != "" && out.IdempotencyFingerprint != j.IdempotencyFingerprint {
		return nil, false, fmt.Errorf("%w: Idempotency-Key %q was first used for a different request (algorithm, version or body) in job %s; send a new key for a new request",
			ErrIdempotencyKeyReused, req.IdempotencyKey, out.ID)
	}
	if !created && out.State != job.Queued {
		return out, false, nil
	}
	// The record is durable: what follows must not be cut short by a client
	// that hangs up, and its failure leaves the job to the reconciler.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), afterInsertTimeout)
	defer cancel()
	if created {
		if _, err := s.cfg.Events.PublishState(rctx, out); err != nil {
			s.log.WarnContext(ctx, "queued event not published", "job_id", out.ID, "err", err)
		}
	}
	s.enqueue(rctx, out)
	return out, created, nil
}

// jobFor builds the record of a submit from the definition and the policy.
func (s *Service) jobFor(def *algorithm.Definition, req Request, now time.Time) (job.Job, error) {
	p := req.Policy
	prio, err := job.ParsePriority(p.Priority)
	if err != nil {
		return job.Job{}, fmt.Errorf("%w: policy.priority: %v", ErrInvalid, err)
	}
	ttl := s.cfg.DefaultTTL
	if p.TTL != "" {
		ttl, err = time.ParseDuration(p.TTL)
		if err != nil || ttl <= 0 || ttl > s.cfg.MaxTTL {
			return job.Job{}, fmt.Errorf("%w: policy.ttl %q: want a duration such as 10m, at most %s", ErrInvalid, p.TTL, s.cfg.MaxTTL)
		}
	}
	timeout := def.Timeout()
	if p.ExecutionTimeout != "" {
		timeout, err = time.ParseDuration(p.ExecutionTimeout)
		if err != nil || timeout < time.Second || timeout > algorithm.MaxTimeout {
			return job.Job{}, fmt.Errorf("%w: policy.execution_timeout %q: want a duration from 1s to %s", ErrInvalid, p.ExecutionTimeout, algorithm.MaxTimeout)
		}
	}
	retries := def.Retries()
	if p.MaxRetries != nil {
		if *p.MaxRetries < 0 || *p.MaxRetries > algorithm.MaxRetriesLimit {
			return job.Job{}, fmt.Errorf("%w: policy.max_retries %d: want 0-%d", ErrInvalid, *p.MaxRetries, algorithm.MaxRetriesLimit)
		}
		retries = *p.MaxRetries
	}
	gang := 0
	if p.Gang != nil {
		if p.Gang.Size < 1 || p.Gang.Size > MaxGangSize {
			return job.Job{}, fmt.Errorf("%w: policy.gang.size %d: want 1-%d", ErrInvalid, p.Gang.Size, MaxGangSize)
		}
		if p.Gang.Size > 1 {
			gang = p.Gang.Size
		}
	}
	expires := now.Add(ttl).UTC().Truncate(time.Millisecond)
	return job.Job{
		Tenant:             req.Tenant,
		Algorithm:          def.Name,
		Version:            def.Version,
		Pool:               def.Pool,
		Priority:           prio,
		Input:              req.Input,
		MaxRetries:         retries,
		ExecutionTimeoutMS: timeout.Milliseconds(),
		GangSize:           gang,
		ExpiresAt:          &expires,
		IdempotencyKey:     req.IdempotencyKey,
	}, nil
}

// parseWebhook checks the webhook URL (http or https with a host, reaching an
// address the guard allows) and its event filter (state names).
func (s *Service) parseWebhook(ctx context.Context, raw string, evs []string) (*job.Webhook, error) {
	if raw == "" {
		if len(evs) > 0 {
			return nil, fmt.Errorf("%w: webhook_events needs a webhook URL", ErrInvalid)
		}
		return nil, nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("%w: webhook %q: want an absolute http:// or https:// URL without credentials", ErrInvalid, raw)
	}
	if err := s.cfg.Webhooks.CheckURL(ctx, raw); err != nil {
		return nil, fmt.Errorf("%w: webhook %q: %w", ErrInvalid, raw, err)
	}
	for _, e := range evs {
		if _, err := job.ParseState(e); err != nil {
			return nil, fmt.Errorf("%w: webhook_events: %v", ErrInvalid, err)
		}
	}
	return &job.Webhook{URL: raw, Events: evs}, nil
}

// enqueue adds j to its pool's queue; a failure is logged and left to the
// reconciler, which enqueues every queued job missing from its queue.
func (s *Service) enqueue(ctx context.Context, j *job.Job) {
	if s.cfg.Fair != nil {
		if _, err := s.cfg.Fair.Submit(ctx, j); err != nil {
			s.log.ErrorContext(ctx, "job recorded but not admitted; the reconciler will admit it",
				"job_id", j.ID, "pool", j.Pool, "err", err)
		}
		return
	}
	if _, err := s.cfg.Queue.Enqueue(ctx, queue.MessageOf(j)); err != nil {
		s.log.ErrorContext(ctx, "job recorded but not enqueued; the reconciler will enqueue it",
			"job_id", j.ID, "pool", j.Pool, "err", err)
	}
}

// Cancel cancels a tenant's job. A queued job becomes canceled at once; a
// running job gets a cancel request (its worker kills the run and records
// canceled within about a second) and is returned still running. A finished
// job is a *jobstore.ConflictError; another tenant's is jobstore.ErrNotFound.
func (s *Service) Cancel(ctx context.Context, tenant, id string) (*job.Job, error) {
	j, err := s.cfg.Jobs.Get(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	for {
		switch j.State {
		case job.Running:
			if err := s.cfg.Events.RequestCancel(ctx, j.ID); err != nil {
				return nil, err
			}
			return j, nil
		case job.Queued:
			out, err := s.life.Cancel(ctx, j, "", job.Usage{})
			if errors.Is(err, jobstore.ErrConflict) && out.Job != nil {
				j = out.Job // a worker took it meanwhile (or it expired): decide again
				continue
			}
			if err != nil {
				return nil, err
			}
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), afterInsertTimeout)
			defer cancel()
			// A worker that already took the queue entry skips a job whose
			// cancel was requested.
			if err := s.cfg.Events.RequestCancel(rctx, out.Job.ID); err != nil {
				s.log.WarnContext(ctx, "cancel request not recorded", "job_id", out.Job.ID, "err", err)
			}
			return out.Job, nil
		default:
			return j, &jobstore.ConflictError{ID: j.ID, Expected: job.Running, Actual: j.State}
		}
	}
}

// TenantDeletion is what DeleteTenant did to a tenant's jobs.
type TenantDeletion struct {
	// Canceled counts the queued jobs that ended canceled.
	Canceled int `json:"canceled"`
	// CancelRequested counts the running jobs asked to stop (their workers
	// end them canceled).
	CancelRequested int `json:"cancel_requested"`
	// Asked lists the running jobs asked to stop.
	Asked []string `json:"-"`
}

// DeleteTenant ends the work of a deleted tenant: each queued job becomes
// canceled with reason as its error message (and leaves its pool's queue
// or fair-share sub-queue), each running job gets a cancel request.
// Repeating it is harmless.
func (s *Service) DeleteTenant(ctx context.Context, tenant, reason string) (TenantDeletion, error) {
	var out TenantDeletion
	if tenant == "" {
		return out, fmt.Errorf("%w: tenant is required", ErrInvalid)
	}
	for _, st := range []job.State{job.Queued, job.Running} {
		cursor := ""
		for {
			p, err := s.cfg.Jobs.List(ctx, jobstore.Filter{Tenant: tenant, State: st, Limit: 500, Cursor: cursor})
			if err != nil {
				return out, err
			}
			for i := range p.Jobs {
				j := &p.Jobs[i]
				if st == job.Running {
					if err := s.cfg.Events.RequestCancel(ctx, j.ID); err != nil {
						return out, err
					}
					out.CancelRequested++
					out.Asked = append(out.Asked, j.ID)
					continue
				}
				res, err := s.life.Withdraw(ctx, j, reason)
				if errors.Is(err, jobstore.ErrConflict) {
					continue // a worker took it meanwhile: the running pass asks it to stop
				}
				if err != nil {
					return out, err
				}
				out.Canceled++
				// A worker that already took its queue entry skips it.
				if err := s.cfg.Events.RequestCancel(ctx, res.Job.ID); err != nil {
					s.log.WarnContext(ctx, "cancel request not recorded", "job_id", res.Job.ID, "err", err)
				}
			}
			if p.Next == "" {
				break
			}
			cursor = p.Next
		}
	}
	return out, nil
}

// Retry re-runs a tenant's failed or expired job: it goes back to queued with
// attempt+1 and is enqueued again. Any other state is a *jobstore.ConflictError.
func (s *Service) Retry(ctx context.Context, tenant, id string) (*job.Job, error) {
	j, err := s.cfg.Jobs.Get(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	return s.retry(ctx, j)
}

// Redrive re-runs the job of a dead letter, whatever its tenant (an
// operator's action): a failed or expired job is retried as by Retry; a job
// still queued (redriven already, or re-added by the reconciler) is enqueued
// again, which is idempotent per job id, so it runs once. Any other state
// (running, or finished otherwise) is a *jobstore.ConflictError; an unknown
// job is jobstore.ErrNotFound.
func (s *Service) Redrive(ctx context.Context, id string) (*job.Job, error) {
	j, err := s.cfg.Jobs.GetByID(ctx, id)
	if err != nil {
		return nil, err
	}
	if j.State == job.Queued {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), afterInsertTimeout)
		defer cancel()
		if _, err := s.cfg.Queue.Enqueue(rctx, queue.MessageOf(j)); err != nil {
			return j, err
		}
		return j, nil
	}
	return s.retry(ctx, j)
}

// retry queues a failed or expired job again (lifecycle.Retry) and enqueues
// it; a purged one is ErrPurged.
func (s *Service) retry(ctx context.Context, j *job.Job) (*job.Job, error) {
	if j.State != job.Failed && j.State != job.Expired {
		return j, &jobstore.ConflictError{ID: j.ID, Expected: job.Failed, Actual: j.State}
	}
	if j.PurgedAt != nil {
		return j, fmt.Errorf("retry job %s: %w", j.ID, ErrPurged)
	}
	// The retried job gets the time to live it was submitted with, from now.
	ttl := s.cfg.DefaultTTL
	if j.ExpiresAt != nil && j.ExpiresAt.After(j.CreatedAt) {
		ttl = j.ExpiresAt.Sub(j.CreatedAt)
	}
	out, err := s.life.Retry(ctx, j, ttl)
	if err != nil {
		return out.Job, err
	}
	if out.Queue.Verb == lifecycle.Enqueue {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), afterInsertTimeout)
		defer cancel()
		s.enqueue(rctx, out.Job)
	}
	return out.Job, nil
}

// validateInput checks input against the definition's schema; a schema-less
// algorithm accepts any JSON value.
func (s *Service) validateInput(def *algorithm.Definition, input json.RawMessage) error {
	if len(input) == 0 {
		return &InputError{Message: "input is required"}
	}
	sch, err := s.schemas.get(def)
	if err != nil {
		return fmt.Errorf("input schema of %s: %w", def.ID(), err)
	}
	if sch == nil {
		if !json.Valid(input) {
			return &InputError{Message: "input is not valid JSON"}
		}
		return nil
	}
	return validate(sch, input)
}

// jsonPointerEscaper escapes a JSON Pointer reference token (RFC 6901).
var jsonPointerEscaper = strings.NewReplacer("~", "~0", "/", "~1")
