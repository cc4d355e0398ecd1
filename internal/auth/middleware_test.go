package auth_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aigw/aigw/internal/auth"
	"github.com/aigw/aigw/internal/auth/authtest"
)

type apiError struct {
	Error struct{ Code, Message string }
}

func call(t *testing.T, h http.Handler, authz string) (*http.Response, apiError, string) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/v1/jobs", nil)
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var e apiError
	if resp.StatusCode >= 400 {
		if err := json.Unmarshal(body, &e); err != nil {
			t.Fatalf("error body %q: %v", body, err)
		}
	}
	return resp, e, string(body)
}

func TestMiddleware(t *testing.T) {
	t.Parallel()
	is := authtest.NewIssuer(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	v := newVerifier(t, is.VerifierConfig())
	h := auth.Middleware(v, log)(auth.Require(auth.ScopeJobsRead)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := auth.FromContext(r.Context())
		if !ok {
			t.Error("no claims in the handler's context")
			return
		}
		_, _ = io.WriteString(w, "tenant="+c.Tenant)
	})))

	resp, _, body := call(t, h, "Bearer "+is.Token(t, "acme", auth.ScopeJobsRead))
	if resp.StatusCode != http.StatusOK || body != "tenant=acme" {
		t.Errorf("valid token: %d %q", resp.StatusCode, body)
	}
	resp, _, body = call(t, h, "bearer "+is.Token(t, "acme", auth.ScopeJobsRead))
	if resp.StatusCode != http.StatusOK {
		t.Errorf("lower-case scheme: %d %q", resp.StatusCode, body)
	}

	for name, authz := range map[string]string{
		"no header":     "",
		"basic":         "Basic YWxhZGRpbjpvcGVuc2VzYW1l",
		"empty bearer":  "Bearer ",
		"invalid token": "Bearer not.a.token",
		"foreign key":   "Bearer " + authtest.SignWith(t, authtest.NewKey(t), is.Claims("acme", auth.ScopeJobsRead)),
	} {
		t.Run(name, func(t *testing.T) {
			resp, e, _ := call(t, h, authz)
			if resp.StatusCode != http.StatusUnauthorized || e.Error.Code != "unauthorized" || e.Error.Message == "" {
				t.Errorf("got %d %+v", resp.StatusCode, e)
			}
			if wa := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(wa, "Bearer ") || !strings.Contains(wa, `error="invalid_token"`) {
				t.Errorf("WWW-Authenticate = %q", wa)
			}
		})
	}

	resp, e, _ := call(t, h, "Bearer "+is.Token(t, "acme", auth.ScopeJobsWrite))
	if resp.StatusCode != http.StatusForbidden || e.Error.Code != "forbidden" || !strings.Contains(e.Error.Message, auth.ScopeJobsRead) {
		t.Errorf("missing scope: %d %+v", resp.StatusCode, e)
	}
	if wa := resp.Header.Get("WWW-Authenticate"); !strings.Contains(wa, `error="insufficient_scope"`) {
		t.Errorf("missing scope: WWW-Authenticate = %q", wa)
	}
}

func TestMiddlewareJWKSUnreachable(t *testing.T) {
	t.Parallel()
	is := authtest.NewIssuer(t)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	cfg := is.VerifierConfig()
	cfg.JWKSURL = closed.URL
	h := auth.Middleware(newVerifier(t, cfg), slog.New(slog.NewTextHandler(io.Discard, nil)))(http.NotFoundHandler())
	resp, e, _ := call(t, h, "Bearer "+is.Token(t, "acme"))
	if resp.StatusCode != http.StatusServiceUnavailable || e.Error.Code != "unavailable" || resp.Header.Get("Retry-After") == "" {
		t.Errorf("got %d %+v Retry-After=%q", resp.StatusCode, e, resp.Header.Get("Retry-After"))
	}
}

func TestRequireWithoutMiddleware(t *testing.T) {
	t.Parallel()
	h := auth.Require(auth.ScopeJobsRead)(http.NotFoundHandler())
	resp, e, _ := call(t, h, "")
	if resp.StatusCode != http.StatusUnauthorized || e.Error.Code != "unauthorized" {
		t.Errorf("got %d %+v", resp.StatusCode, e)
	}
}

// TestAdminOrOperator: the admin token (any case of the scheme) or, with a
// verifier, an operator token passes; a tenant's token, an operator token
// without a verifier, a wrong or empty token, and any token when no admin
// token is configured do not.
func TestAdminOrOperator(t *testing.T) {
	t.Parallel()
	is := authtest.NewIssuer(t)
	v, err := auth.NewVerifier(is.VerifierConfig())
	if err != nil {
		t.Fatal(err)
	}
	op := is.Token(t, auth.OperatorTenant, auth.ScopeAlgorithmsAdmin)
	for _, c := range []struct {
		name, admin, authz string
		v                  *auth.Verifier
		want               bool
	}{
		{"admin token", "s3cret", "Bearer s3cret", nil, true},
		{"scheme in lower case", "s3cret", "bearer s3cret", nil, true},
		{"wrong token", "s3cret", "Bearer s3cre", nil, false},
		{"no header", "s3cret", "", nil, false},
		{"empty token", "", "Bearer ", nil, false},
		{"basic scheme", "s3cret", "Basic s3cret", nil, false},
		{"operator token", "s3cret", "Bearer " + op, v, true},
		{"operator token without a verifier", "s3cret", "Bearer " + op, nil, false},
		{"a tenant's token", "s3cret", "Bearer " + is.Token(t, "acme", auth.ScopeAlgorithmsAdmin), v, false},
		{"operator without the scope", "s3cret", "Bearer " + is.Token(t, auth.OperatorTenant, auth.ScopeJobsRead), v, false},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if c.authz != "" {
			r.Header.Set("Authorization", c.authz)
		}
		if got := auth.AdminOrOperator(r, c.admin, c.v); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
