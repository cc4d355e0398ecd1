package executors

import (
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/aigw/aigw/internal/inputfiles"
	"github.com/aigw/aigw/internal/objstore"
	"github.com/aigw/aigw/internal/uploads"
	"github.com/aigw/aigw/internal/web"
)

// handleFile streams one upload that a held attempt's input refers to
// ({"$file": "<upload id>"}) from the object store: an executor reads the
// input files of the jobs it holds, and no other, through this function
// (it reaches neither the object store nor its credentials).
func (s *Service) handleFile(w http.ResponseWriter, r *http.Request, x *executor) error {
	h, err := s.heldOf(r, x)
	if err != nil {
		return err
	}
	upload := r.PathValue("upload")
	refs, err := inputfiles.Find(h.j.Input)
	if err != nil {
		return web.Errorf(http.StatusUnprocessableEntity, "invalid_input", "job %s: %v", h.j.ID, err)
	}
	referred := false
	for _, ref := range refs {
		referred = referred || ref.Upload != "" && ref.Upload == upload
	}
	if !referred {
		return web.Forbidden("the input of job %s refers to no upload %q", h.j.ID, upload)
	}
	if s.d.Objects == nil {
		return web.Errorf(http.StatusNotImplemented, "", "this deployment has no object store (AIGW_S3_ENDPOINT): uploads cannot be read")
	}
	body, size, err := s.d.Objects.Get(r.Context(), uploads.Key(h.j.Tenant, upload))
	if errors.Is(err, objstore.ErrNotFound) {
		return web.NotFound("upload %s was never uploaded", upload)
	}
	if err != nil {
		return web.Unavailable(web.RetryAfter, err)
	}
	defer body.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	if size >= 0 {
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	}
	w.WriteHeader(http.StatusOK)
	// A copy cut short shows as a short body: the executor checks size and
	// SHA-256 and retries.
	_, _ = io.Copy(w, body)
	return nil
}
