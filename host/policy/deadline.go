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
// in the instance. There is no timer, context or goroutine per call, and
// no watchdog goroutine that a busy scheduler could starve: compiled wasm
// is not preemptible, so with every P running a runaway policy only the
// runaway goroutines themselves can stop it.
//
// The deadline is wall-clock time, and on a busy machine the operating
// system puts a thread aside for 20-50 ms however little it has to do: a
// healthy evaluation of 30 µs then runs past a 10 ms deadline. So a
// passed deadline does not stop the call at once: it starts a grace
// period counted in the CPU time of the evaluating thread (grace), which a
// thread that is not running does not use. A descheduled evaluation
// finishes within it; a runaway one uses it up at the speed it runs and is
// stopped about a quarter of its deadline late on an idle machine. A
// backstop in wall-clock time far above the deadline stops any call
// whatever its CPU time says. Where the thread's CPU time cannot be read,
// a passed deadline stops the call at once, as before.

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
	if now := monoNow(); now > in.deadline && in.graceSpent(now) {
		in.timedOut = true
		panic(errDeadline) // wazero turns this into the call's error
	}
}

// Grace and backstop of a deadline d (docs/RATIONALE.md, "Policy
// deadlines"): past d, a call may use d/graceDivisor more CPU time on
// its thread; past backstopFactor*d + backstopFloor it stops whatever.
const (
	graceDivisor   = 4
	backstopFactor = 10
	backstopFloor  = time.Second
)

// backstop returns the wall-clock limit of a call with a deadline of d.
func backstop(d time.Duration) time.Duration { return backstopFactor*d + backstopFloor }

// grace tracks the CPU time a call has used since its deadline passed.
// The goroutine may move to another thread at a host call (Go may
// preempt it there): the time since the last check on the old thread is
// then not counted, at most one check interval of work.
type grace struct {
	started bool
	tid     int   // the thread of the last reading
	last    int64 // its CPU time then, in nanoseconds
	used    int64 // CPU time used since the deadline, in nanoseconds
}

// graceSpent reports whether a call whose deadline has passed at now
// (monoNanos) must stop: its grace is used up or the backstop passed.
func (in *instance) graceSpent(now int64) bool {
	if now > in.backstop {
		return true
	}
	tid, cpu, ok := threadCPU()
	if !ok {
		return true
	}
	g := &in.grace
	if g.started && tid == g.tid {
		g.used += cpu - g.last
	}
	g.started, g.tid, g.last = true, tid, cpu
	return g.used > in.timeout/graceDivisor
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
	in.backstop = start + int64(backstop(timeout))
	in.timeout = int64(timeout)
	in.grace = grace{}
}

// disarm clears the deadline and reports whether it was overrun.
func (in *instance) disarm() bool {
	in.deadline = 0
	return in.timedOut
}
