package policy

import (
	"context"
	"errors"
	"io"
	"math/rand"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
)

// Deadlines cost nothing per call beyond two stores (docs/RATIONALE.md,
// "Policy deadlines"). The module is instrumented (internal/wasmguard) to
// call the host's check every wasmguard.Interval loop iterations or
// function entries; the check compares the clock with the deadline stored
// in the instance and aborts the call once it has passed. There is no
// timer, context or goroutine per call, and no watchdog goroutine that a
// busy scheduler could starve: compiled wasm is not preemptible, so with
// every P running a runaway policy only the runaway goroutines themselves
// can stop it.

// epoch anchors monotonic nanoseconds; deadlines are relative to it.
var epoch = time.Now()

func monoNanos(t time.Time) int64 { return int64(t.Sub(epoch)) + 1 }

// monoNow reads only the monotonic clock, about half the cost of
// time.Now on a virtual machine.
func monoNow() int64 { return int64(time.Since(epoch)) + 1 }

// wallClock derives wall time from a monotonic reading, re-anchored on the
// real clock every second: a request's Now needs millisecond precision,
// not a second clock read per operation.
type wallAnchor struct {
	mono int64
	wall time.Time
}

var anchor atomic.Pointer[wallAnchor]

func wallAt(mono int64) time.Time {
	a := anchor.Load()
	if a == nil || mono-a.mono > int64(time.Second) || mono < a.mono {
		now := time.Now()
		a = &wallAnchor{mono: monoNanos(now), wall: now.Round(0)}
		anchor.Store(a)
	}
	return a.wall.Add(time.Duration(mono - a.mono))
}

// instanceKey keys the instance in the context of its calls, for the
// host functions.
type instanceKey struct{}

var errDeadline = errors.New("policy deadline exceeded")

// deadlineCheck implements the instrumentation's import: abort once the deadline
// of the running evaluation has passed. It runs on the evaluating
// goroutine, so the instance's fields need no synchronisation.
func deadlineCheck(ctx context.Context, _ api.Module, _ []uint64) {
	in, _ := ctx.Value(instanceKey{}).(*instance)
	in.check()
}

// check aborts the running call once its deadline has passed. Host
// functions call it themselves: the instrumentation charges a call to
// one of them a single step, whatever work it does.
func (in *instance) check() {
	if in == nil || in.deadline == 0 {
		return
	}
	if monoNow() > in.deadline {
		in.timedOut = true
		panic(errDeadline) // wazero turns this into the call's error
	}
}

// hostCallCheck checks the deadline before every call of a WASI function.
// wazero's wasi_snapshot_preview1 cannot be wrapped; a function listener
// on that host module alone runs in the same call, before the function,
// and a panic in it aborts the call as one in the function would. The
// policy's own functions are compiled without listeners.
type hostCallCheck struct{}

func (hostCallCheck) NewFunctionListener(api.FunctionDefinition) experimental.FunctionListener {
	return hostCallCheck{}
}

func (hostCallCheck) Before(ctx context.Context, _ api.Module, _ api.FunctionDefinition, _ []uint64, _ experimental.StackIterator) {
	in, _ := ctx.Value(instanceKey{}).(*instance)
	in.check()
}

func (hostCallCheck) After(context.Context, api.Module, api.FunctionDefinition, []uint64) {}

func (hostCallCheck) Abort(context.Context, api.Module, api.FunctionDefinition, error) {}

// hostWorkChunk bounds the work a host function does between two checks
// within one call (random_get's bytes, fd_write's per vector).
const hostWorkChunk = 64 << 10

// randSource is WASI's random source: wazero's default (math/rand seeded
// with 42, deterministic), read at most hostWorkChunk bytes at a time with
// a deadline check before each. math/rand's Read yields the same stream
// whatever the split.
type randSource struct {
	in *instance
	r  io.Reader
}

func newRandSource(in *instance) *randSource {
	return &randSource{in: in, r: rand.New(rand.NewSource(42))}
}

func (s *randSource) Read(b []byte) (int, error) {
	s.in.check()
	return s.r.Read(b[:min(len(b), hostWorkChunk)])
}

// arm sets the deadline of the call about to start at start (monoNow).
func (in *instance) arm(start int64, timeout time.Duration) {
	in.deadline = start + int64(timeout)
}

// disarm clears the deadline and reports whether it was overrun.
func (in *instance) disarm() bool {
	in.deadline = 0
	return in.timedOut
}
