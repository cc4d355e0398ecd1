package router

import (
	"net/http"
	"testing"

	"github.com/aigw/aigw/internal/auth"
)

// TestOperatorSeesEveryTenantsJobs: an operator token (the console's admin)
// lists every tenant's jobs and reads, cancels and follows any of them; a
// tenant still sees only its own, and a token that names the operator tenant
// without the operator scope is no operator.
func TestOperatorSeesEveryTenantsJobs(t *testing.T) {
	t.Parallel()
	e := setup(t, testConfig())
	e.register(t)
	mine := e.submit(t, `{"input":{"message":"acme's"}}`)
	globex := e.is.Token(t, "globex", auth.ScopeJobsRead, auth.ScopeJobsWrite)
	var theirs jobReply
	e.want(t, e.do(t, "POST", "/v1/algorithms/"+algoName+"/jobs", globex, `{"input":{"message":"globex's"}}`), http.StatusAccepted).decode(t, &theirs)

	op := e.is.Token(t, auth.OperatorTenant, auth.ScopeAlgorithmsAdmin, auth.ScopeJobsRead, auth.ScopeJobsWrite)
	type opJob struct{ ID, State, Tenant string }
	var all struct{ Jobs []opJob }
	e.want(t, e.do(t, "GET", "/v1/jobs", op, ""), http.StatusOK).decode(t, &all)
	tenants := map[string]string{}
	for _, j := range all.Jobs {
		tenants[j.ID] = j.Tenant
	}
	if len(all.Jobs) != 2 || tenants[mine.ID] != "acme" || tenants[theirs.ID] != "globex" {
		t.Fatalf("operator lists %+v, want acme's %s and globex's %s", all.Jobs, mine.ID, theirs.ID)
	}
	for _, p := range []string{"/v1/jobs/" + theirs.ID, "/v1/jobs/" + theirs.ID + "/deliveries"} {
		e.want(t, e.do(t, "GET", p, op, ""), http.StatusOK)
	}
	var canceled opJob
	e.want(t, e.do(t, "POST", "/v1/jobs/"+theirs.ID+"/cancel", op, ""), http.StatusOK).decode(t, &canceled)
	if canceled.State != "canceled" || canceled.Tenant != "globex" {
		t.Fatalf("operator's cancel: %+v", canceled)
	}

	// A tenant: its own only.
	var own struct{ Jobs []jobReply }
	e.want(t, e.do(t, "GET", "/v1/jobs", globex, ""), http.StatusOK).decode(t, &own)
	if len(own.Jobs) != 1 || own.Jobs[0].ID != theirs.ID {
		t.Fatalf("globex lists %+v", own.Jobs)
	}
	e.want(t, e.do(t, "GET", "/v1/jobs/"+mine.ID, globex, ""), http.StatusNotFound)

	// The operator tenant without the operator scope sees nothing of anyone's.
	fake := e.is.Token(t, auth.OperatorTenant, auth.ScopeJobsRead)
	var none struct{ Jobs []jobReply }
	e.want(t, e.do(t, "GET", "/v1/jobs", fake, ""), http.StatusOK).decode(t, &none)
	if len(none.Jobs) != 0 {
		t.Fatalf("operator tenant without the scope lists %+v", none.Jobs)
	}
	e.want(t, e.do(t, "GET", "/v1/jobs/"+mine.ID, fake, ""), http.StatusNotFound)
}
