package authfn_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/aigw/aigw/functions/authfn"
	"github.com/aigw/aigw/functions/authfn/clients"
	jwtauth "github.com/aigw/aigw/internal/auth"
	"github.com/aigw/aigw/internal/testenv"
)

// TestOperatorScopeNeverGoesToClients: registering algorithms chooses what
// runs on the workers, so its scope is for operators only. No API client may
// be created with it, a client stored with it (before this rule) gets tokens
// without it, and only the admin token gets an operator token.
func TestOperatorScopeNeverGoesToClients(t *testing.T) {
	t.Parallel()
	db := testenv.MongoDB(t)
	store, err := clients.NewStore(t.Context(), db, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, store, newKey(t))
	v := verifier(t, s)

	// Creating a client with the operator scope is refused, naming it.
	r := adminJSON(t, s, http.MethodPost, "/admin/clients", map[string]any{"name": "demo", "tenant": "demo",
		"scopes": []string{jwtauth.ScopeJobsRead, jwtauth.ScopeJobsWrite, jwtauth.ScopeAlgorithmsAdmin}})
	wantAPIError(t, r, http.StatusUnprocessableEntity, "invalid_field")
	if !strings.Contains(string(r.Body), jwtauth.ScopeAlgorithmsAdmin) || !strings.Contains(string(r.Body), "/admin/token") {
		t.Errorf("create with the operator scope: %s", r.Body)
	}
	if _, _, err := store.Create(t.Context(), clients.Spec{Name: "cli", Tenant: "demo", Scopes: []string{jwtauth.ScopeAlgorithmsAdmin}}); err == nil {
		t.Error("the store created a client with the operator scope")
	}

	// A client stored with it before: its tokens never carry it.
	c := createClient(t, s, "demo", jwtauth.ScopeJobsRead, jwtauth.ScopeJobsWrite)
	if _, err := db.Collection(clients.Collection).UpdateOne(t.Context(), bson.D{{Key: "_id", Value: c.ClientID}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "scopes", Value: bson.A{jwtauth.ScopeAlgorithmsAdmin, jwtauth.ScopeJobsRead, jwtauth.ScopeJobsWrite}}}}}); err != nil {
		t.Fatal(err)
	}
	grant := url.Values{"grant_type": {"client_credentials"}}
	hdr := map[string]string{"Authorization": basic(c.ClientID, c.ClientSecret)}
	tr := wantToken(t, formToken(t, s, hdr, grant))
	claims, err := v.Verify(t.Context(), tr.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Scope != "jobs:read jobs:write" || claims.HasScope(jwtauth.ScopeAlgorithmsAdmin) {
		t.Errorf("legacy client's token: scope %q, claims %q", tr.Scope, claims.Scope)
	}
	wantOAuthError(t, formToken(t, s, hdr, url.Values{"grant_type": {"client_credentials"}, "scope": {jwtauth.ScopeAlgorithmsAdmin}}),
		http.StatusBadRequest, "invalid_scope")
	// A client left with nothing but the operator scope gets no token at all.
	if _, err := db.Collection(clients.Collection).UpdateOne(t.Context(), bson.D{{Key: "_id", Value: c.ClientID}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "scopes", Value: bson.A{jwtauth.ScopeAlgorithmsAdmin}}}}}); err != nil {
		t.Fatal(err)
	}
	wantOAuthError(t, formToken(t, s, hdr, grant), http.StatusBadRequest, "invalid_scope")

	// The operator token: only for the admin token.
	for name, h := range map[string]map[string]string{
		"no token":     nil,
		"wrong token":  {"Authorization": "Bearer " + adminToken + "x"},
		"client token": {"Authorization": "Bearer " + tr.AccessToken},
	} {
		r := do(t, http.MethodPost, s.URL+"/admin/token", h, nil)
		wantAPIError(t, r, http.StatusUnauthorized, "unauthorized")
		if r.Status == http.StatusOK {
			t.Errorf("%s got an operator token", name)
		}
	}
	r = adminJSON(t, s, http.MethodPost, "/admin/token", nil)
	otr := wantToken(t, r)
	oc, err := v.Verify(t.Context(), otr.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if otr.Scope != strings.Join(authfn.OperatorTokenScopes(), " ") || !oc.HasScope(jwtauth.ScopeAlgorithmsAdmin) || !oc.HasScope(jwtauth.ScopeJobsRead) ||
		oc.Tenant != jwtauth.OperatorTenant || oc.Subject != authfn.OperatorSubject {
		t.Errorf("operator token: %+v, claims %+v", otr, oc)
	}
}

// TestOperatorTokenManagesClients: the console's admin holds an operator token,
// not the admin token; it lists, creates and revokes clients with it. A
// client's token may not, and an operator token never gets another operator
// token (so it runs out with its TTL).
func TestOperatorTokenManagesClients(t *testing.T) {
	t.Parallel()
	db := testenv.MongoDB(t)
	store, err := clients.NewStore(t.Context(), db, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, store, newKey(t))
	op := wantToken(t, adminJSON(t, s, http.MethodPost, "/admin/token", nil))
	bearer := map[string]string{"Authorization": "Bearer " + op.AccessToken, "Content-Type": "application/json"}

	r := do(t, http.MethodPost, s.URL+"/admin/clients", bearer, []byte(`{"name":"console","tenant":"acme","scopes":["jobs:read"]}`))
	if r.Status != http.StatusCreated || !strings.Contains(string(r.Body), `"client_secret"`) {
		t.Fatalf("create with an operator token: %d %s", r.Status, r.Body)
	}
	c := createClient(t, s, "acme", jwtauth.ScopeJobsRead)
	if r := do(t, http.MethodGet, s.URL+"/admin/clients?tenant=acme", bearer, nil); r.Status != http.StatusOK || !strings.Contains(string(r.Body), c.ClientID) {
		t.Errorf("list with an operator token: %d %s", r.Status, r.Body)
	}
	if r := do(t, http.MethodDelete, s.URL+"/admin/clients/"+c.ClientID, bearer, nil); r.Status != http.StatusNoContent {
		t.Errorf("revoke with an operator token: %d %s", r.Status, r.Body)
	}
	wantAPIError(t, do(t, http.MethodPost, s.URL+"/admin/token", bearer, nil), http.StatusUnauthorized, "unauthorized")

	// A tenant's token is no operator token.
	other := createClient(t, s, "acme", jwtauth.ScopeJobsRead, jwtauth.ScopeJobsWrite)
	tr := wantToken(t, formToken(t, s, map[string]string{"Authorization": basic(other.ClientID, other.ClientSecret)},
		url.Values{"grant_type": {"client_credentials"}}))
	wantAPIError(t, do(t, http.MethodGet, s.URL+"/admin/clients", map[string]string{"Authorization": "Bearer " + tr.AccessToken}, nil),
		http.StatusUnauthorized, "unauthorized")
}
