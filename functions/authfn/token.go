package authfn

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/aigw/aigw/functions/authfn/clients"
	jwtauth "github.com/aigw/aigw/internal/auth"
	"github.com/aigw/aigw/internal/web"
)

// maxTokenBody bounds a token request body.
const maxTokenBody = 8 << 10

type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
	Scope       string `json:"scope"`
}

// makeTokenHandler serves POST /oauth/token: the client-credentials grant.
func makeTokenHandler(d Deps) http.Handler {
	key := d.Keys[0]
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Pragma", "no-cache")
		resp, err := issueToken(d, key, w, r)
		if err != nil {
			writeOAuthError(w, r, d, err)
			return
		}
		web.WriteJSON(w, http.StatusOK, resp)
	})
}

func issueToken(d Deps, key jwtauth.Key, w http.ResponseWriter, r *http.Request) (tokenResponse, error) {
	ctx := r.Context()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxTokenBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return tokenResponse{}, &oauthError{Status: http.StatusRequestEntityTooLarge, Code: errInvalidRequest,
				Description: fmt.Sprintf("the request body is over %d bytes", maxTokenBody)}
		}
		return tokenResponse{}, invalidRequest("reading the request body failed")
	}
	req, err := decodeTokenRequest(r.Header.Get("Content-Type"), body, r.Header.Get("Authorization"))
	if err != nil {
		return tokenResponse{}, err
	}

	c, err := d.Clients.Get(ctx, req.ClientID)
	switch {
	case errors.Is(err, clients.ErrNotFound):
		clients.BurnVerify(req.ClientSecret)
		return tokenResponse{}, invalidClient(fmt.Errorf("unknown client %q", req.ClientID))
	case err != nil:
		return tokenResponse{}, err
	}
	ok, err := clients.VerifySecret(req.ClientSecret, c.SecretHash)
	switch {
	case err != nil:
		return tokenResponse{}, fmt.Errorf("client %s: %w", c.ID, err)
	case !ok:
		return tokenResponse{}, invalidClient(fmt.Errorf("client %s: wrong secret", c.ID))
	case c.Revoked():
		return tokenResponse{}, invalidClient(fmt.Errorf("client %s: revoked at %v", c.ID, c.RevokedAt))
	}

	// A client stored before operator scopes were refused to clients may
	// still list one: it is never granted (see jwtauth.OperatorScopes).
	held := slices.DeleteFunc(slices.Clone(c.Scopes), jwtauth.OperatorScope)
	if len(held) < len(c.Scopes) {
		d.Log.WarnContext(ctx, "client lists an operator scope; not granted", "client_id", c.ID, "tenant", c.Tenant, "scopes", c.Scopes)
	}
	granted := held
	if len(req.Scopes) > 0 {
		granted = nil
		for _, s := range req.Scopes {
			if jwtauth.OperatorScope(s) {
				return tokenResponse{}, &oauthError{Status: http.StatusBadRequest, Code: errInvalidScope,
					Description: fmt.Sprintf("scope %q is an operator scope, never granted to an API client (operators use POST /admin/token)", s)}
			}
			if !slices.Contains(held, s) {
				return tokenResponse{}, &oauthError{Status: http.StatusBadRequest, Code: errInvalidScope,
					Description: fmt.Sprintf("scope %q is not granted to this client (it has: %s)", s, strings.Join(held, " "))}
			}
			if !slices.Contains(granted, s) {
				granted = append(granted, s)
			}
		}
	}
	if len(granted) == 0 {
		return tokenResponse{}, &oauthError{Status: http.StatusBadRequest, Code: errInvalidScope,
			Description: fmt.Sprintf("this client holds no scope an API client may use (%s); ask an operator for a new client", strings.Join(jwtauth.ClientScopes(), ", "))}
	}
	resp, err := signToken(d, key, c.ID, c.Tenant, granted)
	if err != nil {
		return tokenResponse{}, err
	}
	d.Log.InfoContext(ctx, "token issued", "client_id", c.ID, "tenant", c.Tenant, "scope", resp.Scope, "kid", key.ID)
	return resp, nil
}

// signToken signs an access token for subject in tenant with scopes.
func signToken(d Deps, key jwtauth.Key, subject, tenant string, scopes []string) (tokenResponse, error) {
	scope := strings.Join(scopes, " ")
	now := d.Now().Truncate(time.Second)
	token, err := jwtauth.Sign(key, &jwtauth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    d.Config.Issuer,
			Subject:   subject,
			Audience:  jwt.ClaimStrings{d.Config.Audience},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(d.Config.TokenTTL)),
			ID:        rand.Text(),
		},
		Tenant: tenant,
		Scope:  scope,
	})
	if err != nil {
		return tokenResponse{}, err
	}
	return tokenResponse{AccessToken: token, TokenType: "Bearer", ExpiresIn: int(d.Config.TokenTTL / time.Second), Scope: scope}, nil
}

// writeOAuthError answers in RFC 6749 §5.2's shape; invalid_client carries
// WWW-Authenticate (§5.2 requires it when the client used the header, and it
// does no harm otherwise).
func writeOAuthError(w http.ResponseWriter, r *http.Request, d Deps, err error) {
	var oe *oauthError
	switch {
	case errors.As(err, &oe):
	case web.IsUnavailable(err):
		oe = &oauthError{Status: http.StatusServiceUnavailable, Code: errTemporarily,
			Description: "the client store is unavailable; retry later", Err: err}
		w.Header().Set("Retry-After", strconv.Itoa(int(web.RetryAfter/time.Second)))
	default:
		oe = &oauthError{Status: http.StatusInternalServerError, Code: errServerError, Description: "internal error", Err: err}
	}
	switch {
	case oe.Status >= 500:
		d.Log.ErrorContext(r.Context(), "token request failed", "status", oe.Status, "code", oe.Code, "err", err)
	default:
		d.Log.InfoContext(r.Context(), "token request refused", "status", oe.Status, "code", oe.Code, "err", err)
	}
	if oe.Code == errInvalidClient {
		w.Header().Set("WWW-Authenticate", `Basic realm="aigw", charset="UTF-8"`)
	}
	web.WriteJSON(w, oe.Status, struct {
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description,omitempty"`
	}{oe.Code, oe.Description})
}
