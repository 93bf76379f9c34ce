package policy

import (
	"math"
	"time"
)

// guestClock is an instance's monotonic clock (WASI's CLOCK_MONOTONIC,
// Go's nanotime): fake, so that nothing a policy does depends on when it
// runs, and shaped so that a Go guest's runtime keeps collecting garbage
// (docs/RATIONALE.md, "Policy memory").
//
// wazero's fake clock advanced 1 ms per reading and at no other time.
// A Go guest's mutator hardly reads the clock; its garbage collector
// does, around every cycle. So the runtime's GC CPU limiter saw every
// fake millisecond as spent collecting, its bucket (one second per P)
// filled over about a hundred cycles, and the limiter switched mark
// assists off. In a reactor the background mark worker runs only when
// the evaluating goroutine gives way to the scheduler, which a policy
// that never blocks never does, so that cycle never finished: the heap
// grew by every allocation until the memory cap, after ~2 million
// formatted denials, ~5 000 evaluations allocating 64 KiB each.
//
// Here time passes between evaluations, as it does in the real world:
// each evaluation advances the clock by evalStep, while a reading
// advances it by readStep only, so that time keeps moving for code that
// waits for it. The limiter counts the evaluations' time as the
// mutator's, and the most a deadline lets a guest read the clock in one
// evaluation (a host call each, some 10^5 within 12.5 ms) counts for less
// than one evalStep: its bucket drains faster than any policy can fill
// it. A sleep (poll_oneoff, whose wait the runtime's scheduler
// uses for timers) returns at once and advances the clock by its length,
// so a sleeping goroutine wakes up on the next reading.
//
// An instance is used by one goroutine at a time, and so is its clock.
type guestClock struct{ now int64 }

const (
	readStep = 1                       // ns per reading
	evalStep = int64(time.Millisecond) // ns per evaluation
)

func (c *guestClock) nanotime() int64 {
	c.advance(readStep)
	return c.now
}

func (c *guestClock) sleep(ns int64) { c.advance(ns) }

// evaluation marks the start of an evaluation.
func (c *guestClock) evaluation() { c.advance(evalStep) }

// advance moves the clock on by ns, stopping at the largest time (292
// years of sleeping) rather than wrapping.
func (c *guestClock) advance(ns int64) {
	if ns > 0 {
		c.now += min(ns, math.MaxInt64-c.now)
	}
}
