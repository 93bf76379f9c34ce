package pluginapi

import (
	"os/exec"
	"syscall"
)

// bindToParent makes the kernel end the plugin if the host dies without
// ending it (SIGKILL, a crash), so no plugin is ever left behind. The
// plugin gets its own process group, so a Ctrl-C or SIGTERM sent to the
// host's group reaches the host alone and the host ends the plugin in
// order (closing the backend cleanly) instead of racing it.
func bindToParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
