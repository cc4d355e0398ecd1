package router

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/web"
)

// algorithmView is an algorithm in the catalog: its latest (or asked for)
// version and every registered version. How it runs (runtime, env) is for
// admins and stays out of the catalog.
type algorithmView struct {
	Name        string              `json:"name"`
	Version     string              `json:"version"`
	Versions    []string            `json:"versions"`
	Description string              `json:"description,omitempty"`
	Pool        string              `json:"pool"`
	Resources   algorithm.Resources `json:"resources"`
	TimeoutMS   int64               `json:"timeout_ms"`
	MaxRetries  int                 `json:"max_retries"`
	InputSchema json.RawMessage     `json:"input_schema,omitempty"`
	CreatedAt   time.Time           `json:"created_at"`
	UpdatedAt   time.Time           `json:"updated_at"`
}

func viewOf(d *algorithm.Definition, versions []string) algorithmView {
	return algorithmView{
		Name: d.Name, Version: d.Version, Versions: versions, Description: d.Description,
		Pool: d.Pool, Resources: d.Resources, TimeoutMS: d.Timeout().Milliseconds(), MaxRetries: d.Retries(),
		InputSchema: d.InputSchema, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt,
	}
}

// listAlgorithms: GET /v1/algorithms → {"algorithms": [...]}, by name.
func (a *api) listAlgorithms(w http.ResponseWriter, r *http.Request) error {
	defs, err := a.Catalog.List(r.Context())
	if err != nil {
		return err
	}
	out := []algorithmView{}
	// defs come sorted by name, then version (lowest first).
	for i := 0; i < len(defs); {
		j := i
		var versions []string
		for ; j < len(defs) && defs[j].Name == defs[i].Name; j++ {
			versions = append(versions, defs[j].Version)
		}
		out = append(out, viewOf(&defs[j-1], versions))
		i = j
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"algorithms": out})
	return nil
}

// getAlgorithm: GET /v1/algorithms/{name}[?version=v] → its latest (or the
// given) version.
func (a *api) getAlgorithm(w http.ResponseWriter, r *http.Request) error {
	name := chi.URLParam(r, "name")
	if !algorithm.ValidName(name) {
		return web.NotFound("no algorithm %q", name)
	}
	defs, err := a.Catalog.Versions(r.Context(), name)
	if err != nil {
		return err
	}
	if len(defs) == 0 {
		return web.NotFound("no algorithm %q", name)
	}
	versions := make([]string, len(defs))
	for i := range defs {
		versions[i] = defs[i].Version
	}
	d := &defs[len(defs)-1]
	if v := r.URL.Query().Get("version"); v != "" {
		if d, err = a.Catalog.Get(r.Context(), name, v); err != nil {
			return err
		}
	}
	web.WriteJSON(w, http.StatusOK, viewOf(d, versions))
	return nil
}

// putAlgorithm: PUT /v1/algorithms/{name} registers a definition (one
// version); 201 when new, 200 when it replaced the same version. The body's
// name may be left out; if given it must match the path. The pool is
// recorded first, so a failure leaves no definition behind.
func (a *api) putAlgorithm(w http.ResponseWriter, r *http.Request) error {
	name := chi.URLParam(r, "name")
	var d algorithm.Definition
	if err := web.DecodeJSON(w, r, a.BodyLimit, &d); err != nil {
		return err
	}
	switch {
	case d.Name == "":
		d.Name = name
	case d.Name != name:
		return web.BadRequest("name %q in the body does not match %q in the path", d.Name, name)
	}
	if err := d.Validate(); err != nil {
		return err
	}
	if err := a.Pools.AddPool(r.Context(), d.Pool); err != nil {
		return web.Unavailable(web.RetryAfter, err)
	}
	stored, created, err := a.Catalog.Put(r.Context(), d)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		w.Header().Set("Location", a.location(r, "/v1/algorithms/"+stored.Name))
	}
	web.WriteJSON(w, status, stored)
	return nil
}
