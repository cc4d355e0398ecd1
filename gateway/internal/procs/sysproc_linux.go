package procs

import "syscall"

// sysProcAttr puts a function's process in its own process group (so a stop
// reaches its children) and has the kernel kill it if the gateway dies first.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
