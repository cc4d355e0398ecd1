package authfn

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// OAuth 2.0 error codes (RFC 6749 §5.2) and grant type.
const (
	errInvalidRequest       = "invalid_request"
	errInvalidClient        = "invalid_client"
	errUnsupportedGrantType = "unsupported_grant_type"
	errInvalidScope         = "invalid_scope"
	errServerError          = "server_error"
	errTemporarily          = "temporarily_unavailable"

	grantClientCredentials = "client_credentials"
)

// oauthError is an error of the token endpoint, answered in RFC 6749's shape
// {"error":"…","error_description":"…"}. Err, when set, is logged, never sent.
type oauthError struct {
	Status      int
	Code        string
	Description string
	Err         error
}

func (e *oauthError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%d %s: %s: %v", e.Status, e.Code, e.Description, e.Err)
	}
	return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Description)
}

func (e *oauthError) Unwrap() error { return e.Err }

func invalidRequest(format string, args ...any) *oauthError {
	return &oauthError{Status: http.StatusBadRequest, Code: errInvalidRequest, Description: fmt.Sprintf(format, args...)}
}

// invalidClient never says which of id or secret was wrong.
func invalidClient(cause error) *oauthError {
	return &oauthError{Status: http.StatusUnauthorized, Code: errInvalidClient,
		Description: "client authentication failed", Err: cause}
}

// tokenRequest is a decoded token request.
type tokenRequest struct {
	GrantType    string
	ClientID     string
	ClientSecret string
	// Scopes asked for; none means every scope of the client.
	Scopes []string
	// Basic: the credentials came in an Authorization: Basic header.
	Basic bool
}

// maxCredentialLen bounds client ids and secrets before any lookup.
const maxCredentialLen = 256

// decodeTokenRequest decodes a token request body, form-encoded or JSON, and
// the client's credentials from the Authorization header (HTTP Basic) or the
// body. Errors are *oauthError.
func decodeTokenRequest(contentType string, body []byte, authorization string) (tokenRequest, error) {
	var req tokenRequest
	var scope string
	var hasID, hasSecret bool
	mt, _, err := mime.ParseMediaType(contentType)
	switch {
	case contentType != "" && err == nil && mt == "application/x-www-form-urlencoded":
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return req, invalidRequest("the form body is malformed: %v", err)
		}
		for k, vs := range form {
			if len(vs) > 1 {
				return req, invalidRequest("parameter %q is given more than once", k)
			}
		}
		req.GrantType, req.ClientID, req.ClientSecret, scope = form.Get("grant_type"), form.Get("client_id"), form.Get("client_secret"), form.Get("scope")
		hasID, hasSecret = form.Has("client_id"), form.Has("client_secret")
	case contentType != "" && err == nil && mt == "application/json":
		var j struct {
			GrantType    *string `json:"grant_type"`
			ClientID     *string `json:"client_id"`
			ClientSecret *string `json:"client_secret"`
			Scope        *string `json:"scope"`
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		if err := dec.Decode(&j); err != nil {
			return req, invalidRequest("the JSON body is malformed or not an object of strings: %v", err)
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			return req, invalidRequest("the JSON body must hold one object")
		}
		str := func(p *string) string {
			if p == nil {
				return ""
			}
			return *p
		}
		req.GrantType, req.ClientID, req.ClientSecret, scope = str(j.GrantType), str(j.ClientID), str(j.ClientSecret), str(j.Scope)
		hasID, hasSecret = j.ClientID != nil, j.ClientSecret != nil
	default:
		return req, &oauthError{Status: http.StatusUnsupportedMediaType, Code: errInvalidRequest,
			Description: fmt.Sprintf("Content-Type must be application/x-www-form-urlencoded or application/json (got %q)", contentType)}
	}

	switch req.GrantType {
	case grantClientCredentials:
	case "":
		return req, invalidRequest("grant_type is required; use client_credentials")
	default:
		return req, &oauthError{Status: http.StatusBadRequest, Code: errUnsupportedGrantType,
			Description: fmt.Sprintf("grant_type %q is not supported; use client_credentials", req.GrantType)}
	}

	if authorization != "" {
		id, secret, err := parseBasic(authorization)
		if err != nil {
			return req, err
		}
		if hasSecret {
			return req, invalidRequest("send the client credentials in the Authorization header or in the body, not both")
		}
		if hasID && req.ClientID != id {
			return req, invalidRequest("client_id in the body differs from the one in the Authorization header")
		}
		req.ClientID, req.ClientSecret, req.Basic = id, secret, true
	}
	if req.ClientID == "" || req.ClientSecret == "" {
		return req, invalidClient(errors.New("no client credentials"))
	}
	if len(req.ClientID) > maxCredentialLen || len(req.ClientSecret) > maxCredentialLen {
		return req, invalidClient(errors.New("client credentials too long"))
	}

	if scope != "" {
		for s := range strings.SplitSeq(scope, " ") {
			if !validScopeToken(s) {
				return req, &oauthError{Status: http.StatusBadRequest, Code: errInvalidScope,
					Description: fmt.Sprintf("scope %q is malformed: separate scopes with single spaces", scope)}
			}
			req.Scopes = append(req.Scopes, s)
		}
	}
	return req, nil
}

// parseBasic decodes `Basic base64(urlencode(id):urlencode(secret))` (RFC 6749 §2.3.1).
func parseBasic(h string) (id, secret string, err error) {
	scheme, enc, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return "", "", invalidRequest("the Authorization header must use the Basic scheme")
	}
	raw, derr := base64.StdEncoding.DecodeString(strings.TrimSpace(enc))
	if derr != nil {
		return "", "", invalidRequest("the Authorization header is not valid base64")
	}
	u, p, ok := strings.Cut(string(raw), ":")
	if !ok {
		return "", "", invalidRequest("the Authorization header must hold client_id:client_secret")
	}
	if id, err = url.QueryUnescape(u); err != nil {
		return "", "", invalidRequest("the client id in the Authorization header is badly escaped")
	}
	if secret, err = url.QueryUnescape(p); err != nil {
		return "", "", invalidRequest("the client secret in the Authorization header is badly escaped")
	}
	return id, secret, nil
}

// validScopeToken: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ) (RFC 6749 §3.3).
func validScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
