package main

import (
	"os/exec"
	"syscall"
)

// setDeathSignal makes the kernel SIGKILL the child if loadgen dies without
// stopping it (e.g. SIGKILL).
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
