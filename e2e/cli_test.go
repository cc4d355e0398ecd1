package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/testwait"
)

// cliRun is one run of the built aigw binary.
type cliRun struct {
	code           int
	stdout, stderr string
}

// aigw runs bin/aigw with env (and nothing of the test's environment but
// PATH) and returns its exit code and output.
func aigw(t *testing.T, env []string, stdin string, args ...string) cliRun {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "aigw"), args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("aigw %s: still running after 2 minutes\nstderr: %s", strings.Join(args, " "), stderr.String())
	}
	r := cliRun{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return r
}

// want checks the exit code and that stderr holds each of msgs.
func (r cliRun) want(t *testing.T, code int, what string, msgs ...string) cliRun {
	t.Helper()
	if r.code != code {
		t.Fatalf("%s: exit code %d, want %d\nstdout: %s\nstderr: %s", what, r.code, code, r.stdout, r.stderr)
	}
	for _, m := range msgs {
		if !strings.Contains(r.stderr, m) {
			t.Fatalf("%s: stderr lacks %q:\n%s", what, m, r.stderr)
		}
	}
	return r
}

// cliJob is the part of a job the CLI test looks at.
type cliJob struct {
	ID      string
	State   string
	Attempt int
	Output  json.RawMessage
	Error   *struct{ Code, Message string }
}

func (r cliRun) job(t *testing.T) cliJob {
	t.Helper()
	var j cliJob
	if err := json.Unmarshal([]byte(r.stdout), &j); err != nil || j.ID == "" {
		t.Fatalf("stdout is not a job (%v): %s", err, r.stdout)
	}
	return j
}

// definitionIn writes an algorithm's definition moved to pool into dir.
func definitionIn(t *testing.T, dir, name, pool string) string {
	t.Helper()
	d, err := algorithm.LoadFile(filepath.Join(repo, "algorithms", name, algorithm.DefinitionFile))
	if err != nil {
		t.Fatal(err)
	}
	d.Pool = pool
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name+".json") // JSON is YAML
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCLI drives the built aigw binary against the running system as a user
// and an operator would: with the variables .aigw/demo.env sets, then after
// aigw login; and its bad cases (usage, API 4xx, an unreachable gateway, a
// failed job) by their exit codes and messages.
func TestCLI(t *testing.T) {
	s := up(t)
	home := t.TempDir()
	base := []string{"HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config")}
	urls := []string{"AIGW_URL=" + s.gateway + "/function/router", "AIGW_AUTH_URL=" + s.gateway + "/function/auth"}
	user := append(append(append([]string{}, base...), urls...), "AIGW_CLIENT_ID="+s.clientID, "AIGW_CLIENT_SECRET="+s.clientSecret)
	operator := append(append(append([]string{}, base...), urls...), "AIGW_ADMIN_TOKEN="+s.admin)
	defs := t.TempDir()

	t.Run("register with an operator token, not with a client's", func(t *testing.T) {
		echo := definitionIn(t, defs, "echo", s.pool)
		aigw(t, user, "", "algorithms", "register", "-f", echo).want(t, 2, "register without the admin token", "operator token")
		r := aigw(t, operator, "", "algorithms", "register", "-f", echo).want(t, 0, "register echo")
		if !strings.Contains(r.stdout, "registered echo 1.0.0 (pool "+s.pool+")") {
			t.Fatalf("register: %s", r.stdout)
		}
		aigw(t, operator, "", "algorithms", "register", "-f", definitionIn(t, defs, "kmeans", s.pool)).want(t, 0, "register kmeans")
		bad := filepath.Join(defs, "bad.yaml")
		if err := os.WriteFile(bad, []byte("name: bad\nversion: 1.0.0\npool: "+s.pool+"\nruntime: {type: exec, command: [aigw-echo]}\ntimeout_ms: -5\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		r = aigw(t, operator, "", "algorithms", "register", "-f", bad)
		if r.code != 2 && r.code != 3 || !strings.Contains(r.stderr, "timeout_ms") {
			t.Fatalf("a bad definition: %d %s", r.code, r.stderr)
		}
		aigw(t, operator, "", "algorithms", "register", "-f", filepath.Join(defs, "missing.yaml")).want(t, 2, "a missing file", "missing.yaml")
	})

	t.Run("algorithms list and get", func(t *testing.T) {
		r := aigw(t, user, "", "algorithms", "list").want(t, 0, "algorithms list")
		if !strings.Contains(r.stdout, "NAME") || !strings.Contains(r.stdout, "echo") || !strings.Contains(r.stdout, "kmeans") {
			t.Fatalf("algorithms list:\n%s", r.stdout)
		}
		r = aigw(t, user, "", "algorithms", "get", "echo", "--json").want(t, 0, "algorithms get")
		var al struct{ Name, Pool string }
		if err := json.Unmarshal([]byte(r.stdout), &al); err != nil || al.Name != "echo" || al.Pool != s.pool {
			t.Fatalf("algorithms get --json: %v %s", err, r.stdout)
		}
		aigw(t, user, "", "algorithms", "get", "nope").want(t, 3, "an unknown algorithm", `no algorithm "nope"`)
	})

	t.Run("run --wait --json prints the finished job", func(t *testing.T) {
		r := aigw(t, user, "", "run", "echo", "--input", `{"message":"hi"}`, "--wait", "--json").want(t, 0, "run echo")
		j := r.job(t)
		var out struct{ Message string }
		if err := json.Unmarshal(j.Output, &out); err != nil || j.State != "succeeded" || out.Message != "hi" {
			t.Fatalf("finished job %+v %s", j, j.Output)
		}
	})

	t.Run("run --wait shows progress to 100% and prints the output", func(t *testing.T) {
		in := filepath.Join(defs, "points.json")
		if err := os.WriteFile(in, []byte(`{"points":[[0,0],[0,1],[9,9],[9,8],[1,0],[8,9]],"k":2}`), 0o600); err != nil {
			t.Fatal(err)
		}
		r := aigw(t, user, "", "run", "kmeans", "--input", "@"+in, "--wait").want(t, 0, "run kmeans", "running", "100%")
		var out struct{ Centroids [][]float64 }
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || len(out.Centroids) != 2 {
			t.Fatalf("kmeans output (%v):\n%s", err, r.stdout)
		}
	})

	var slowID string
	t.Run("run without --wait, jobs list, get, watch, cancel", func(t *testing.T) {
		r := aigw(t, user, `{"message":"stdin"}`, "run", "echo", "--input", "-", "--json").want(t, 0, "run from stdin")
		if j := r.job(t); j.State != "queued" {
			t.Fatalf("run from stdin: %+v", j)
		}
		r = aigw(t, user, `{"message":"slow","sleep_ms":60000}`, "run", "echo", "--input", "-").want(t, 0, "run slow")
		id, state, _ := strings.Cut(strings.TrimSpace(r.stdout), " ")
		if id == "" || state != "queued" {
			t.Fatalf("run without --wait: %q", r.stdout)
		}
		slowID = id
		s.waitState(id, "running", 30*time.Second)
		r = aigw(t, user, "", "jobs", "list", "--limit", "50").want(t, 0, "jobs list")
		if !strings.Contains(r.stdout, id) || !strings.Contains(r.stdout, "running") {
			t.Fatalf("jobs list lacks %s running:\n%s", id, r.stdout)
		}
		r = aigw(t, user, "", "jobs", "list", "--state", "succeeded", "--json").want(t, 0, "jobs list --json")
		var page struct{ Jobs []cliJob }
		if err := json.Unmarshal([]byte(r.stdout), &page); err != nil || len(page.Jobs) < 2 {
			t.Fatalf("jobs list --json: %v %s", err, r.stdout)
		}
		r = aigw(t, user, "", "jobs", "get", id).want(t, 0, "jobs get")
		if !strings.Contains(r.stdout, "state:      running") {
			t.Fatalf("jobs get:\n%s", r.stdout)
		}
		aigw(t, user, "", "jobs", "cancel", id).want(t, 0, "jobs cancel")
		r = aigw(t, user, "", "jobs", "watch", id).want(t, 1, "watching a canceled job", "canceled")
		aigw(t, user, "", "jobs", "cancel", id).want(t, 3, "canceling a canceled job", "only queued or running jobs can be canceled")
		r = aigw(t, user, "", "jobs", "logs", id, "--json").want(t, 0, "jobs logs --json")
		if !strings.Contains(r.stdout, `"event":"state"`) {
			t.Fatalf("jobs logs --json:\n%s", r.stdout)
		}
	})

	t.Run("a failed job exits 1, and a dead letter is redriven", func(t *testing.T) {
		r := aigw(t, user, "", "run", "echo", "--input", `{"message":"late","sleep_ms":20000}`,
			"--execution-timeout", "1s", "--max-retries", "0", "--wait", "--json").want(t, 1, "a job that times out", "failed", "timeout")
		j := r.job(t)
		if j.State != "failed" || j.Error == nil || j.Error.Code != "timeout" {
			t.Fatalf("timed-out job %+v", j)
		}
		aigw(t, user, "", "dead-letters", "list", s.pool).want(t, 2, "dead letters with a client's credentials", "operator token")
		var dls struct {
			DeadLetters []struct {
				ID, Tenant, Algorithm string
				JobID                 string `json:"job_id"`
			} `json:"dead_letters"`
		}
		// The worker dead-letters the entry just after it records the failure.
		testwait.Eventually(t, 10*time.Second, func() bool {
			r = aigw(t, operator, "", "dead-letters", "list", s.pool, "--json").want(t, 0, "dead-letters list")
			return json.Unmarshal([]byte(r.stdout), &dls) == nil && len(dls.DeadLetters) > 0
		}, "the job's dead letter")
		if len(dls.DeadLetters) != 1 || dls.DeadLetters[0].JobID != j.ID ||
			dls.DeadLetters[0].Tenant != s.tenant || dls.DeadLetters[0].Algorithm != "echo" {
			t.Fatalf("dead letters: %s", r.stdout)
		}
		r = aigw(t, operator, "", "dead-letters", "list", s.pool).want(t, 0, "dead-letters list table")
		if !strings.Contains(r.stdout, j.ID) || !strings.Contains(r.stdout, "timeout") {
			t.Fatalf("dead-letters table:\n%s", r.stdout)
		}
		aigw(t, operator, "", "dead-letters", "redrive", s.pool, "1-0").want(t, 3, "redrive an unknown entry", "has no dead letter 1-0")
		aigw(t, operator, "", "dead-letters", "list", "no-such-pool").want(t, 3, "an unknown pool", "no such pool")
		aigw(t, operator, "", "dead-letters", "redrive", s.pool).want(t, 2, "redrive without an id or --all")
		r = aigw(t, operator, "", "dead-letters", "redrive", s.pool, dls.DeadLetters[0].ID).want(t, 0, "redrive")
		if !strings.Contains(r.stdout, j.ID+" queued (attempt 2)") {
			t.Fatalf("redrive: %s", r.stdout)
		}
		// It runs once more (and times out again, being the same job).
		done := s.waitState(j.ID, "failed", 60*time.Second)
		if done.Attempt != 2 {
			t.Fatalf("redriven job ended at attempt %d, want 2", done.Attempt)
		}
		testwait.Eventually(t, 10*time.Second, func() bool {
			return strings.Contains(aigw(t, operator, "", "dead-letters", "list", s.pool).stdout, j.ID)
		}, "the job's second dead letter")
		r = aigw(t, operator, "", "dead-letters", "redrive", s.pool, "--all", "--json").want(t, 0, "redrive --all")
		if strings.TrimSpace(strings.Join(strings.Fields(r.stdout), "")) != `{"redriven":1}` {
			t.Fatalf("redrive --all: %s", r.stdout)
		}
		s.waitState(j.ID, "failed", 60*time.Second)
	})

	t.Run("bad input and usage errors", func(t *testing.T) {
		aigw(t, user, "", "run", "echo", "--input", `{"message":7}`).want(t, 3, "input against the schema", "input at /message")
		aigw(t, user, "", "run", "echo", "--input", `{"message":`).want(t, 2, "input that is not JSON", "not valid JSON")
		aigw(t, user, "", "run", "echo").want(t, 2, "no input", "--input")
		aigw(t, user, "", "run", "echo", "--input", "@"+filepath.Join(defs, "nope.json")).want(t, 2, "a missing input file", "nope.json")
		aigw(t, user, "", "run", "nope", "--input", `{}`).want(t, 3, "an unknown algorithm", "nope")
		aigw(t, user, "", "jobs", "get", "01ARZ3NDEKTSV4RRFFQ69G5FAV").want(t, 3, "an unknown job", "no such job")
		aigw(t, user, "", "jobs", "list", "--state", "sleeping").want(t, 3, "a bad filter", "state")
		aigw(t, user, "", "bogus").want(t, 2, "an unknown command", "unknown command")
		aigw(t, user, "", "jobs", "get").want(t, 2, "a missing argument", "a job id")
		aigw(t, user, "", "run", "echo", "--input", "{}", "--priority", "urgent").want(t, 2, "a bad priority", "priority")
		wrong := append(append([]string{}, base...), urls...)
		wrong = append(wrong, "AIGW_CLIENT_ID="+s.clientID, "AIGW_CLIENT_SECRET=wrong")
		aigw(t, wrong, "", "jobs", "list").want(t, 3, "a wrong secret", "client authentication failed")
		aigw(t, base, "", "jobs", "list").want(t, 2, "no credentials at all", "aigw login")
		closed := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
		down := append(append([]string{}, base...), "AIGW_URL="+closed+"/function/router", "AIGW_CLIENT_ID=x", "AIGW_CLIENT_SECRET=y")
		aigw(t, down, "", "jobs", "list").want(t, 4, "an unreachable gateway", "cannot reach the gateway at "+closed)
	})

	t.Run("login stores the credentials for later commands", func(t *testing.T) {
		r := aigw(t, base, s.clientSecret+"\n", "login", "--url", s.gateway+"/function/router", "--client-id", s.clientID,
			"--client-secret-stdin").want(t, 0, "login")
		if !strings.Contains(r.stdout, "logged in to "+s.gateway) {
			t.Fatalf("login: %s", r.stdout)
		}
		path := filepath.Join(home, ".config", "aigw", "credentials.json")
		st, err := os.Stat(path)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("credentials file %s: %v %v", path, st, err)
		}
		r = aigw(t, base, "", "jobs", "get", slowID, "--json").want(t, 1, "jobs get after login (a canceled job)")
		if j := r.job(t); j.State != "canceled" {
			t.Fatalf("after login: %+v", j)
		}
		r = aigw(t, base, "", "pools").want(t, 0, "pools")
		if !strings.Contains(r.stdout, s.pool) {
			t.Fatalf("pools lacks %s:\n%s", s.pool, r.stdout)
		}
		aigw(t, base, "wrong\n", "login", "--url", s.gateway+"/function/router", "--client-id", s.clientID,
			"--client-secret-stdin").want(t, 3, "login with a wrong secret", "client authentication failed")
		aigw(t, base, "", "logout").want(t, 0, "logout")
		aigw(t, base, "", "jobs", "list").want(t, 2, "after logout", "aigw login")
	})

	t.Run("completion", func(t *testing.T) {
		r := aigw(t, base, "", "completion", "bash").want(t, 0, "completion bash")
		if !strings.Contains(r.stdout, "__start_aigw") {
			t.Fatalf("bash completion:\n%.300s", r.stdout)
		}
	})
}
