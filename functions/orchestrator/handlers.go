package orchestrator

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/auth"
	"github.com/aigw/aigw/internal/pipeline"
	"github.com/aigw/aigw/internal/web"
)

// handle is web.Handle with the errors of the stores translated by apiError
// first: every route of the function answers through it, so an outage is a 503
// with Retry-After wherever it happens.
func handle(log *slog.Logger, h web.HandlerFunc) http.Handler {
	return web.Handle(log, func(w http.ResponseWriter, r *http.Request) error {
		return apiError(h(w, r))
	})
}

// requireAdmin lets a request through only with `Authorization: Bearer
// <admin token>` or, when v is not nil, an operator token (the auth function's
// POST /admin/token: auth.OperatorTenant with the operator scope), verified
// like every token: the console's admin holds one, never the admin token.
func requireAdmin(token string, v *auth.Verifier, log *slog.Logger, next web.HandlerFunc) http.Handler {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		if !auth.AdminOrOperator(r, token, v) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="aigw-admin"`)
			return web.Unauthorized("send the admin token: Authorization: Bearer <aigw-admin-token>")
		}
		return next(w, r)
	})
}

func (s *Service) handleTick(w http.ResponseWriter, r *http.Request) error {
	sum, err := s.ticker.Tick(r.Context())
	if err != nil {
		return web.Unavailable(web.RetryAfter, err)
	}
	web.WriteJSON(w, http.StatusOK, sum)
	return nil
}

type secretResponse struct {
	Tenant string `json:"tenant"`
	Secret string `json:"secret"`
}

func (s *Service) handleGetSecret(w http.ResponseWriter, r *http.Request) error {
	tenant := r.PathValue("tenant")
	secret, err := s.webhooks.Secret(r.Context(), tenant)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, secretResponse{Tenant: tenant, Secret: secret})
	return nil
}

func (s *Service) handleRotateSecret(w http.ResponseWriter, r *http.Request) error {
	tenant := r.PathValue("tenant")
	secret, err := s.webhooks.RotateSecret(r.Context(), tenant)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, secretResponse{Tenant: tenant, Secret: secret})
	return nil
}

// apiError turns store errors into API errors; an *web.Error passes as is, and
// anything else is left to web.Handle (503 for an outage, else a logged 500).
func apiError(err error) error {
	var we *web.Error
	switch {
	case err == nil || errors.As(err, &we):
		return err
	case errors.Is(err, pipeline.ErrNotFound):
		return web.NotFound("%v", err)
	case errors.Is(err, pipeline.ErrFinished):
		return web.Conflict("%v", err)
	}
	return err
}

func (s *Service) handlePutPipeline(w http.ResponseWriter, r *http.Request) error {
	t, err := auth.Tenant(r)
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	if !pipeline.ValidName(name) {
		return web.BadRequest("pipeline name %q: want 1-63 characters, a lowercase letter then lowercase letters, digits, _ or -", name)
	}
	var d pipeline.Definition
	if err := web.DecodeJSON(w, r, 0, &d); err != nil {
		return err
	}
	if err := d.Validate(); err != nil {
		return web.Errorf(http.StatusUnprocessableEntity, "invalid_pipeline", "%v", err)
	}
	for _, st := range d.Steps {
		_, err := s.algorithms.Get(r.Context(), st.Algorithm, st.Version)
		if errors.Is(err, algorithm.ErrNotFound) {
			return web.Errorf(http.StatusUnprocessableEntity, "invalid_pipeline", "step %q: %v", st.Name, err)
		}
		if err != nil {
			return err
		}
	}
	p, created, err := s.pipelines.Put(r.Context(), t, name, d)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	web.WriteJSON(w, status, p)
	return nil
}

func (s *Service) handleGetPipeline(w http.ResponseWriter, r *http.Request) error {
	t, err := auth.Tenant(r)
	if err != nil {
		return err
	}
	p, err := s.pipelines.Get(r.Context(), t, r.PathValue("name"))
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, p)
	return nil
}

func (s *Service) handleListPipelines(w http.ResponseWriter, r *http.Request) error {
	t, err := auth.Tenant(r)
	if err != nil {
		return err
	}
	ps, err := s.pipelines.List(r.Context(), t)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, struct {
		Pipelines []pipeline.Pipeline `json:"pipelines"`
	}{ps})
	return nil
}

func (s *Service) handleStartRun(w http.ResponseWriter, r *http.Request) error {
	t, err := auth.Tenant(r)
	if err != nil {
		return err
	}
	var body struct {
		Input json.RawMessage `json:"input"`
	}
	if r.ContentLength != 0 {
		if err := web.DecodeJSON(w, r, 0, &body); err != nil {
			return err
		}
	}
	run, err := s.engine.Start(r.Context(), t, r.PathValue("name"), body.Input)
	if err != nil {
		return err
	}
	w.Header().Set("Location", r.URL.Path+"/"+run.ID)
	web.WriteJSON(w, http.StatusCreated, run)
	return nil
}

func (s *Service) handleGetRun(w http.ResponseWriter, r *http.Request) error {
	t, err := auth.Tenant(r)
	if err != nil {
		return err
	}
	run, err := s.pipelines.GetRun(r.Context(), t, r.PathValue("name"), r.PathValue("id"))
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, run)
	return nil
}

func (s *Service) handleCancelRun(w http.ResponseWriter, r *http.Request) error {
	t, err := auth.Tenant(r)
	if err != nil {
		return err
	}
	run, err := s.engine.Cancel(r.Context(), t, r.PathValue("name"), r.PathValue("id"))
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, run)
	return nil
}
