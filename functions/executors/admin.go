package executors

import (
	"net/http"

	"github.com/aigw/aigw/internal/web"
)

// maxListed bounds GET /admin/executors.
const maxListed = 500

// credentialList is the answer of GET /admin/executors.
type credentialList struct {
	Executors []Credential `json:"executors"`
}

// handleList: GET /admin/executors → {"executors": [...]}, the credentials,
// newest first (revoked ones too, with revoked_at; never a token).
func (s *Service) handleList(w http.ResponseWriter, r *http.Request) error {
	cs, err := s.creds.List(r.Context(), maxListed)
	if err != nil {
		return web.Unavailable(web.RetryAfter, err)
	}
	web.WriteJSON(w, http.StatusOK, credentialList{Executors: cs})
	return nil
}
