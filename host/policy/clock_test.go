package policy

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kvhost/kvhost/policies/policytest"
)

// testEngine is an engine whose compilation cache is the one the
// package's external tests share (helpers_test.go), so that each module
// is compiled once.
func testEngine(t *testing.T) *Engine {
	t.Helper()
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	e, err := NewEngine(context.Background(), Options{CacheDir: filepath.Join(dir, "kvhost-policytest", "wazero"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	return e
}

// A Go policy's heap must stay where its garbage collector holds it
// however many collections the instance goes through. With wazero's fake
// clock (1 ms per reading, nothing between evaluations) the guest
// runtime's GC CPU limiter saw the collector use every millisecond,
// turned mark assists off after about a hundred collections, and the
// collection then in progress never ended: the memory grew by every
// allocation to the cap. A policy formatting every denial failed with
// out_of_memory after ~2 million evaluations per instance, this test's
// 64 KiB of garbage per evaluation at ~5 300 (docs/RATIONALE.md, "Policy
// memory"). 20 000 such evaluations allocate 1.3 GB through a 4 MB heap
// goal, over 300 collections: three times what stopped the collector,
// and what millions of ordinary denials go through.
func TestGoPolicyMemoryStaysBoundedThroughCollections(t *testing.T) {
	n := 20_000
	if testing.Short() {
		n = 8_000
	}
	e := testEngine(t)
	path := policytest.Build(t, "host/policy/testdata/denyf")
	if err := e.Load(context.Background(), []Spec{{Name: "denyf", Path: path, PoolSize: 1}}); err != nil {
		t.Fatal(err)
	}
	p := e.cur.Load().sets[0]
	pages := func() uint32 {
		in := <-p.pool
		defer func() { p.pool <- in }()
		return in.mem.Size() / 65536
	}
	req := Request{Op: OpPut, Key: "garbage/users/42", Principal: "alice", Tenant: "acme", ValueLen: 100}
	run := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			_, err := e.Evaluate(context.Background(), req)
			if !errors.Is(err, ErrDenied) {
				t.Fatalf("evaluation %d: %v (memory %d pages), want a denial", i+1, err, pages())
			}
		}
	}
	// The heap reaches its working size within a few collections.
	const settle = 1_000
	run(0, settle)
	before := pages()
	run(settle, n)
	after := pages()
	grown := int64(after-before) * 65536
	t.Logf("memory %d pages after %d evaluations, %d after %d: %d bytes per evaluation", before, settle, after, n, grown/int64(n-settle))
	// The old clock grew 64 KiB per evaluation once stuck; a heap that
	// keeps nothing of an evaluation grows by nothing. A MiB of slack
	// leaves room for the allocator's fragmentation.
	if grown > 1<<20 {
		t.Errorf("the policy's memory grew from %d to %d pages over %d evaluations that keep nothing: %d bytes per evaluation", before, after, n-settle, grown/int64(n-settle))
	}
}

// The monotonic clock a policy reads is fake and deterministic: it moves
// a nanosecond per reading, a millisecond per evaluation, and by the
// length of every sleep, which returns at once.
func TestGuestClock(t *testing.T) {
	var c guestClock
	if a, b := c.nanotime(), c.nanotime(); b-a != readStep {
		t.Errorf("two readings %d apart, want %d", b-a, readStep)
	}
	a := c.nanotime()
	c.evaluation()
	if b := c.nanotime(); b-a != evalStep+readStep {
		t.Errorf("readings around an evaluation %d apart, want %d", b-a, evalStep+readStep)
	}
	a = c.nanotime()
	c.sleep(5 * int64(time.Second))
	c.sleep(-1)
	if b := c.nanotime(); b-a != 5*int64(time.Second)+readStep {
		t.Errorf("readings around a 5 s sleep %d apart, want %d", b-a, 5*int64(time.Second)+readStep)
	}
	c.sleep(1<<63 - 1)
	c.evaluation()
	if b := c.nanotime(); b != 1<<63-1 {
		t.Errorf("the clock wrapped to %d after the longest sleep, want it to stop at the largest time", b)
	}
}

// A sleeping Go policy wakes up at once, its clock an hour later: the
// runtime's scheduler waits for its timer in poll_oneoff, which advances
// the clock instead of sleeping.
func TestGoPolicySleepAdvancesItsClock(t *testing.T) {
	e := testEngine(t)
	path := policytest.Build(t, "host/policy/testdata/misbehave")
	if err := e.Load(context.Background(), []Spec{{Name: "sleeper", Path: path, PoolSize: 1}}); err != nil {
		t.Fatal(err)
	}
	d, err := e.Evaluate(context.Background(), Request{Op: OpGet, Key: "sleep/1"})
	if !errors.Is(err, ErrDenied) || d.Reason != "slept 1h0m0s" {
		t.Fatalf("the sleeping policy answered %+v, %v; want a denial saying it slept 1h0m0s", d, err)
	}
}
