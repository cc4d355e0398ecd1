package authfn_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/aigw/aigw/functions/authfn"
	"github.com/aigw/aigw/functions/authfn/clients"
	"github.com/aigw/aigw/internal/apispec"
	jwtauth "github.com/aigw/aigw/internal/auth"
	"github.com/aigw/aigw/internal/fnserve"
	"github.com/aigw/aigw/internal/testenv"
	"github.com/aigw/aigw/internal/testlog"
)

const (
	testIssuer   = "aigw-test"
	testAudience = "aigw-api"
	adminToken   = "admin-token-0123456789abcdef"
)

func newKey(t *testing.T) jwtauth.Key {
	t.Helper()
	pem, err := authfn.GenerateKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	k, err := jwtauth.ParsePrivateKeyPEM(pem)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// server is a running auth function on a real listener.
type server struct {
	URL   string
	Store *clients.Store
}

// startServer serves the auth function with keys on store.
func startServer(t *testing.T, store *clients.Store, keys ...jwtauth.Key) *server {
	t.Helper()
	log := testlog.AtLevel(t, slog.LevelInfo)
	h, err := authfn.NewHandler(authfn.Deps{Log: log, Clients: store, Keys: keys, AdminToken: adminToken,
		Config: authfn.Config{Issuer: testIssuer, Audience: testAudience, TokenTTL: 15 * time.Minute, MongoDB: "unused"}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fnserve.ServeListener(ctx, log, fnserve.Config{ShutdownGrace: 2 * time.Second}, ln, h) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return &server{URL: "http://" + ln.Addr().String(), Store: store}
}

func setup(t *testing.T) *server {
	t.Helper()
	db := testenv.MongoDB(t)
	store, err := clients.NewStore(t.Context(), db, nil)
	if err != nil {
		t.Fatal(err)
	}
	return startServer(t, store, newKey(t))
}

type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("body %q: %v", r.Body, err)
	}
}

func do(t *testing.T, method, u string, header map[string]string, body []byte) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	// Every exchange is checked against the OpenAPI document.
	resp, err := (&http.Client{Transport: apispec.Transport(t, nil)}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

func adminJSON(t *testing.T, s *server, method, path string, v any) response {
	t.Helper()
	var body []byte
	h := map[string]string{"Authorization": "Bearer " + adminToken}
	if v != nil {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		body, h["Content-Type"] = b, "application/json"
	}
	return do(t, method, s.URL+path, h, body)
}

type created struct {
	ClientID     string   `json:"client_id"`
	ClientSecret string   `json:"client_secret"`
	Tenant       string   `json:"tenant"`
	Scopes       []string `json:"scopes"`
}

func createClient(t *testing.T, s *server, tenant string, scopes ...string) created {
	t.Helper()
	r := adminJSON(t, s, http.MethodPost, "/admin/clients", map[string]any{"name": "test client", "tenant": tenant, "scopes": scopes})
	if r.Status != http.StatusCreated {
		t.Fatalf("create client: %d %s", r.Status, r.Body)
	}
	var c created
	r.json(t, &c)
	if !strings.HasPrefix(c.ClientID, "cl_") || c.ClientSecret == "" {
		t.Fatalf("created = %+v", c)
	}
	if r.Header.Get("Cache-Control") != "no-store" || r.Header.Get("Location") != "/admin/clients/"+c.ClientID {
		t.Errorf("create headers: %v", r.Header)
	}
	return c
}

func basic(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

func formToken(t *testing.T, s *server, header map[string]string, form url.Values) response {
	t.Helper()
	h := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	for k, v := range header {
		h[k] = v
	}
	return do(t, http.MethodPost, s.URL+"/oauth/token", h, []byte(form.Encode()))
}

func jsonToken(t *testing.T, s *server, header map[string]string, body map[string]string) response {
	t.Helper()
	h := map[string]string{"Content-Type": "application/json"}
	for k, v := range header {
		h[k] = v
	}
	b, _ := json.Marshal(body)
	return do(t, http.MethodPost, s.URL+"/oauth/token", h, b)
}

type tokenResp struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
	Scope       string `json:"scope"`
}

func verifier(t *testing.T, s *server) *jwtauth.Verifier {
	t.Helper()
	v, err := jwtauth.NewVerifier(jwtauth.VerifierConfig{JWKSURL: s.URL + "/.well-known/jwks.json", Issuer: testIssuer, Audience: testAudience})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func wantToken(t *testing.T, r response) tokenResp {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("token: %d %s", r.Status, r.Body)
	}
	if r.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", r.Header.Get("Cache-Control"))
	}
	var tr tokenResp
	r.json(t, &tr)
	if tr.AccessToken == "" || tr.TokenType != "Bearer" || tr.ExpiresIn != 900 {
		t.Errorf("token response = %+v", tr)
	}
	return tr
}

func wantOAuthError(t *testing.T, r response, status int, code string) {
	t.Helper()
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	r.json(t, &e)
	if r.Status != status || e.Error != code || e.Description == "" {
		t.Errorf("got %d %s, want %d %s", r.Status, r.Body, status, code)
	}
	if code == "invalid_client" && !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Basic ") {
		t.Errorf("invalid_client without WWW-Authenticate: %v", r.Header)
	}
	if r.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("error Cache-Control = %q", r.Header.Get("Cache-Control"))
	}
}

func wantAPIError(t *testing.T, r response, status int, code string) {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string }
	}
	r.json(t, &e)
	if r.Status != status || e.Error.Code != code || e.Error.Message == "" {
		t.Errorf("got %d %s, want %d %s", r.Status, r.Body, status, code)
	}
}

func TestTokenFlow(t *testing.T) {
	t.Parallel()
	s := setup(t)
	c := createClient(t, s, "acme", jwtauth.ScopeJobsWrite, jwtauth.ScopeJobsRead, jwtauth.ScopeJobsRead)
	if strings.Join(c.Scopes, " ") != "jobs:read jobs:write" {
		t.Errorf("scopes = %v, want sorted and deduplicated", c.Scopes)
	}
	v := verifier(t, s)
	cases := map[string]response{
		"form, basic": formToken(t, s, map[string]string{"Authorization": basic(c.ClientID, c.ClientSecret)},
			url.Values{"grant_type": {"client_credentials"}}),
		"form, body": formToken(t, s, nil, url.Values{"grant_type": {"client_credentials"},
			"client_id": {c.ClientID}, "client_secret": {c.ClientSecret}}),
		"json, body": jsonToken(t, s, nil, map[string]string{"grant_type": "client_credentials",
			"client_id": c.ClientID, "client_secret": c.ClientSecret}),
		"json, basic": jsonToken(t, s, map[string]string{"Authorization": basic(c.ClientID, c.ClientSecret)},
			map[string]string{"grant_type": "client_credentials", "client_id": c.ClientID}),
	}
	jtis := map[string]bool{}
	for name, r := range cases {
		t.Run(name, func(t *testing.T) {
			tr := wantToken(t, r)
			if tr.Scope != "jobs:read jobs:write" {
				t.Errorf("scope = %q", tr.Scope)
			}
			claims, err := v.Verify(t.Context(), tr.AccessToken)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if claims.Tenant != "acme" || claims.Subject != c.ClientID || !claims.HasScope(jwtauth.ScopeJobsRead) ||
				!claims.HasScope(jwtauth.ScopeJobsWrite) || claims.HasScope(jwtauth.ScopeAlgorithmsAdmin) {
				t.Errorf("claims = %+v", claims)
			}
			if claims.ID == "" || jtis[claims.ID] {
				t.Errorf("jti %q is empty or repeated", claims.ID)
			}
			jtis[claims.ID] = true
			if d := claims.ExpiresAt.Sub(claims.IssuedAt.Time); d != 15*time.Minute || claims.NotBefore == nil {
				t.Errorf("exp - iat = %v, nbf = %v", d, claims.NotBefore)
			}
			tok, _, err := jwt.NewParser().ParseUnverified(tr.AccessToken, jwt.MapClaims{})
			if err != nil || tok.Header["alg"] != "EdDSA" || tok.Header["kid"] == "" {
				t.Errorf("header = %v, %v", tok.Header, err)
			}
		})
	}

	// Narrowing to a subset of the client's scopes.
	tr := wantToken(t, formToken(t, s, map[string]string{"Authorization": basic(c.ClientID, c.ClientSecret)},
		url.Values{"grant_type": {"client_credentials"}, "scope": {"jobs:read"}}))
	claims, err := v.Verify(t.Context(), tr.AccessToken)
	if err != nil || tr.Scope != "jobs:read" || claims.Scope != "jobs:read" {
		t.Errorf("narrowed: %+v %+v %v", tr, claims, err)
	}
	// Escalation is refused.
	wantOAuthError(t, formToken(t, s, map[string]string{"Authorization": basic(c.ClientID, c.ClientSecret)},
		url.Values{"grant_type": {"client_credentials"}, "scope": {"jobs:read algorithms:admin"}}), 400, "invalid_scope")
	wantOAuthError(t, formToken(t, s, map[string]string{"Authorization": basic(c.ClientID, c.ClientSecret)},
		url.Values{"grant_type": {"client_credentials"}, "scope": {"jobs:read  jobs:write"}}), 400, "invalid_scope")
}

func TestTokenRefusals(t *testing.T) {
	t.Parallel()
	s := setup(t)
	c := createClient(t, s, "acme", jwtauth.ScopeJobsRead)
	other := createClient(t, s, "globex", jwtauth.ScopeJobsRead)
	grant := url.Values{"grant_type": {"client_credentials"}}
	auth := func(id, secret string) map[string]string {
		return map[string]string{"Authorization": basic(id, secret)}
	}

	wantOAuthError(t, formToken(t, s, auth(c.ClientID, "wrong"), grant), 401, "invalid_client")
	wantOAuthError(t, formToken(t, s, auth(c.ClientID, other.ClientSecret), grant), 401, "invalid_client")
	wantOAuthError(t, formToken(t, s, auth("cl_nosuchclient", c.ClientSecret), grant), 401, "invalid_client")
	wantOAuthError(t, formToken(t, s, nil, grant), 401, "invalid_client")
	wantOAuthError(t, formToken(t, s, nil, url.Values{"grant_type": {"client_credentials"}, "client_id": {c.ClientID}}), 401, "invalid_client")
	wantOAuthError(t, formToken(t, s, auth(c.ClientID, c.ClientSecret), url.Values{"grant_type": {"password"}}), 400, "unsupported_grant_type")
	wantOAuthError(t, formToken(t, s, auth(c.ClientID, c.ClientSecret), url.Values{}), 400, "invalid_request")
	wantOAuthError(t, formToken(t, s, auth(c.ClientID, c.ClientSecret),
		url.Values{"grant_type": {"client_credentials"}, "client_secret": {c.ClientSecret}}), 400, "invalid_request")
	wantOAuthError(t, formToken(t, s, map[string]string{"Authorization": "Basic !!!"}, grant), 400, "invalid_request")
	wantOAuthError(t, formToken(t, s, nil, url.Values{"grant_type": {"client_credentials", "client_credentials"},
		"client_id": {c.ClientID}, "client_secret": {c.ClientSecret}}), 400, "invalid_request")

	// 415, 413, 400 on the token endpoint, in RFC 6749's shape.
	tokenURL := s.URL + "/oauth/token"
	wantOAuthError(t, do(t, "POST", tokenURL, map[string]string{"Content-Type": "text/plain"}, []byte("grant_type=client_credentials")), 415, "invalid_request")
	wantOAuthError(t, do(t, "POST", tokenURL, nil, []byte("grant_type=client_credentials")), 415, "invalid_request")
	wantOAuthError(t, do(t, "POST", tokenURL, map[string]string{"Content-Type": "application/x-www-form-urlencoded"},
		[]byte("grant_type=client_credentials&pad="+strings.Repeat("x", 9000))), 413, "invalid_request")
	wantOAuthError(t, do(t, "POST", tokenURL, map[string]string{"Content-Type": "application/json"}, []byte(`{"grant_type":`)), 400, "invalid_request")
	wantOAuthError(t, do(t, "POST", tokenURL, map[string]string{"Content-Type": "application/json"}, []byte(`{"grant_type":1}`)), 400, "invalid_request")
	wantOAuthError(t, do(t, "POST", tokenURL, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, []byte("grant_type=%zz")), 400, "invalid_request")
	if r := do(t, "GET", tokenURL, nil, nil); r.Status != http.StatusMethodNotAllowed {
		t.Errorf("GET /oauth/token: %d", r.Status)
	}

	// Revoked clients get no tokens; revoking is idempotent.
	wantToken(t, formToken(t, s, auth(c.ClientID, c.ClientSecret), grant))
	for range 2 {
		if r := adminJSON(t, s, http.MethodDelete, "/admin/clients/"+c.ClientID, nil); r.Status != http.StatusNoContent {
			t.Fatalf("revoke: %d %s", r.Status, r.Body)
		}
	}
	wantOAuthError(t, formToken(t, s, auth(c.ClientID, c.ClientSecret), grant), 401, "invalid_client")
	wantToken(t, formToken(t, s, auth(other.ClientID, other.ClientSecret), grant))
}

func TestAdmin(t *testing.T) {
	t.Parallel()
	s := setup(t)
	for name, h := range map[string]map[string]string{
		"no token":    nil,
		"wrong token": {"Authorization": "Bearer " + adminToken + "x"},
		"prefix":      {"Authorization": "Bearer " + adminToken[:10]},
		"basic":       {"Authorization": "Basic " + adminToken},
	} {
		r := do(t, http.MethodGet, s.URL+"/admin/clients", h, nil)
		wantAPIError(t, r, 401, "unauthorized")
		if r.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: no WWW-Authenticate", name)
		}
	}
	r := do(t, http.MethodPost, s.URL+"/admin/clients", map[string]string{"Content-Type": "application/json"},
		[]byte(`{"name":"x","tenant":"acme","scopes":["jobs:read"]}`))
	wantAPIError(t, r, 401, "unauthorized")

	a := createClient(t, s, "acme", jwtauth.ScopeJobsRead)
	b := createClient(t, s, "globex", jwtauth.ScopeJobsWrite)

	for name, body := range map[string]map[string]any{
		"unknown scope": {"name": "x", "tenant": "acme", "scopes": []string{"jobs:delete"}},
		"no scopes":     {"name": "x", "tenant": "acme", "scopes": []string{}},
		"no name":       {"name": " ", "tenant": "acme", "scopes": []string{"jobs:read"}},
		"bad tenant":    {"name": "x", "tenant": "Acme Inc", "scopes": []string{"jobs:read"}},
		"no tenant":     {"name": "x", "scopes": []string{"jobs:read"}},
	} {
		r := adminJSON(t, s, http.MethodPost, "/admin/clients", body)
		wantAPIError(t, r, 422, "invalid_field")
		if name == "unknown scope" && !strings.Contains(string(r.Body), "jobs:delete") {
			t.Errorf("unknown scope message: %s", r.Body)
		}
	}
	adminHdr := map[string]string{"Authorization": "Bearer " + adminToken, "Content-Type": "application/json"}
	wantAPIError(t, do(t, "POST", s.URL+"/admin/clients", adminHdr, []byte(`{"name":"x","tenant":"acme","scopes":["jobs:read"],"admin":true}`)), 400, "bad_request")
	wantAPIError(t, do(t, "POST", s.URL+"/admin/clients", adminHdr, []byte(`{"name":`)), 400, "bad_request")
	wantAPIError(t, do(t, "POST", s.URL+"/admin/clients", adminHdr, []byte(`{"name":"`+strings.Repeat("x", 20000)+`"}`)), 413, "too_large")
	wantAPIError(t, do(t, "POST", s.URL+"/admin/clients", map[string]string{"Authorization": "Bearer " + adminToken, "Content-Type": "text/plain"},
		[]byte(`{}`)), 415, "unsupported_media_type")

	r = adminJSON(t, s, http.MethodGet, "/admin/clients", nil)
	if r.Status != 200 {
		t.Fatalf("list: %d %s", r.Status, r.Body)
	}
	if bytes.Contains(r.Body, []byte("secret")) || bytes.Contains(r.Body, []byte("argon2")) ||
		bytes.Contains(r.Body, []byte(a.ClientSecret)) {
		t.Errorf("list shows secrets: %s", r.Body)
	}
	var list struct{ Clients []created }
	r.json(t, &list)
	if len(list.Clients) != 2 || list.Clients[0].ClientID != a.ClientID || list.Clients[1].ClientID != b.ClientID {
		t.Errorf("list = %+v", list)
	}
	r = adminJSON(t, s, http.MethodGet, "/admin/clients?tenant=globex", nil)
	r.json(t, &list)
	if len(list.Clients) != 1 || list.Clients[0].ClientID != b.ClientID || list.Clients[0].Tenant != "globex" {
		t.Errorf("list for globex = %+v", list)
	}
	r = adminJSON(t, s, http.MethodGet, "/admin/clients/"+a.ClientID, nil)
	if r.Status != 200 || bytes.Contains(r.Body, []byte("secret")) || !bytes.Contains(r.Body, []byte(a.ClientID)) {
		t.Errorf("get: %d %s", r.Status, r.Body)
	}
	wantAPIError(t, adminJSON(t, s, http.MethodGet, "/admin/clients/cl_missing", nil), 404, "not_found")
	wantAPIError(t, adminJSON(t, s, http.MethodDelete, "/admin/clients/cl_missing", nil), 404, "not_found")
	if r := adminJSON(t, s, http.MethodDelete, "/admin/clients/"+a.ClientID, nil); r.Status != 204 {
		t.Errorf("revoke: %d %s", r.Status, r.Body)
	}
	r = adminJSON(t, s, http.MethodGet, "/admin/clients/"+a.ClientID, nil)
	if !bytes.Contains(r.Body, []byte(`"revoked_at"`)) {
		t.Errorf("revoked client shows no revoked_at: %s", r.Body)
	}
	wantAPIError(t, do(t, http.MethodGet, s.URL+"/nope", nil, nil), 404, "not_found")
}

func TestKeyRotation(t *testing.T) {
	t.Parallel()
	db := testenv.MongoDB(t)
	store, err := clients.NewStore(t.Context(), db, nil)
	if err != nil {
		t.Fatal(err)
	}
	old, cur := newKey(t), newKey(t)
	before := startServer(t, store, old)
	c := createClient(t, before, "acme", jwtauth.ScopeJobsRead)
	grant := url.Values{"grant_type": {"client_credentials"}}
	creds := map[string]string{"Authorization": basic(c.ClientID, c.ClientSecret)}
	oldTok := wantToken(t, formToken(t, before, creds, grant)).AccessToken

	// The function restarts with a new current key and the old one as previous.
	after := startServer(t, store, cur, old)
	r := do(t, http.MethodGet, after.URL+"/.well-known/jwks.json", nil, nil)
	if r.Status != 200 || r.Header.Get("Cache-Control") != "public, max-age=300" {
		t.Fatalf("jwks: %d %v", r.Status, r.Header)
	}
	var set struct{ Keys []map[string]string }
	r.json(t, &set)
	if len(set.Keys) != 2 || set.Keys[0]["kid"] != cur.ID || set.Keys[1]["kid"] != old.ID {
		t.Fatalf("jwks = %s", r.Body)
	}
	if bytes.Contains(r.Body, []byte(`"d"`)) {
		t.Errorf("jwks holds private key material: %s", r.Body)
	}
	newTok := wantToken(t, formToken(t, after, creds, grant)).AccessToken
	v := verifier(t, after)
	for name, tok := range map[string]string{"previous key": oldTok, "current key": newTok} {
		if _, err := v.Verify(t.Context(), tok); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	h, _, _ := jwt.NewParser().ParseUnverified(newTok, jwt.MapClaims{})
	if h.Header["kid"] != cur.ID {
		t.Errorf("new token kid = %v, want %s", h.Header["kid"], cur.ID)
	}
	// Once the previous key is unpublished, its tokens no longer verify.
	final := startServer(t, store, cur)
	if _, err := verifier(t, final).Verify(t.Context(), oldTok); !errors.Is(err, jwtauth.ErrInvalidToken) {
		t.Errorf("token of an unpublished key: err = %v", err)
	}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	s := setup(t)
	if r := do(t, http.MethodGet, s.URL+"/_/health", nil, nil); r.Status != 200 {
		t.Errorf("health: %d %s", r.Status, r.Body)
	}
}

func TestNewHandlerRejectsBadDeps(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	good := authfn.Deps{Log: log, Clients: &clients.Store{}, Keys: []jwtauth.Key{newKey(t)}, AdminToken: adminToken,
		Config: authfn.Config{Issuer: "i", Audience: "a", TokenTTL: time.Minute}}
	if _, err := authfn.NewHandler(good); err != nil {
		t.Fatalf("good deps: %v", err)
	}
	for name, f := range map[string]func(d *authfn.Deps){
		"no keys":           func(d *authfn.Deps) { d.Keys = nil },
		"short admin token": func(d *authfn.Deps) { d.AdminToken = "short" },
		"no clients":        func(d *authfn.Deps) { d.Clients = nil },
		"no issuer":         func(d *authfn.Deps) { d.Config.Issuer = "" },
		"duplicate kids":    func(d *authfn.Deps) { d.Keys = []jwtauth.Key{d.Keys[0], d.Keys[0]} },
	} {
		d := good
		f(&d)
		if _, err := authfn.NewHandler(d); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
