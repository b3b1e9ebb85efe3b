package testenv

import (
	"os/exec"
	"syscall"
)

// setProcAttr makes the child die with the test binary, so that a test
// killed by a timeout leaves no server behind.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
