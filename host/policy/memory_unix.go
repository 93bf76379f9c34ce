//go:build unix

package policy

import (
	"math"
	"syscall"

	"github.com/tetratelabs/wazero/experimental"
)

// reservedMemory is a linear memory in address space reserved, without
// access, for its maximum size when the instance starts. Growing makes
// the next pages readable and writable (the kernel supplies zeroed pages
// on first touch): nothing is copied or zeroed, the memory never moves,
// and only the pages a policy touches cost physical memory. Free returns
// everything at once.
type reservedMemory struct {
	mem       []byte // the whole reservation
	committed uint64 // bytes readable and writable
}

// reserveMemory reserves max bytes, or returns nil.
func reserveMemory(max uint64) experimental.LinearMemory {
	if max == 0 || max > math.MaxInt {
		return nil
	}
	b, err := syscall.Mmap(-1, 0, int(max), syscall.PROT_NONE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return nil
	}
	return &reservedMemory{mem: b}
}

func (m *reservedMemory) Reallocate(size uint64) []byte {
	if size > uint64(len(m.mem)) {
		return nil
	}
	if size > m.committed {
		if err := syscall.Mprotect(m.mem[m.committed:size], syscall.PROT_READ|syscall.PROT_WRITE); err != nil {
			return nil // out of memory: memory.grow returns -1
		}
		m.committed = size
	}
	return m.mem[:size:size]
}

func (m *reservedMemory) Free() {
	if m.mem != nil {
		_ = syscall.Munmap(m.mem)
		m.mem = nil
	}
}
