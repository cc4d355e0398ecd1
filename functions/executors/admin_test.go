package executors

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/apispec"
	"github.com/aigw/aigw/internal/auth"
	"github.com/aigw/aigw/internal/auth/authtest"
	"github.com/aigw/aigw/internal/executorapi"
	"github.com/aigw/aigw/internal/testenv"
	"github.com/aigw/aigw/internal/testlog"
)

// TestAdminWithOperatorToken: an operator token (what the console's operator
// holds) creates, lists and revokes executor credentials as the admin token
// does; a tenant's token is refused; the list never shows a token.
func TestAdminWithOperatorToken(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	is := authtest.NewIssuer(t)
	v, err := auth.NewVerifier(is.VerifierConfig())
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(ctx, Deps{DB: testenv.MongoDB(t), Redis: testenv.Redis(t), AdminToken: adminToken, Verifier: v, Log: testlog.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(apispec.FunctionPrefix("executors")+"/", http.StripPrefix(apispec.FunctionPrefix("executors"), svc.Handler()))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	base := srv.URL + apispec.FunctionPrefix("executors")
	hc := &http.Client{Transport: apispec.Transport(t, nil)}
	pool := testenv.UniqueName(t, 40)

	tenant := executorapi.NewClient(base, is.Token(t, "acme", auth.ScopeJobsRead, auth.ScopeJobsWrite), hc)
	if _, err := tenant.Create(ctx, pool, "laptop-1"); executorapi.StatusOf(err) != http.StatusUnauthorized {
		t.Fatalf("a tenant's token creates an executor: %v", err)
	}
	op := executorapi.NewClient(base, is.Token(t, auth.OperatorTenant, auth.OperatorScopes()...), hc)
	cr, err := op.Create(ctx, pool, "laptop-1")
	if err != nil || cr.Token == "" {
		t.Fatalf("create with an operator token: %+v %v", cr, err)
	}
	list := func(token string) (int, credentialList) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/admin/executors", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out credentialList
		if resp.StatusCode == http.StatusOK {
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
				t.Fatal(err)
			}
		}
		return resp.StatusCode, out
	}
	if code, _ := list(is.Token(t, "acme", auth.ScopeJobsRead)); code != http.StatusUnauthorized {
		t.Errorf("a tenant lists executors: %d", code)
	}
	find := func(l credentialList) *Credential {
		for i := range l.Executors {
			if l.Executors[i].ID == cr.ID {
				return &l.Executors[i]
			}
		}
		return nil
	}
	code, l := list(adminToken)
	if got := find(l); code != http.StatusOK || got == nil || got.Pool != pool || got.Name != "laptop-1" || got.RevokedAt != nil || got.TokenHash != "" {
		t.Fatalf("list with the admin token: %d, %+v", code, got)
	}
	if err := op.Revoke(ctx, cr.ID); err != nil {
		t.Fatalf("revoke with an operator token: %v", err)
	}
	if code, l := list(is.Token(t, auth.OperatorTenant, auth.OperatorScopes()...)); code != http.StatusOK || find(l) == nil || find(l).RevokedAt == nil {
		t.Fatalf("list after the revoke: %d, %+v", code, find(l))
	}
	if _, err := executorapi.NewClient(base, cr.Token, hc).Register(ctx, executorapi.Register{Version: "test"}); executorapi.StatusOf(err) != http.StatusUnauthorized {
		t.Errorf("the revoked credential registers: %v", err)
	}
}
