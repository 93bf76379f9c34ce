package sharedpages

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// memoryFile makes an anonymous memory file of size bytes, closed on exec
// unless handed to a child explicitly. Its size is sealed: a plugin that
// shrank it would make the host's next read of the mapping a SIGBUS, which
// no Go program survives.
func memoryFile(name string, size int64) (*os.File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("sharedpages: memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), name)
	if err := f.Truncate(size); err != nil {
		f.Close()
		return nil, fmt.Errorf("sharedpages: sizing the area: %w", err)
	}
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_SEAL); err != nil {
		f.Close()
		return nil, fmt.Errorf("sharedpages: sealing the area's size: %w", err)
	}
	return f, nil
}
