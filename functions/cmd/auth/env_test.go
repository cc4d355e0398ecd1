package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/aigw/aigw/functions/authfn"
	"github.com/aigw/aigw/internal/logging"
	"github.com/aigw/aigw/internal/testleak"
)

// envRunMain makes the test binary run main instead of the tests, so a test
// can start the function as a process.
const envRunMain = "AIGW_TEST_RUN_MAIN"

// envDefault matches stack.yml's ${VAR:-default} substitutions.
var envDefault = regexp.MustCompile(`\$\{[A-Z0-9_]+:-([^}]*)\}`)

func TestMain(m *testing.M) {
	if os.Getenv(envRunMain) == "1" {
		os.Args = os.Args[:1]
		main()
		os.Exit(0)
	}
	os.Exit(testleak.Run(m))
}

// TestBadLogLevelFailsAtStart: AIGW_LOG_LEVEL is read by the binary, and a
// value it cannot use stops it at start with a message naming the variable.
func TestBadLogLevelFailsAtStart(t *testing.T) {
	t.Parallel()
	cmd := exec.CommandContext(t.Context(), os.Args[0])
	cmd.Env = append(os.Environ(), envRunMain+"=1", logging.EnvLevel+"=loud", "AIGW_SECRETS_DIR="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("auth with %s=loud: %v, want a failed start; stderr %q", logging.EnvLevel, err, stderr.String())
	}
	if !strings.Contains(stderr.String(), logging.EnvLevel+"=\"loud\"") {
		t.Errorf("stderr %q does not name %s", stderr.String(), logging.EnvLevel)
	}
}

// TestStackEnvironmentIsRead: every variable stack.yml sets for the function
// is read by its start-up (logger and config), so none only looks configured.
func TestStackEnvironmentIsRead(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../../stack.yml")
	if err != nil {
		t.Fatal(err)
	}
	var stack struct {
		Functions map[string]struct {
			Environment map[string]string `yaml:"environment"`
		} `yaml:"functions"`
	}
	if err := yaml.Unmarshal(raw, &stack); err != nil {
		t.Fatal(err)
	}
	fn, ok := stack.Functions["auth"]
	if !ok || len(fn.Environment) == 0 {
		t.Fatalf("stack.yml sets no environment for auth")
	}
	// What the secrets would hold, so the config reader reads on to the end.
	given := map[string]string{"AIGW_SECRETS_DIR": t.TempDir(), "AIGW_MONGO_URI": "mongodb://db/",
		"AIGW_REDIS_ADDRS": "r:7001", "AIGW_ADMIN_TOKEN": "0123456789abcdef0123"}
	read := map[string]bool{}
	getenv := func(k string) string {
		read[k] = true
		if v, ok := fn.Environment[k]; ok {
			// As deployed with nothing exported: ${VAR:-default} is default.
			return envDefault.ReplaceAllString(v, "$1")
		}
		return given[k]
	}
	if _, err := logging.New(&bytes.Buffer{}, getenv, "auth", version); err != nil {
		t.Errorf("stack.yml's %s: %v", logging.EnvLevel, err)
	}
	if _, err := authfn.ReadConfig(getenv); err != nil {
		t.Errorf("stack.yml's environment for auth: %v", err)
	}
	for k := range fn.Environment {
		if !read[k] {
			t.Errorf("stack.yml sets %s for auth, which auth never reads", k)
		}
	}
}
