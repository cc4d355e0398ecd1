// Package echoexec_test checks the exec example: the echo binary run as a
// process per job, under the definition in this folder.
package echoexec_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/testleak"
)

func TestMain(m *testing.M) { testleak.Main(m) }

func TestDefinition(t *testing.T) {
	d, err := algorithm.LoadFile(algorithm.DefinitionFile)
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "echo-exec" || d.Pool != "cpu" || d.Runtime.Type != algorithm.Exec ||
		!reflect.DeepEqual(d.Runtime.Command, []string{"aigw-echo"}) {
		t.Fatalf("definition %+v", d)
	}
	// The same program and input as echo, which keeps it warm.
	echo, err := algorithm.LoadFile(filepath.Join("..", "echo", algorithm.DefinitionFile))
	if err != nil {
		t.Fatal(err)
	}
	if echo.Runtime.Type != algorithm.Serve || !reflect.DeepEqual(echo.Runtime.Command, d.Runtime.Command) ||
		!bytes.Equal(echo.InputSchema, d.InputSchema) || echo.TimeoutMS != d.TimeoutMS {
		t.Fatalf("echo %+v and echo-exec %+v differ in more than their runtime", echo, d)
	}
}

// TestExec builds aigw-echo as make build does and runs it as the exec
// runtime does: input on stdin, output on stdout, a bad input's reason last
// on stderr.
func TestExec(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "aigw-echo")
	if out, err := exec.Command("go", "build", "-o", bin, "../echo").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, tc := range []struct{ in, stdout, stderr string }{
		{`{"message":"hi","sleep_ms":1}`, `{"message":"hi"}` + "\n", `{"progress":0,"message":"sleeping 1 ms"}` + "\n"},
		{`{"message":"hi","extra":1}`, "", "echo: input: json: unknown field \"extra\"\n"},
	} {
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(), "AIGW_SERVE=")
		cmd.Stdin = strings.NewReader(tc.in)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		if out.String() != tc.stdout || errb.String() != tc.stderr || (err == nil) != (tc.stdout != "") {
			t.Errorf("%s: %v, stdout %q, stderr %q; want stdout %q, stderr %q", tc.in, err, out.String(), errb.String(), tc.stdout, tc.stderr)
		}
	}
}
