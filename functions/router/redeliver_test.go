package router

import (
	"net/http"
	"testing"

	"github.com/aigw/aigw/internal/auth"
)

// TestRedeliverRefusals: a redelivery names a delivery of the tenant's own
// job; another tenant's job, or a delivery the job does not have, is a 404,
// and it needs the write scope. (e2e TestConsole redelivers one for real.)
func TestRedeliverRefusals(t *testing.T) {
	t.Parallel()
	e := setup(t, testConfig())
	e.register(t)
	j := e.submit(t, `{"input":{"message":"m"}}`)
	path := "/v1/jobs/" + j.ID + "/deliveries/msg_" + j.ID + "_succeeded_1/redeliver"
	if code, _ := e.want(t, e.do(t, "POST", path, e.token, ""), http.StatusNotFound).errorCode(t); code != "not_found" {
		t.Errorf("unknown delivery: code %q", code)
	}
	other := e.is.Token(t, "globex", auth.ScopeJobsRead, auth.ScopeJobsWrite)
	e.want(t, e.do(t, "POST", path, other, ""), http.StatusNotFound)
	reader := e.is.Token(t, "acme", auth.ScopeJobsRead)
	e.want(t, e.do(t, "POST", path, reader, ""), http.StatusForbidden)
}
