package serve

import (
	"fmt"
	"os"
	"syscall"
)

// takeStdout returns the process's stdout for the SDK's own use and points
// fd 1 at stderr, so that whatever else writes to stdout (fmt.Println, C
// libraries, child processes) ends in the log instead of corrupting the
// output or the protocol.
func takeStdout() (*os.File, error) {
	fd, _, errno := syscall.Syscall(syscall.SYS_FCNTL, 1, syscall.F_DUPFD_CLOEXEC, 3)
	if errno != 0 {
		return nil, fmt.Errorf("move stdout: %w", errno)
	}
	if err := syscall.Dup3(2, 1, 0); err != nil {
		syscall.Close(int(fd))
		return nil, fmt.Errorf("move stdout: %w", err)
	}
	return os.NewFile(fd, "/dev/stdout"), nil
}
