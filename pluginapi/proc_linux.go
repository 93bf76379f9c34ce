package pluginapi

import (
	"os/exec"
	"syscall"
)

// bindToParent makes the kernel end the plugin if the host dies without
// ending it (SIGKILL, a crash), so no plugin is ever left behind.
func bindToParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
