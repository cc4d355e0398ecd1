//go:build unix && !linux

package procs

import "syscall"

// sysProcAttr puts a function's process in its own process group.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
