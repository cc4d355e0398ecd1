package console

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aigw/aigw/internal/web"
)

// maxSignInBody bounds a sign-in request.
const maxSignInBody = 8 << 10

// signInRequest is the body of POST /session: an API client's credentials,
// or the operator's admin token.
type signInRequest struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	AdminToken   string `json:"admin_token"`
}

// Session is what GET /session and POST /session tell the pages about the
// signed-in token (read from the token; the API verifies it on every call).
type Session struct {
	Subject   string    `json:"subject"`
	Tenant    string    `json:"tenant"`
	Scopes    []string  `json:"scopes"`
	Operator  bool      `json:"operator"`
	ExpiresAt time.Time `json:"expires_at"`
}

// tokenResponse is the auth function's token answer.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
}

// signIn: POST /session trades credentials for an access token at the auth
// function and sets it as the session cookie, which expires with the token.
func (c *console) signIn(w http.ResponseWriter, r *http.Request) error {
	var req signInRequest
	if err := web.DecodeJSON(w, r, maxSignInBody, &req); err != nil {
		return err
	}
	var out *http.Request
	var err error
	authURL := c.Config.Upstream + "/function/auth"
	switch {
	case req.AdminToken != "" && req.ClientID == "" && req.ClientSecret == "":
		out, err = http.NewRequestWithContext(r.Context(), http.MethodPost, authURL+"/admin/token", nil)
		if err == nil {
			out.Header.Set("Authorization", "Bearer "+req.AdminToken)
		}
	case req.AdminToken == "" && req.ClientID != "" && req.ClientSecret != "":
		out, err = http.NewRequestWithContext(r.Context(), http.MethodPost, authURL+"/oauth/token",
			strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
		if err == nil {
			out.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			out.SetBasicAuth(req.ClientID, req.ClientSecret)
		}
	default:
		return web.BadRequest("send client_id and client_secret, or admin_token")
	}
	if err != nil {
		return err
	}
	resp, err := c.Client.Do(out)
	if err != nil {
		return web.Unavailable(web.RetryAfter, fmt.Errorf("auth function: %w", err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return web.Unavailable(web.RetryAfter, fmt.Errorf("auth function: %w", err))
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusBadRequest:
		return web.Unauthorized("those credentials were refused; check the client id and secret, or the admin token")
	case resp.StatusCode != http.StatusOK:
		return web.Unavailable(web.RetryAfter, fmt.Errorf("auth function answered %d: %.200s", resp.StatusCode, body))
	}
	var tok tokenResponse
	if err := json.Unmarshal(body, &tok); err != nil || tok.AccessToken == "" || tok.ExpiresIn <= 0 {
		return fmt.Errorf("auth function: unexpected token answer: %.200s", body)
	}
	s, ok := c.session(tok.AccessToken)
	if !ok {
		return fmt.Errorf("auth function: the token's claims cannot be read")
	}
	http.SetCookie(w, cookie(c.prefix(r), secure(r), tok.AccessToken, tok.ExpiresIn))
	c.Log.InfoContext(r.Context(), "signed in", "tenant", s.Tenant, "operator", s.Operator)
	w.Header().Set("Cache-Control", "no-store")
	web.WriteJSON(w, http.StatusOK, s)
	return nil
}

// whoAmI: GET /session → the session, or 401 when there is none.
func (c *console) whoAmI(w http.ResponseWriter, r *http.Request) error {
	tok, ok := c.token(r)
	s, valid := c.session(tok)
	if !ok || !valid {
		c.clearCookie(w, r)
		return web.Errorf(http.StatusUnauthorized, "session_expired", "sign in")
	}
	w.Header().Set("Cache-Control", "no-store")
	web.WriteJSON(w, http.StatusOK, s)
	return nil
}

// signOut: DELETE /session clears the cookie (the token itself runs out on
// its own within minutes).
func (c *console) signOut(w http.ResponseWriter, r *http.Request) {
	c.clearCookie(w, r)
	w.WriteHeader(http.StatusNoContent)
}

// token returns the session cookie's token, if there is one that has not
// expired by its own claim.
func (c *console) token(r *http.Request) (string, bool) {
	ck, err := r.Cookie(CookieName)
	if err != nil || ck.Value == "" {
		return "", false
	}
	s, ok := c.session(ck.Value)
	if !ok || !s.ExpiresAt.After(c.Now()) {
		return "", false
	}
	return ck.Value, true
}

// session reads the claims of a token without verifying it: the pages only
// show them, and the API verifies the token on every call.
func (c *console) session(tok string) (Session, bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return Session{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return Session{}, false
	}
	var cl struct {
		Sub    string `json:"sub"`
		Tenant string `json:"tenant"`
		Scope  string `json:"scope"`
		Exp    int64  `json:"exp"`
	}
	if err := json.Unmarshal(payload, &cl); err != nil || cl.Exp == 0 {
		return Session{}, false
	}
	scopes := strings.Fields(cl.Scope)
	op := false
	for _, s := range scopes {
		op = op || s == "algorithms:admin"
	}
	return Session{Subject: cl.Sub, Tenant: cl.Tenant, Scopes: scopes, Operator: op, ExpiresAt: time.Unix(cl.Exp, 0).UTC()}, true
}

func (c *console) clearCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, cookie(c.prefix(r), secure(r), "", -1))
}

// cookie is the session cookie under prefix; maxAge < 0 deletes it.
func cookie(prefix string, secure bool, value string, maxAge int) *http.Cookie {
	p := prefix
	if p == "" {
		p = "/"
	}
	return &http.Cookie{Name: CookieName, Value: value, Path: p, MaxAge: maxAge,
		HttpOnly: true, Secure: secure, SameSite: http.SameSiteStrictMode}
}

// secure reports whether the browser reached the console over HTTPS (then the
// cookie is Secure).
func secure(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}
