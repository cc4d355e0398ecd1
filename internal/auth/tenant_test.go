package auth_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/aigw/aigw/internal/auth"
	"github.com/aigw/aigw/internal/web"
)

func TestTenant(t *testing.T) {
	t.Parallel()
	bare := httptest.NewRequest(http.MethodGet, "/v1/jobs", nil)
	for name, tc := range map[string]struct {
		r      *http.Request
		tenant string
		status int
	}{
		"no token":  {bare, "", http.StatusUnauthorized},
		"no tenant": {bare.WithContext(auth.WithClaims(bare.Context(), &auth.Claims{})), "", http.StatusUnauthorized},
		"tenant":    {bare.WithContext(auth.WithClaims(bare.Context(), &auth.Claims{Tenant: "acme"})), "acme", 0},
	} {
		got, err := auth.Tenant(tc.r)
		var we *web.Error
		switch {
		case tc.status == 0 && (err != nil || got != tc.tenant):
			t.Errorf("%s: %q, %v; want %q", name, got, err, tc.tenant)
		case tc.status != 0 && (!errors.As(err, &we) || we.Status != tc.status || we.Code != "unauthorized" || got != ""):
			t.Errorf("%s: %q, %v; want %d unauthorized", name, got, err, tc.status)
		}
	}
}
