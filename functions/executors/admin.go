package executors

import (
	"context"
	"log/slog"
	"net/http"
	"strings"

	"github.com/aigw/aigw/internal/auth"
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

// operator is true when r carries an operator token (the auth function's
// POST /admin/token: auth.OperatorTenant with the operator scope), verified
// like every token: the console's operator holds one, never the admin token.
func operator(ctx context.Context, v *auth.Verifier, log *slog.Logger, r *http.Request) bool {
	got, ok := bearer(r)
	if v == nil || !ok || strings.Count(got, ".") != 2 {
		return false
	}
	c, err := v.Verify(ctx, got)
	if err != nil {
		log.DebugContext(ctx, "operator token refused", "err", err)
		return false
	}
	return c.Tenant == auth.OperatorTenant && c.HasScope(auth.ScopeAlgorithmsAdmin)
}
