package authfn

import (
	"errors"
	"net/http"
	"testing"
)

func TestDecodeTokenRequest(t *testing.T) {
	t.Parallel()
	const form = "application/x-www-form-urlencoded"
	basic := "Basic " + "Y2xfYSUzQXg6cyUyNmNyZXQ=" // url-encoded "cl_a:x" and "s&cret"
	req, err := decodeTokenRequest(form, []byte("grant_type=client_credentials&scope=jobs:read+jobs:write"), basic)
	if err != nil {
		t.Fatal(err)
	}
	if req.ClientID != "cl_a:x" || req.ClientSecret != "s&cret" || !req.Basic || len(req.Scopes) != 2 {
		t.Errorf("req = %+v", req)
	}
	req, err = decodeTokenRequest("application/json; charset=utf-8",
		[]byte(`{"grant_type":"client_credentials","client_id":"cl_b","client_secret":"s","extra":1}`), "")
	if err != nil || req.ClientID != "cl_b" || req.Basic || req.Scopes != nil {
		t.Errorf("json: %+v, %v", req, err)
	}
	for name, tc := range map[string]struct {
		ct, body, authz string
		status          int
		code            string
	}{
		"no content type":  {"", "grant_type=client_credentials", "", 415, errInvalidRequest},
		"xml":              {"application/xml", "<x/>", "", 415, errInvalidRequest},
		"no grant":         {form, "client_id=a&client_secret=b", "", 400, errInvalidRequest},
		"password grant":   {form, "grant_type=password&client_id=a&client_secret=b", "", 400, errUnsupportedGrantType},
		"no credentials":   {form, "grant_type=client_credentials", "", 401, errInvalidClient},
		"two methods":      {form, "grant_type=client_credentials&client_secret=b", basic, 400, errInvalidRequest},
		"ids differ":       {form, "grant_type=client_credentials&client_id=other", basic, 400, errInvalidRequest},
		"bearer header":    {form, "grant_type=client_credentials", "Bearer x", 400, errInvalidRequest},
		"basic no colon":   {form, "grant_type=client_credentials", "Basic YWJj", 400, errInvalidRequest},
		"repeated param":   {form, "grant_type=client_credentials&grant_type=client_credentials", "", 400, errInvalidRequest},
		"json array":       {"application/json", `[]`, "", 400, errInvalidRequest},
		"json trailing":    {"application/json", `{"grant_type":"client_credentials"} {}`, "", 400, errInvalidRequest},
		"json number":      {"application/json", `{"grant_type":"client_credentials","client_id":7}`, "", 400, errInvalidRequest},
		"scope with quote": {form, `grant_type=client_credentials&client_id=a&client_secret=b&scope=a"b`, "", 400, errInvalidScope},
	} {
		_, err := decodeTokenRequest(tc.ct, []byte(tc.body), tc.authz)
		var oe *oauthError
		if !errors.As(err, &oe) || oe.Status != tc.status || oe.Code != tc.code {
			t.Errorf("%s: err = %v, want %d %s", name, err, tc.status, tc.code)
		}
	}
}

// FuzzDecodeTokenRequest: decoding never panics, every error is an
// *oauthError with a 4xx status, and what it accepts is a well-formed
// client-credentials request. Seeds: testdata/fuzz/FuzzDecodeTokenRequest.
func FuzzDecodeTokenRequest(f *testing.F) {
	f.Add("application/x-www-form-urlencoded", "grant_type=client_credentials&client_id=a&client_secret=b", "")
	f.Fuzz(func(t *testing.T, contentType, body, authorization string) {
		req, err := decodeTokenRequest(contentType, []byte(body), authorization)
		if err != nil {
			var oe *oauthError
			if !errors.As(err, &oe) {
				t.Fatalf("error %v is not an *oauthError", err)
			}
			switch oe.Status {
			case http.StatusBadRequest, http.StatusUnauthorized, http.StatusUnsupportedMediaType:
			default:
				t.Fatalf("status %d for %v", oe.Status, err)
			}
			if oe.Code == "" || oe.Description == "" {
				t.Fatalf("error without code or description: %+v", oe)
			}
			return
		}
		if req.GrantType != grantClientCredentials || req.ClientID == "" || req.ClientSecret == "" ||
			len(req.ClientID) > maxCredentialLen || len(req.ClientSecret) > maxCredentialLen {
			t.Fatalf("accepted a malformed request: %+v", req)
		}
		for _, s := range req.Scopes {
			if !validScopeToken(s) {
				t.Fatalf("accepted scope %q", s)
			}
		}
	})
}
