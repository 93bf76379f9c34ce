package sharedpages

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// memoryFile makes an anonymous memory file of size bytes, closed on exec
// unless handed to a child explicitly.
func memoryFile(name string, size int64) (*os.File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("sharedpages: memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), name)
	if err := f.Truncate(size); err != nil {
		f.Close()
		return nil, fmt.Errorf("sharedpages: sizing the area: %w", err)
	}
	return f, nil
}
