//go:build !linux

package serve

import "os"

// takeStdout returns the process's stdout for the SDK's own use and points
// os.Stdout at stderr (Go code only: elsewhere than Linux, fd 1 itself
// stays).
func takeStdout() (*os.File, error) {
	out := os.Stdout
	os.Stdout = os.Stderr
	return out, nil
}
