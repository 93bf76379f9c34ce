package policy

import (
	"context"
	"errors"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
)

// A policy's memory is held to its cap by the host, not by the module
// (docs/RATIONALE.md, "Policy memory"). internal/wasmguard turns every
// memory.grow into a call of the kvhost.__kvhost_grow import, so the host
// sees every request to grow, those it refuses too: a request that would
// bring the memory to the cap or past it stops the call at once, and the
// evaluation fails closed whatever the module would have done next. The
// grow checks the deadline before and after growing, so its time counts.
// And the memory is address space reserved for its maximum when the
// instance starts (linearMemory): a grow commits pages and returns,
// instead of copying the whole memory into a larger buffer, which took
// 50-400 ms per grow of a 32 MiB memory on a loaded machine.

var errMemoryCap = errors.New("policy memory limit reached")

// growCall implements the grow import, (pages i32) -> i32: memory.grow
// of the calling instance.
func growCall(ctx context.Context, mod api.Module, stack []uint64) {
	in, _ := ctx.Value(instanceKey{}).(*instance)
	stack[0] = uint64(in.grow(mod.Memory(), uint32(stack[0])))
}

// grow grows mem by delta pages and returns its previous size in pages,
// or 0xffffffff (-1) when the module's own maximum refuses. A grow that
// would reach the cap aborts the call.
func (in *instance) grow(mem api.Memory, delta uint32) uint32 {
	if in == nil || mem == nil {
		return 0xffffffff
	}
	in.check()
	pages, _ := mem.Grow(0) // the size in pages: Size in bytes wraps at 4 GiB
	if uint64(pages)+uint64(delta) >= uint64(in.set.spec.MemoryLimitPages) {
		in.memCapped = true
		panic(errMemoryCap) // wazero turns this into the call's error
	}
	prev, ok := mem.Grow(delta)
	in.check() // the time the grow took counts
	if !ok {
		return 0xffffffff
	}
	return prev
}

// memoryAllocator gives each instance's memory its own linearMemory.
var memoryAllocator = experimental.MemoryAllocatorFunc(func(_, max uint64) experimental.LinearMemory {
	if m := reserveMemory(max); m != nil {
		return m
	}
	return &sliceMemory{max: max}
})

// sliceMemory is a linear memory in a Go slice, grown as wazero grows
// its own (by copying): for platforms without reserveMemory, or when the
// reservation fails.
type sliceMemory struct {
	buf []byte
	max uint64
}

func (m *sliceMemory) Reallocate(size uint64) []byte {
	if size > m.max {
		return nil
	}
	if n := uint64(len(m.buf)); size > n {
		m.buf = append(m.buf, make([]byte, size-n)...)
	}
	return m.buf[:size]
}

func (m *sliceMemory) Free() { m.buf = nil }
