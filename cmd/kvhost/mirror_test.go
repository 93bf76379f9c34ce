package main_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kvhost/kvhost/client"
	"github.com/kvhost/kvhost/client/mirror"
	"github.com/kvhost/kvhost/internal/netproxy"
	"github.com/kvhost/kvhost/kv"
)

// mirrorBound ends a test whose mirror would never converge; converging
// takes well under a second, but the client's reconnect backoff and a
// loaded machine may stretch it far.
const mirrorBound = 3 * time.Minute

// requireConverged waits until the mirror is at the store's revision now
// and then compares it with a full list.
func requireConverged(t *testing.T, ctx context.Context, c *client.Client, m *mirror.Mirror, prefix, when string) {
	t.Helper()
	st, err := c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, mirrorBound)
	defer cancel()
	if err := m.Wait(wctx, st.Revision); err != nil {
		t.Fatalf("%s: the mirror did not reach revision %d (it is at %d): %v", when, st.Revision, m.Revision(), err)
	}
	var want []kv.Entry
	for e, err := range c.All(ctx, prefix) {
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, e)
	}
	got, _ := m.Entries()
	same := func(a, b kv.Entry) bool {
		return a.Key == b.Key && string(a.Value) == string(b.Value) && a.Version == b.Version && a.ExpiresAt.Equal(b.ExpiresAt)
	}
	if !slices.EqualFunc(got, want, same) {
		i := 0
		for i < min(len(got), len(want)) && same(got[i], want[i]) {
			i++
		}
		t.Fatalf("%s: the mirror holds %d entries, the store %d; the first difference is at entry %d: mirror %v, store %v",
			when, len(got), len(want), i, at(got, i), at(want, i))
	}
}

// at describes entry i, or says there is none.
func at(es []kv.Entry, i int) string {
	if i >= len(es) {
		return "(none)"
	}
	e := es[i]
	return fmt.Sprintf("%s=%q version %d expires %v", e.Key, e.Value, e.Version, e.ExpiresAt)
}

// writeBurst makes n rapid changes under prefix: puts, some with TTLs,
// deletes and increments, on 300 keys.
func writeBurst(t *testing.T, ctx context.Context, c *client.Client, prefix string, n int, rng *rand.Rand) {
	t.Helper()
	for i := range n {
		k := fmt.Sprintf("%sk%03d", prefix, rng.IntN(300))
		var err error
		switch r := rng.IntN(10); {
		case r < 6:
			_, err = c.Put(ctx, k, fmt.Appendf(nil, "v%d", i))
		case r < 7:
			_, err = c.Put(ctx, k, fmt.Appendf(nil, "t%d", i), client.WithTTL(time.Hour))
		case r < 9:
			_, err = c.Delete(ctx, k)
		default:
			_, err = c.Increment(ctx, prefix+"counter", 1)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// A config mirror converges after a burst of 1000 updates, after its
// stream is cut mid-flow, after it was cut off for longer than the
// history kept (it loads again), and after its host is restarted.
func TestMirrorConverges(t *testing.T) {
	dir := t.TempDir()
	// A short history, so that a long cut outlives it.
	const config = "auth: {anonymous: true}\nbackend: {plugin: sqlite, settings: {history: \"100\"}}\n"
	h := startServerIn(t, dir, config)
	direct := h.client(t, "")
	p := netproxy.Start(t, h.addr)
	viaProxy, err := client.New(p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer viaProxy.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*mirrorBound)
	defer cancel()
	rng := rand.New(rand.NewPCG(1, 2))
	const prefix = "config/"
	writeBurst(t, ctx, direct, prefix, 200, rng)
	if _, err := direct.Put(ctx, "other/not-mirrored", []byte("x")); err != nil {
		t.Fatal(err)
	}

	var (
		mu      sync.Mutex
		changes int
	)
	m := mirror.New(viaProxy, prefix, mirror.RetryEvery(100*time.Millisecond),
		mirror.OnChange(func(evs []kv.Event) { mu.Lock(); changes += len(evs); mu.Unlock() }))
	go func() { _ = m.Run(ctx) }()
	requireConverged(t, ctx, direct, m, prefix, "first load")

	writeBurst(t, ctx, direct, prefix, 1000, rng)
	requireConverged(t, ctx, direct, m, prefix, "after 1000 rapid updates")

	// Cut mid-flow: the stream drops while changes keep coming.
	done := make(chan struct{})
	go func() {
		defer close(done)
		writeBurst(t, ctx, direct, prefix, 300, rng)
	}()
	for range 3 {
		p.Cut()
	}
	<-done
	requireConverged(t, ctx, direct, m, prefix, "after the stream was cut mid-flow")
	if n := m.Reloads(); n != 0 {
		t.Fatalf("the mirror loaded again %d times after a short cut; it should have resumed", n)
	}

	// Cut off for longer than the history kept: it must load again.
	p.SetDown(true)
	writeBurst(t, ctx, direct, prefix, 400, rng)
	p.SetDown(false)
	requireConverged(t, ctx, direct, m, prefix, "after a cut longer than the history")
	if m.Reloads() == 0 {
		t.Fatal("the mirror resumed from a revision older than the history kept; it should have loaded again")
	}

	// The host restarts on the same data, on another port.
	if err := h.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = h.cmd.Wait()
	h2 := startServerIn(t, dir, config)
	p.Retarget(h2.addr)
	direct2 := h2.client(t, "")
	writeBurst(t, ctx, direct2, prefix, 200, rng)
	requireConverged(t, ctx, direct2, m, prefix, "after the host restarted")
	mu.Lock()
	defer mu.Unlock()
	if changes == 0 {
		t.Fatal("OnChange was never called")
	}
}
