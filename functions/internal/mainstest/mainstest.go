// Package mainstest holds the checks every function's command shares: the
// command started as a real process from its own test binary, and stack.yml's
// environment for it held against what its start-up reads.
package mainstest

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/aigw/aigw/internal/logging"
	"github.com/aigw/aigw/internal/testleak"
)

// envRunMain makes the test binary run main instead of the tests, so a test
// can start the function as a process.
const envRunMain = "AIGW_TEST_RUN_MAIN"

// envDefault matches stack.yml's ${VAR:-default} substitutions.
var envDefault = regexp.MustCompile(`\$\{[A-Z0-9_]+:-([^}]*)\}`)

// Main is a command's TestMain: run as a child by BadLogLevelFailsAtStart it
// runs main, else the tests with the goroutine-leak check.
func Main(m *testing.M, main func()) {
	if os.Getenv(envRunMain) == "1" {
		os.Args = os.Args[:1]
		main()
		os.Exit(0)
	}
	os.Exit(testleak.Run(m))
}

// BadLogLevelFailsAtStart: AIGW_LOG_LEVEL is read by the binary, and a value
// it cannot use stops it at start with a message naming the variable.
func BadLogLevelFailsAtStart(t *testing.T, name string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0])
	cmd.Env = append(os.Environ(), envRunMain+"=1", logging.EnvLevel+"=loud", "AIGW_SECRETS_DIR="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("%s with %s=loud: %v, want a failed start; stderr %q", name, logging.EnvLevel, err, stderr.String())
	}
	if !strings.Contains(stderr.String(), logging.EnvLevel+"=\"loud\"") {
		t.Errorf("stderr %q does not name %s", stderr.String(), logging.EnvLevel)
	}
}

// StackEnvironmentIsRead: every variable stack.yml (at the repository root,
// three folders up from a command's package) sets for the function name is
// read by its start-up — the logger and readConfig — and its value as
// deployed with nothing exported parses, so no variable only looks configured.
func StackEnvironmentIsRead(t *testing.T, name, version string, readConfig func(getenv func(string) string) error) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "stack.yml"))
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
	fn, ok := stack.Functions[name]
	if !ok || len(fn.Environment) == 0 {
		t.Fatalf("stack.yml sets no environment for %s", name)
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
	if _, err := logging.New(&bytes.Buffer{}, getenv, name, version); err != nil {
		t.Errorf("stack.yml's %s: %v", logging.EnvLevel, err)
	}
	if err := readConfig(getenv); err != nil {
		t.Errorf("stack.yml's environment for %s: %v", name, err)
	}
	for k := range fn.Environment {
		if !read[k] {
			t.Errorf("stack.yml sets %s for %s, which %s never reads", k, name, name)
		}
	}
}
