//go:build unix

package policy

import (
	"math"
	"sync/atomic"
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
	mapped    []byte // the reservation, for Munmap
	mem       []byte // the memory's part of it
	committed uint64 // bytes of mem readable and writable
}

// colours staggers the start of memories over this many pages.
// Reservations of one size are mapped next to each other, so without it
// every memory would start at the same address modulo its size, and the
// hot data of the same runtime in each instance (every Go policy has
// one) would compete for the same cache sets: the chain benchmark ran up
// to 5% slower than with memories in Go slices without it, within noise
// with it.
const colours = 64

var nextColour atomic.Uint32

// reserveMemory reserves max bytes, or returns nil.
func reserveMemory(max uint64) experimental.LinearMemory {
	page := uint64(syscall.Getpagesize())
	if max == 0 || max > math.MaxInt-colours*page {
		return nil
	}
	off := uint64(nextColour.Add(1)%colours) * page
	b, err := syscall.Mmap(-1, 0, int(off+max), syscall.PROT_NONE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return nil
	}
	return &reservedMemory{mapped: b, mem: b[off:]}
}

func (m *reservedMemory) Reallocate(size uint64) []byte {
	if size > uint64(len(m.mem)) {
		return nil
	}
	if size > m.committed {
		// Wasm pages are 64 KiB, a multiple of the system's page.
		if err := syscall.Mprotect(m.mem[m.committed:size], syscall.PROT_READ|syscall.PROT_WRITE); err != nil {
			return nil // out of memory: memory.grow returns -1
		}
		m.committed = size
	}
	return m.mem[:size:size]
}

func (m *reservedMemory) Free() {
	if m.mapped != nil {
		_ = syscall.Munmap(m.mapped)
		m.mapped, m.mem = nil, nil
	}
}
