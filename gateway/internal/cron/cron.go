// Package cron invokes functions on a schedule, as OpenFaaS's cron-connector
// does: a function annotated `topic: cron-function` and `schedule: "<cron
// expression>"` is invoked with POST and an empty body, at the path of its
// `aigw.path` annotation (default "/"). A function annotated
// `aigw.auth-secret: <secret name>` is sent `Authorization: Bearer <that
// secret's value>` (the orchestrator's /tick wants its admin token).
package cron

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/openfaas/faas-provider/types"
	robfig "github.com/robfig/cron/v3"
)

// Annotations read from a function.
const (
	AnnotationTopic    = "topic"
	TopicCron          = "cron-function"
	AnnotationSchedule = "schedule"
	AnnotationPath     = "aigw.path"
	AnnotationAuth     = "aigw.auth-secret"
)

// Secrets reads a secret's value (the gateway's secret store).
type Secrets interface {
	Read(name string) ([]byte, error)
}

// Invoker calls a function (proxy.Proxy).
type Invoker interface {
	Invoke(ctx context.Context, name string, req *http.Request) (*http.Response, error)
}

// Job is one scheduled invocation.
type Job struct {
	Function string
	Schedule string
	Path     string
	// AuthSecret names the secret sent as a bearer token ("" for none).
	AuthSecret string
}

// JobFor returns the cron job a function asks for, false if none; a bad
// schedule is an error.
func JobFor(fn types.FunctionStatus) (Job, bool, error) {
	if fn.Annotations == nil {
		return Job{}, false, nil
	}
	a := *fn.Annotations
	if a[AnnotationTopic] != TopicCron {
		return Job{}, false, nil
	}
	j := Job{Function: fn.Name, Schedule: strings.TrimSpace(a[AnnotationSchedule]), Path: a[AnnotationPath],
		AuthSecret: strings.TrimSpace(a[AnnotationAuth])}
	if _, err := parser.Parse(j.Schedule); err != nil {
		return Job{}, false, fmt.Errorf("function %s: schedule %q: %w", fn.Name, j.Schedule, err)
	}
	if j.Path == "" {
		j.Path = "/"
	}
	if !strings.HasPrefix(j.Path, "/") {
		j.Path = "/" + j.Path
	}
	return j, true, nil
}

var parser = robfig.NewParser(robfig.Minute | robfig.Hour | robfig.Dom | robfig.Month | robfig.Dow | robfig.Descriptor)

// Scheduler runs the jobs of the deployed functions.
type Scheduler struct {
	inv     Invoker
	secrets Secrets
	log     *slog.Logger
	ctx     context.Context
	cron    *robfig.Cron

	mu   sync.Mutex
	jobs map[string]entry
}

type entry struct {
	job Job
	id  robfig.EntryID
}

// New returns a scheduler whose invocations use ctx; Start runs it. secrets
// may be nil when no function asks for an auth secret.
func New(ctx context.Context, inv Invoker, secrets Secrets, log *slog.Logger, opts ...robfig.Option) *Scheduler {
	return &Scheduler{
		inv: inv, secrets: secrets, log: log, ctx: ctx, jobs: map[string]entry{},
		cron: robfig.New(append([]robfig.Option{robfig.WithParser(parser)}, opts...)...),
	}
}

// Start starts the schedule.
func (s *Scheduler) Start() { s.cron.Start() }

// Stop stops the schedule and waits for running invocations.
func (s *Scheduler) Stop() { <-s.cron.Stop().Done() }

// Sync makes the schedule match the functions: jobs added, changed, removed.
func (s *Scheduler) Sync(fns []types.FunctionStatus) {
	want := map[string]Job{}
	for _, fn := range fns {
		j, ok, err := JobFor(fn)
		if err != nil {
			s.log.Warn("cron: ignoring a function's schedule", "function", fn.Name, "err", err)
			continue
		}
		if ok {
			want[fn.Name] = j
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, e := range s.jobs {
		if j, ok := want[name]; !ok || j != e.job {
			s.cron.Remove(e.id)
			delete(s.jobs, name)
		}
	}
	for name, j := range want {
		if _, ok := s.jobs[name]; ok {
			continue
		}
		id, err := s.cron.AddFunc(j.Schedule, func() { s.fire(j) })
		if err != nil {
			s.log.Warn("cron: scheduling", "function", name, "err", err)
			continue
		}
		s.jobs[name] = entry{job: j, id: id}
		s.log.Info("cron: scheduled", "function", name, "schedule", j.Schedule, "path", j.Path)
	}
}

// Jobs returns the scheduled jobs.
func (s *Scheduler) Jobs() []Job {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Job, 0, len(s.jobs))
	for _, e := range s.jobs {
		out = append(out, e.job)
	}
	return out
}

func (s *Scheduler) fire(j Job) {
	req, err := http.NewRequestWithContext(s.ctx, http.MethodPost, "http://function"+j.Path, http.NoBody)
	if err != nil {
		s.log.Warn("cron: building the request", "function", j.Function, "err", err)
		return
	}
	req.Header.Set("X-Connector", "cron-connector")
	req.Header.Set("X-Topic", TopicCron)
	if j.AuthSecret != "" {
		if s.secrets == nil {
			s.log.Warn("cron: no secret store for the auth secret", "function", j.Function, "secret", j.AuthSecret)
			return
		}
		tok, err := s.secrets.Read(j.AuthSecret)
		if err != nil {
			s.log.Warn("cron: reading the auth secret", "function", j.Function, "secret", j.AuthSecret, "err", err)
			return
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	}
	res, err := s.inv.Invoke(s.ctx, j.Function, req)
	if err != nil {
		s.log.Warn("cron: invocation failed", "function", j.Function, "err", err)
		return
	}
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	s.log.Info("cron: invoked", "function", j.Function, "path", j.Path, "status", res.StatusCode)
}
