package policy

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero/api"
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
	if in == nil || in.deadline == 0 {
		return
	}
	if monoNow() > in.deadline {
		in.timedOut = true
		panic(errDeadline) // wazero turns this into the call's error
	}
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
