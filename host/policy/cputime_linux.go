package policy

import (
	"syscall"
	"unsafe"
)

// clockThreadCPUTime is CLOCK_THREAD_CPUTIME_ID.
const clockThreadCPUTime = 3

// threadCPU returns the calling thread's id and the CPU time it has used,
// in nanoseconds. Two system calls, made only once a deadline has passed.
func threadCPU() (tid int, cpu int64, ok bool) {
	var ts syscall.Timespec
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTime, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		return 0, 0, false
	}
	return syscall.Gettid(), ts.Nano(), true
}
