//go:build !linux

package pluginapi

import "os/exec"

// bindToParent is a no-op where the kernel offers no parent-death signal;
// the host still ends its plugins when it exits normally.
func bindToParent(*exec.Cmd) {}
