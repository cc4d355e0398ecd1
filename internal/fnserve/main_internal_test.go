package fnserve

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
)

// TestMainCommandLine: serve (the default) runs the function with the
// environment, version prints the version (also with a bad log level), a
// command gets the arguments after its name, anything else is a usage error;
// the exit codes are 0, 1 (the run's or a usage error, logged) and 2 (a bad
// AIGW_LOG_LEVEL).
func TestMainCommandLine(t *testing.T) {
	t.Parallel()
	env := map[string]string{"AIGW_X": "x"}
	getenv := func(k string) string { return env[k] }
	var served []string
	run := func(_ context.Context, log *slog.Logger, getenv func(string) string) error {
		served = append(served, getenv("AIGW_X"))
		log.Info("ran")
		return nil
	}
	var gotArgs []string
	cmds := []Command{{Name: "genkey", Usage: "genkey -n N", Run: func(_ context.Context, _ *slog.Logger, args []string, _ func(string) string, stdout, _ io.Writer) error {
		gotArgs = args
		_, err := io.WriteString(stdout, "key\n")
		return err
	}}}
	code := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		c := exitCode("fn", "1.2.3", args, getenv, &out, &errOut, run, cmds)
		return c, out.String(), errOut.String()
	}
	if c, _, logs := code(); c != 0 || len(served) != 1 || served[0] != "x" || !strings.Contains(logs, `"service":"fn"`) || !strings.Contains(logs, `"version":"1.2.3"`) {
		t.Errorf("no arguments: exit %d, served %v, logs %q", c, served, logs)
	}
	if c, _, _ := code("serve"); c != 0 || len(served) != 2 {
		t.Errorf("serve: exit %d, served %v", c, served)
	}
	if c, out, _ := code("version"); c != 0 || out != "1.2.3\n" {
		t.Errorf("version: exit %d, %q", c, out)
	}
	if c, out, _ := code("genkey", "-n", "2"); c != 0 || out != "key\n" || strings.Join(gotArgs, " ") != "-n 2" {
		t.Errorf("genkey: exit %d, %q, args %q", c, out, gotArgs)
	}
	for _, args := range [][]string{{"frobnicate"}, {"serve", "now"}, {"version", "x"}} {
		c, _, logs := code(args...)
		if c != 1 || !strings.Contains(logs, "usage: fn [serve | version | genkey -n N]") {
			t.Errorf("%q: exit %d, logs %q", args, c, logs)
		}
	}
	if len(served) != 2 {
		t.Errorf("a usage error served: %v", served)
	}

	failing := func(context.Context, *slog.Logger, func(string) string) error { return errors.New("no database") }
	var errOut bytes.Buffer
	if c := exitCode("fn", "1", nil, getenv, io.Discard, &errOut, failing, nil); c != 1 || !strings.Contains(errOut.String(), "no database") {
		t.Errorf("a failed run: exit %d, logs %q", c, errOut.String())
	}

	env["AIGW_LOG_LEVEL"] = "loud"
	errOut.Reset()
	if c := exitCode("fn", "1", nil, getenv, io.Discard, &errOut, run, nil); c != 2 || !strings.Contains(errOut.String(), "AIGW_LOG_LEVEL") || len(served) != 2 {
		t.Errorf("a bad log level: exit %d, stderr %q", c, errOut.String())
	}
	var out bytes.Buffer
	if c := exitCode("fn", "1.2.3", []string{"version"}, getenv, &out, io.Discard, run, nil); c != 0 || out.String() != "1.2.3\n" {
		t.Errorf("version with a bad log level: exit %d, %q", c, out.String())
	}
}
