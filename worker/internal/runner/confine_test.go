package runner

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExecRunsOnlyWhatTheOperatorInstalled: a definition stored before
// registration refused them (or written to MongoDB directly) still cannot run
// an absolute path, a path out of the algorithms directory or a PATH look-up:
// the job fails with command_not_allowed, not retried, and nothing ran.
func TestExecRunsOnlyWhatTheOperatorInstalled(t *testing.T) {
	t.Parallel()
	r, dir := execRunner(t)
	marker := filepath.Join(t.TempDir(), "ran")
	for name, cmd := range map[string][]string{
		"absolute":    {"/bin/sh", "-c", "touch " + marker},
		"dot-dot":     {"../../../../../../bin/sh", "-c", "touch " + marker},
		"hidden ..":   {"sub/../../../../../../../bin/sh", "-c", "touch " + marker},
		"absolute py": {"/usr/bin/python3", "-c", "open('" + marker + "','w')"},
	} {
		res := r.Run(context.Background(), execSpec(cmd...), Hooks{})
		res.RemoveDir()
		if res.Err == nil || res.Err.Code != CodeNotAllowed || res.Err.Retryable || !strings.Contains(res.Err.Message, "runtime.command[0]") {
			t.Errorf("%s: err %+v, want %s naming runtime.command[0], not retryable", name, res.Err, CodeNotAllowed)
		}
	}
	// A bare name is never looked up on PATH.
	res := r.Run(context.Background(), execSpec("sh", "-c", "touch "+marker), Hooks{})
	res.RemoveDir()
	if res.Err == nil || res.Err.Code != CodeRuntime || !strings.Contains(res.Err.Message, "AIGW_INTERPRETERS") {
		t.Errorf("sh from PATH: err %+v", res.Err)
	}
	// A working directory outside the algorithms directory.
	script(t, dir, "ok", "echo '{}'\n")
	s := execSpec("ok")
	s.Def.Runtime.Dir = "/tmp"
	res = r.Run(context.Background(), s, Hooks{})
	res.RemoveDir()
	if res.Err == nil || res.Err.Code != CodeNotAllowed || !strings.Contains(res.Err.Message, "runtime.dir") {
		t.Errorf("dir /tmp: err %+v", res.Err)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatalf("a refused command ran: %s exists (%v)", marker, err)
	}
}

// TestExecAllowedInterpreterAndAlgorithmsPath: an interpreter the operator
// allows runs by its base name, with a script from the definition's dir; a
// path with a "/" runs from inside the algorithms directory.
func TestExecAllowedInterpreterAndAlgorithmsPath(t *testing.T) {
	t.Parallel()
	r, dir := execRunner(t)
	r.Interpreters = []string{"/bin/sh"}
	if err := os.Mkdir(filepath.Join(dir, "algo"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "algo", "main.sh"), []byte(`echo '{"via":"sh"}'`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := execSpec("sh", "main.sh")
	s.Def.Runtime.Dir = "algo"
	res := r.Run(context.Background(), s, Hooks{})
	res.RemoveDir()
	if res.Err != nil || string(res.Output) != `{"via":"sh"}` {
		t.Fatalf("interpreter run: %s %+v (log %q)", res.Output, res.Err, res.Log)
	}
	script(t, filepath.Join(dir, "algo"), "run", `echo '{"via":"path"}'`+"\n")
	res = r.Run(context.Background(), execSpec("algo/run"), Hooks{})
	res.RemoveDir()
	if res.Err != nil || string(res.Output) != `{"via":"path"}` {
		t.Fatalf("algorithms path run: %s %+v (log %q)", res.Output, res.Err, res.Log)
	}
}

// openDirs makes the test's temporary directories (0700 like every
// t.TempDir, and their 0700 parent) traversable by another user.
func openDirs(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		for _, p := range []string{filepath.Dir(d), d} {
			if err := os.Chmod(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestExecRunsAsTheUnprivilegedUser: with RunAs (the worker's default when
// it is root), the run's uid and groups are the given ones, it can write its
// directory and $AIGW_OUTPUT_DIR, and a stop still kills its whole process
// group.
func TestExecRunsAsTheUnprivilegedUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (as in CI): only root can run a child as another user")
	}
	t.Parallel()
	r, dir := execRunner(t)
	r.RunAs = &Credential{UID: 65534, GID: 65534}
	openDirs(t, dir, r.WorkDir)
	script(t, dir, "whoami", `set -e
echo note > note.txt
echo artifact > "$AIGW_OUTPUT_DIR/a.txt"
printf '{"uid":%s,"gid":%s,"groups":"%s","home":"%s"}' "$(id -u)" "$(id -g)" "$(id -G)" "$HOME"
`)
	res := r.Run(context.Background(), execSpec("whoami"), Hooks{})
	if res.Err != nil {
		t.Fatalf("run failed: %+v (log %q)", res.Err, res.Log)
	}
	var got struct {
		UID, GID int
		Groups   string
		Home     string
	}
	if err := json.Unmarshal(res.Output, &got); err != nil {
		t.Fatalf("output %s: %v", res.Output, err)
	}
	if got.UID != 65534 || got.GID != 65534 || got.Groups != "65534" || got.Home != res.Dir {
		t.Errorf("the run ran as %+v, want uid and gid 65534, no other group, HOME the run directory %s", got, res.Dir)
	}
	if b, err := os.ReadFile(filepath.Join(res.OutputDir, "a.txt")); err != nil || string(b) != "artifact\n" {
		t.Errorf("artifact: %q %v", b, err)
	}
	res.RemoveDir()
	if _, err := os.Stat(res.Dir); !os.IsNotExist(err) {
		t.Errorf("run directory left behind: %v", err)
	}

	// A stop kills the unprivileged run's whole group.
	pids := t.TempDir()
	openDirs(t, pids)
	if err := os.Chmod(pids, 0o777); err != nil {
		t.Fatal(err)
	}
	stopKillsTheGroup(t, r, dir, pids)
}
