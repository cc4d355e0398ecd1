package router

import (
	"net/http"
	"strings"
	"testing"

	"github.com/aigw/aigw/internal/auth"
)

// TestRegisterRefusesProgramsOutsideTheWorkersDirectories: PUT
// /v1/algorithms/{name} answers 422 naming the field for a command that
// would run something the operator did not install (an absolute path, a
// path out of the algorithms directory) and stores nothing; a tenant's
// token without the operator scope gets 403.
func TestRegisterRefusesProgramsOutsideTheWorkersDirectories(t *testing.T) {
	t.Parallel()
	e := setup(t, testConfig())
	def := func(runtime string) string {
		return `{"version":"1.0.0","pool":"` + e.pool + `","runtime":` + runtime + `}`
	}
	for name, c := range map[string]struct{ runtime, field string }{
		"absolute":      {`{"type":"exec","command":["/bin/sh","-c","id > /tmp/x"]}`, "runtime.command[0]"},
		"dot-dot":       {`{"type":"exec","command":["../../bin/sh","-c","id"]}`, "runtime.command[0]"},
		"hidden dotdot": {`{"type":"exec","command":["echo/../../x"]}`, "runtime.command[0]"},
		"absolute dir":  {`{"type":"exec","command":["python3","x.py"],"dir":"/tmp"}`, "runtime.dir"},
		"dot-dot dir":   {`{"type":"exec","command":["python3","x.py"],"dir":"../tmp"}`, "runtime.dir"},
	} {
		r := e.want(t, e.do(t, "PUT", "/v1/algorithms/probe", e.token, def(c.runtime)), http.StatusUnprocessableEntity)
		code, msg := r.errorCode(t)
		if code != "invalid_definition" || !strings.Contains(msg, c.field) {
			t.Errorf("%s: %s %q, want invalid_definition naming %s", name, code, msg, c.field)
		}
	}
	e.want(t, e.do(t, "GET", "/v1/algorithms/probe", e.token, ""), http.StatusNotFound)

	tenant := e.is.Token(t, "acme", auth.ScopeJobsRead, auth.ScopeJobsWrite)
	r := e.want(t, e.do(t, "PUT", "/v1/algorithms/probe", tenant, def(`{"type":"exec","command":["aigw-echo"]}`)), http.StatusForbidden)
	if _, msg := r.errorCode(t); !strings.Contains(msg, auth.ScopeAlgorithmsAdmin) {
		t.Errorf("403 message %q does not name the scope", msg)
	}
	// What the operator installed registers: a bin program, an interpreter
	// with a script, a path inside the algorithms directory.
	for i, rt := range []string{`{"type":"exec","command":["aigw-echo"]}`, `{"type":"exec","command":["python3","matmul.py"],"dir":"matmul"}`,
		`{"type":"exec","command":["probe/run.sh"]}`} {
		want := http.StatusOK
		if i == 0 {
			want = http.StatusCreated
		}
		e.want(t, e.do(t, "PUT", "/v1/algorithms/probe", e.token, def(rt)), want)
	}
}
