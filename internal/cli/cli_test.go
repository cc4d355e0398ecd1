package cli

import (
	"errors"
	"fmt"
	"testing"

	"github.com/aigw/aigw/internal/envconf"
	"github.com/aigw/aigw/internal/envconf/envdoc"
)

// TestREADMEConfigTable: the README's configuration table lists for aigw
// exactly the variables the CLI reads.
func TestREADMEConfigTable(t *testing.T) {
	table, err := envdoc.ReadRepoTable()
	if err != nil {
		t.Fatal(err)
	}
	r := envconf.Map(nil)
	ReadEnv(r)
	if err := envdoc.Check(table, "aigw", r.Vars()); err != nil {
		t.Error(err)
	}
}

func TestExitCodes(t *testing.T) {
	for _, c := range []struct {
		err  error
		want int
	}{
		{nil, ExitOK},
		{usageErrorf("bad"), ExitUsage},
		{fmt.Errorf("wrapped: %w", usageErrorf("bad")), ExitUsage},
		{errors.New(`unknown flag: --nope`), ExitUsage},
		{&APIError{Status: 404, Message: "no such job"}, ExitAPIRefused},
		{&APIError{Status: 422, Message: "input at /message"}, ExitAPIRefused},
		{&APIError{Status: 503, Message: "unavailable"}, ExitAPIFailed},
		{&UnreachableError{URL: "http://x", Err: errors.New("refused")}, ExitUnreachable},
		{&jobEndedError{id: "j", state: "failed"}, ExitJobFailed},
	} {
		if got := ExitCode(c.err); got != c.want {
			t.Errorf("ExitCode(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}

func TestAPIErrorReadsEveryShape(t *testing.T) {
	for _, c := range []struct {
		body, code, msg string
	}{
		{`{"error":{"code":"not_found","message":"no such job"}}`, "not_found", "no such job"},
		{`{"error":"invalid_client","error_description":"client authentication failed"}`, "invalid_client", "client authentication failed"},
		{"upstream down\n", "", "upstream down"},
		{"", "", "Bad Gateway"},
	} {
		e := apiError(502, []byte(c.body))
		if e.Code != c.code || e.Message != c.msg {
			t.Errorf("apiError(%q) = %q %q, want %q %q", c.body, e.Code, e.Message, c.code, c.msg)
		}
	}
}
