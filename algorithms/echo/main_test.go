package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/testleak"
	"github.com/aigw/aigw/sdk/serve"
	"github.com/aigw/aigw/sdk/serve/servetest"
)

// TestMain runs the binary's main for the subprocess tests below.
func TestMain(m *testing.M) {
	if os.Getenv("AIGW_ECHO_TEST_MAIN") == "1" {
		main()
	}
	testleak.Main(m)
}

// run runs echo in exec mode on the given streams.
func run(stdin io.Reader, stdout, stderr io.Writer) error {
	return serve.Exec(context.Background(), setup, stdin, stdout, stderr)
}

func TestEcho(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run(strings.NewReader(`{"message":"héllo","sleep_ms":1}`), &out, &errb); err != nil {
		t.Fatal(err)
	}
	if out.String() != "{\"message\":\"héllo\"}\n" || !strings.Contains(errb.String(), `"progress":0`) {
		t.Fatalf("stdout %q stderr %q", out.String(), errb.String())
	}
	for _, bad := range []string{`{}`, `{"message":1}`, `{"message":"x","sleep_ms":-1}`, `nope`, `{"message":"x","extra":1}`} {
		if err := run(strings.NewReader(bad), &out, &errb); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// command runs this test binary as aigw-echo.
func command(t *testing.T) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "AIGW_ECHO_TEST_MAIN=1", "AIGW_SERVE=")
	return cmd
}

// TestExecProcess runs the program as the exec runtime does.
func TestExecProcess(t *testing.T) {
	for _, tc := range []struct{ in, stdout, stderr string }{
		{`{"message":"hi"}`, `{"message":"hi"}` + "\n", ""},
		{`{"message":"x","sleep_ms":-1}`, "", "echo.test: input: sleep_ms must be 0-3600000\n"},
	} {
		cmd := command(t)
		cmd.Stdin = strings.NewReader(tc.in)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		if out.String() != tc.stdout || errb.String() != tc.stderr || (err == nil) != (tc.stderr == "") {
			t.Errorf("%s: %v, stdout %q, stderr %q; want stdout %q, stderr %q", tc.in, err, out.String(), errb.String(), tc.stdout, tc.stderr)
		}
	}
}

func TestDefinition(t *testing.T) {
	d, err := algorithm.LoadFile(algorithm.DefinitionFile)
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "echo" || d.Pool != "cpu" || d.Runtime.Type != algorithm.Serve || d.Runtime.MinWarm != 1 ||
		!reflect.DeepEqual(d.Runtime.Command, []string{"aigw-echo"}) {
		t.Fatalf("definition %+v", d)
	}
	schema, err := d.CompileSchema()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{`{"message":"hi"}`, true},
		{`{"message":"hi","sleep_ms":10}`, true},
		{`{}`, false},
		{`{"message":1}`, false},
		{`{"message":"hi","sleep_ms":-1}`, false},
		{`{"message":"hi","extra":1}`, false},
	} {
		var v any
		if err := json.Unmarshal([]byte(tc.in), &v); err != nil {
			t.Fatal(err)
		}
		if err := schema.Validate(v); (err == nil) != tc.ok {
			t.Errorf("schema on %s: %v, want ok=%t", tc.in, err, tc.ok)
		}
	}
}

// TestServe runs the program as the warm runtime does: jobs one after
// another in one process, a bad input failing without a retry, a cancel
// ending a sleep at once.
func TestServe(t *testing.T) {
	p := servetest.Start(t, command(t))
	for _, msg := range []string{"one", "two", "three"} {
		res := p.Run(t, map[string]any{"message": msg})
		if res.Error != nil || string(res.Output) != `{"message":"`+msg+`"}` {
			t.Fatalf("%s: %s %+v", msg, res.Output, res.Error)
		}
	}
	res := p.Run(t, map[string]any{"message": "zz", "sleep_ms": 1})
	if string(res.Output) != `{"message":"zz"}` || len(res.Progress) != 1 || res.Progress[0].Message != "sleeping 1 ms" {
		t.Fatalf("sleep: %s %+v", res.Output, res.Progress)
	}
	res = p.Run(t, map[string]any{"message": 1})
	if res.Error == nil || res.Error.Retryable || !strings.HasPrefix(res.Error.Message, "input: json: cannot unmarshal number") {
		t.Fatalf("bad input: %+v", res.Error)
	}

	id, _ := p.Submit(t, map[string]any{"message": "slow", "sleep_ms": 3_600_000})
	if m := p.Next(t); m.Type != "progress" || m.ID != id {
		t.Fatalf("message %+v, want the sleep's progress", m)
	}
	start := time.Now()
	p.Cancel(t, id)
	if res := p.Collect(t, id); res.Error == nil || res.Error.Message != "context canceled" {
		t.Fatalf("canceled sleep: %s %+v", res.Output, res.Error)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("cancel took %s", d)
	}
	if err := p.Close(t); err != nil {
		t.Fatal(err)
	}
}
