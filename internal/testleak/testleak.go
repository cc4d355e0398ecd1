// Package testleak makes a test binary fail when goroutines are still running
// after its tests: every package whose tests start goroutines (servers,
// clients, workers) calls Main from its TestMain, so a component that does not
// stop what it started, or a test that does not close what it opened, fails
// in the package that leaked it.
package testleak

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Main runs the tests of m, then checks for leaked goroutines (goleak retries
// for a while, so goroutines that are stopping get the time to end) and exits.
// Use it as the whole TestMain:
//
//	func TestMain(m *testing.M) { testleak.Main(m) }
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run runs the tests of m and returns the exit code, 1 when they passed but
// left goroutines running, for a TestMain that does more around m.Run:
//
//	code := testleak.Run(m) // in place of m.Run()
func Run(m *testing.M) int {
	code := m.Run()
	if code != 0 {
		return code
	}
	// goleak.Find itself waits only about 0.4 s for stopping goroutines; a
	// closed go-redis pool's background dialer notices the close only after
	// its 1 s retry sleep and one dial timeout, so look again for up to 5 s.
	err := goleak.Find(Options()...)
	for end := time.Now().Add(5 * time.Second); err != nil && time.Now().Before(end); {
		time.Sleep(250 * time.Millisecond)
		err = goleak.Find(Options()...)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "testleak: goroutines left running after the tests passed: %v\n", err)
		return 1
	}
	return 0
}

// Options are the goroutines every check ignores: only ones a library starts
// once per process and never stops, none of a component's own.
func Options() []goleak.Option {
	return []goleak.Option{}
}
