package selfupdate

import (
	"os/exec"
	"syscall"
)

// dieWithParent kills a binary on trial when the agent trying it dies
// (kill -9): the restarted agent then holds the ports and state alone.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
