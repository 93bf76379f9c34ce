package sqlite

// growStack grows the calling goroutine's stack in one step, while it is
// still shallow, to the depth the SQLite engine needs. modernc.org/sqlite
// is C translated to Go, with deep call chains and large frames; a fresh
// goroutine (gRPC runs each RPC on one) would otherwise grow its stack by
// doubling several times inside the engine, each time copying and
// adjusting every frame already there. Measured on a point Get over gRPC,
// that was a sixth of the RPC's CPU time (docs/PERFORMANCE.md).
func growStack() { growStackFrame(stackIndex) }

//go:noinline
func growStackFrame(i int) byte {
	var pad [stackPad]byte // indexed at run time, so the frame stays
	pad[i] = 1
	return pad[i/2]
}

const stackPad = 64 << 10

// stackIndex is only read; being a variable keeps the compiler from
// proving the frame unused.
var stackIndex = 1
