package console

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/auth"
	"github.com/aigw/aigw/internal/auth/authtest"
	"github.com/aigw/aigw/internal/testlog"
)

// gateway stands in for the OpenFaaS gateway in front of the API functions:
// the auth function's token endpoints (tokens signed by a real issuer) and a
// router that records what reaches it.
type gateway struct {
	*httptest.Server
	mu   sync.Mutex
	seen []*http.Request
}

func newGateway(t *testing.T, is *authtest.Issuer, ttl time.Duration) *gateway {
	g := &gateway{}
	mux := http.NewServeMux()
	token := func(w http.ResponseWriter, tok string) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": int(ttl / time.Second)})
	}
	mux.HandleFunc("POST /function/auth/oauth/token", func(w http.ResponseWriter, r *http.Request) {
		id, secret, ok := r.BasicAuth()
		if !ok || id != "cl_1" || secret != "s3cret" || r.FormValue("grant_type") != "client_credentials" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":"invalid_client"}`)
			return
		}
		c := is.Claims("acme", auth.ScopeJobsRead, auth.ScopeJobsWrite)
		c.ExpiresAt.Time = time.Now().Add(ttl)
		token(w, is.Sign(t, c))
	})
	mux.HandleFunc("POST /function/auth/admin/token", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer admin-token" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		token(w, is.Token(t, auth.OperatorTenant, auth.ScopeAlgorithmsAdmin, auth.ScopeJobsRead))
	})
	record := func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		g.seen = append(g.seen, r.Clone(r.Context()))
		g.mu.Unlock()
		if r.URL.Path == "/function/router/v1/jobs/refused" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":{"code":"unauthorized","message":"the access token is invalid or expired"}}`)
			return
		}
		w.Header().Set("Set-Cookie", "upstream=1")
		_, _ = io.WriteString(w, `{"ok":true}`)
	}
	mux.HandleFunc("/function/router/", record)
	mux.HandleFunc("/function/executors/", record)
	g.Server = httptest.NewServer(mux)
	t.Cleanup(g.Close)
	return g
}

func (g *gateway) last() *http.Request {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.seen) == 0 {
		return nil
	}
	return g.seen[len(g.seen)-1]
}

type browser struct {
	t    *testing.T
	base string
	c    *http.Client
}

func setup(t *testing.T, ttl time.Duration, now ...func() time.Time) (*browser, *gateway) {
	t.Helper()
	is := authtest.NewIssuer(t)
	g := newGateway(t, is, ttl)
	d := Deps{Config: Config{Upstream: g.URL, PublicPath: "/function/console"}, Log: testlog.New(t)}
	if len(now) > 0 {
		d.Now = now[0]
	}
	h, err := New(d)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: srv.URL, c: &http.Client{Jar: jar}}, g
}

func (b *browser) do(method, path, body string, header ...string) (*http.Response, string) {
	b.t.Helper()
	req, err := http.NewRequest(method, b.base+path, strings.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, string(raw)
}

func sessionCookie(resp *http.Response) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == CookieName {
			return c
		}
	}
	return nil
}

// TestSessionCookieAndProxy: signing in sets the token as an HttpOnly,
// SameSite=Strict cookie on the console's path that lives as long as the
// token; the proxy swaps it for a bearer token and strips the browser's
// cookies, and the API's own cookies never reach the browser.
func TestSessionCookieAndProxy(t *testing.T) {
	t.Parallel()
	b, g := setup(t, 15*time.Minute)
	if resp, _ := b.do("GET", "/api/router/v1/jobs", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("API call without a session: %d", resp.StatusCode)
	}
	if resp, _ := b.do("POST", "/session", `{"client_id":"cl_1","client_secret":"wrong"}`, HeaderCSRF, "1"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("sign-in with a wrong secret: %d", resp.StatusCode)
	}
	resp, body := b.do("POST", "/session", `{"client_id":"cl_1","client_secret":"s3cret"}`, HeaderCSRF, "1")
	c := sessionCookie(resp)
	if resp.StatusCode != http.StatusOK || c == nil || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/function/console" ||
		c.MaxAge != 900 || c.Secure {
		t.Fatalf("sign-in: %d %s, cookie %+v", resp.StatusCode, body, c)
	}
	var s Session
	if err := json.Unmarshal([]byte(body), &s); err != nil || s.Tenant != "acme" || s.Operator {
		t.Fatalf("session %s: %v", body, err)
	}
	// The cookie jar keys cookies by path: call through the console's path as the gateway would.
	b.c.Jar.SetCookies(mustURL(t, b.base+"/"), []*http.Cookie{{Name: CookieName, Value: c.Value, Path: "/"}})

	resp, body = b.do("GET", "/api/router/v1/jobs?state=queued", "", "Cookie", "other=1")
	got := g.last()
	if resp.StatusCode != http.StatusOK || got == nil || got.URL.Path != "/function/router/v1/jobs" || got.URL.RawQuery != "state=queued" ||
		got.Header.Get("Authorization") != "Bearer "+c.Value || got.Header.Get("Cookie") != "" || got.Header.Get("X-Forwarded-Prefix") != "" {
		t.Fatalf("proxied: %d %s; upstream saw %+v", resp.StatusCode, body, got)
	}
	if sessionCookie(resp) != nil || len(resp.Header.Values("Set-Cookie")) != 0 {
		t.Errorf("the API's cookies reach the browser: %v", resp.Header.Values("Set-Cookie"))
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("proxied answer Cache-Control %q", resp.Header.Get("Cache-Control"))
	}

	// The API refusing the token ends the session.
	resp, _ = b.do("GET", "/api/router/v1/jobs/refused", "")
	if c := sessionCookie(resp); resp.StatusCode != http.StatusUnauthorized || c == nil || c.MaxAge >= 0 {
		t.Fatalf("refused token: %d, cookie %+v", resp.StatusCode, c)
	}
}

// TestCSRFAndPaths: changes need the console's header and a same-origin
// request; only the API's paths are proxied.
func TestCSRFAndPaths(t *testing.T) {
	t.Parallel()
	b, g := setup(t, 15*time.Minute)
	if resp, _ := b.do("POST", "/session", `{"client_id":"cl_1","client_secret":"s3cret"}`); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("sign-in without %s: %d", HeaderCSRF, resp.StatusCode)
	}
	resp, _ := b.do("POST", "/session", `{"admin_token":"admin-token"}`, HeaderCSRF, "1")
	c := sessionCookie(resp)
	if resp.StatusCode != http.StatusOK || c == nil {
		t.Fatalf("operator sign-in: %d", resp.StatusCode)
	}
	b.c.Jar.SetCookies(mustURL(t, b.base+"/"), []*http.Cookie{{Name: CookieName, Value: c.Value, Path: "/"}})
	n := len(g.seen)
	for name, hdr := range map[string][]string{
		"no header":          nil,
		"cross-site request": {HeaderCSRF, "1", "Sec-Fetch-Site", "cross-site"},
	} {
		if resp, _ := b.do("POST", "/api/router/v1/jobs/x/cancel", "", hdr...); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", name, resp.StatusCode)
		}
	}
	for _, p := range []string{"/api/auth/oauth/token", "/api/auth/admin/token", "/api/gateway/system/functions", "/api/router/_/health", "/api/router/v1/../_/health",
		"/api/executors/v1/executor/claim", "/api/executors/_/health"} {
		if resp, _ := b.do("POST", p, "", HeaderCSRF, "1"); resp.StatusCode != http.StatusNotFound {
			t.Errorf("POST %s: %d, want 404", p, resp.StatusCode)
		}
	}
	if len(g.seen) != n {
		t.Errorf("refused requests reached the API: %d", len(g.seen)-n)
	}
	if resp, _ := b.do("POST", "/api/router/v1/jobs/x/cancel", "", HeaderCSRF, "1", "Sec-Fetch-Site", "same-origin"); resp.StatusCode != http.StatusOK {
		t.Errorf("same-origin change: %d", resp.StatusCode)
	}
	// The executors function's admin API (an operator's token, as any call).
	resp, _ = b.do("DELETE", "/api/executors/admin/executors/ex1", "", HeaderCSRF, "1")
	if got := g.last(); resp.StatusCode != http.StatusOK || got == nil || got.URL.Path != "/function/executors/admin/executors/ex1" ||
		got.Method != "DELETE" || got.Header.Get("Authorization") != "Bearer "+c.Value {
		t.Errorf("revoke an executor through the console: %d, upstream saw %+v", resp.StatusCode, got)
	}
}

// TestExpiredSession: a session whose token has expired is no session, and
// nothing reaches the API with it.
func TestExpiredSession(t *testing.T) {
	t.Parallel()
	var skew atomic.Int64 // the console's clock runs ahead by this
	b, g := setup(t, time.Minute, func() time.Time { return time.Now().Add(time.Duration(skew.Load())) })
	resp, _ := b.do("POST", "/session", `{"client_id":"cl_1","client_secret":"s3cret"}`, HeaderCSRF, "1")
	c := sessionCookie(resp)
	if c == nil {
		t.Fatal("no session cookie")
	}
	// The browser would drop it after Max-Age; a stale copy still comes back here.
	b.c.Jar.SetCookies(mustURL(t, b.base+"/"), []*http.Cookie{{Name: CookieName, Value: c.Value, Path: "/"}})
	skew.Store(int64(time.Minute + time.Second))
	if resp, body := b.do("GET", "/session", ""); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "session_expired") {
		t.Fatalf("GET /session after expiry: %d %s", resp.StatusCode, body)
	}
	if resp, _ := b.do("GET", "/api/router/v1/jobs", ""); resp.StatusCode != http.StatusUnauthorized || g.last() != nil {
		t.Fatalf("API call after expiry: %d (upstream saw %v)", resp.StatusCode, g.last())
	}
}

// TestPages: the page names its base from the console's path, and every
// answer carries the security headers.
func TestPages(t *testing.T) {
	t.Parallel()
	b, _ := setup(t, time.Minute)
	resp, body := b.do("GET", "/", "")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `<base href="/function/console/">`) {
		t.Fatalf("index: %d %s", resp.StatusCode, body)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP %q", csp)
	}
	for _, p := range []string{"/app.js", "/app.css", "/favicon.svg"} {
		if resp, _ := b.do("GET", p, ""); resp.StatusCode != http.StatusOK || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
