package main

import (
	"testing"

	"github.com/aigw/aigw/functions/executors"
	"github.com/aigw/aigw/functions/internal/mainstest"
)

func TestMain(m *testing.M) { mainstest.Main(m, main) }

// TestBadLogLevelFailsAtStart: AIGW_LOG_LEVEL is read by the binary, and a
// value it cannot use stops it at start with a message naming the variable.
func TestBadLogLevelFailsAtStart(t *testing.T) {
	t.Parallel()
	mainstest.BadLogLevelFailsAtStart(t, "executors")
}

// TestStackEnvironmentIsRead: every variable stack.yml sets for the function
// is read by its start-up (logger and config), so none only looks configured.
func TestStackEnvironmentIsRead(t *testing.T) {
	t.Parallel()
	mainstest.StackEnvironmentIsRead(t, "executors", version, func(getenv func(string) string) error {
		_, err := executors.ReadConfig(getenv)
		return err
	})
}
