package conformance

import (
	"fmt"
	"time"

	"github.com/kvhost/kvhost/kv"
)

// These rules start watches at revisions they computed from the store
// revision, so they run while nothing else writes to the store.

func testReplay(c *check) {
	ctx := c.Context()
	a, b, n := c.k("h/a"), c.k("h/b"), c.k("h/n")
	c.put(a, "1", 0)
	eb := c.put(b, "1", 0) // the replay starts here
	c.put(c.k("other"), "x", 0)
	rr, err := c.b.RefreshTTL(ctx, kv.RefreshRequest{Key: a, TTL: time.Hour})
	c.must("refresh", err)
	d, err := c.b.Delete(ctx, b, kv.Condition{})
	c.must("delete", err)
	ctr, err := c.b.Increment(ctx, n, 1)
	c.must("increment", err)
	history := []kv.Event{
		putEv(eb, "1"),
		{Type: kv.EventTTL, Key: a, Version: rr.Entry.Version, Revision: rr.Revision, ExpiresAt: rr.Entry.ExpiresAt},
		deleteEv(b, eb.Version, d.Revision),
		{Type: kv.EventPut, Key: n, Value: []byte("1"), Version: ctr.Version, Revision: ctr.Version},
	}
	s := c.watch(kv.WatchRequest{Prefix: c.k("h/"), StartRevision: eb.Version})
	withTTL := c.watch(kv.WatchRequest{Prefix: c.k("h/"), StartRevision: eb.Version, TTLEvents: true})
	live := c.put(c.k("h/live"), "x", 0)
	for _, ev := range history {
		if ev.Type != kv.EventTTL {
			s.expectChange(ev)
		}
		withTTL.expectChange(ev)
	}
	s.expect(putEv(live, "x"))
	withTTL.expect(putEv(live, "x"))
	later := c.put(c.k("h/later"), "x", 0)
	s.expect(putEv(later, "x"))
}

func testFutureStart(c *check) {
	h := c.head()
	s := c.watch(kv.WatchRequest{Prefix: c.k("f/"), StartRevision: h + 3})
	var puts []kv.Entry
	for i := range 4 {
		puts = append(puts, c.put(c.k(fmt.Sprint("f/", i)), "x", 0))
	}
	if puts[2].Version != h+3 {
		c.Fatalf("the third put after revision %d took revision %d; with nothing else writing it should be %d", h, puts[2].Version, h+3)
	}
	if ev := s.next(); ev.Revision != h+3 || ev.Key != puts[2].Key {
		c.Fatalf("a watch from revision %d (the store at %d) got %s first, want the change at revision %d", h+3, h, fmtEvent(ev), h+3)
	}
	s.expect(putEv(puts[3], "x"))
}

func testListThenWatch(c *check) {
	ctx := c.Context()
	for _, n := range []string{"l/1", "l/2", "l/3"} {
		c.put(c.k(n), "x", 0)
	}
	lr := c.list(kv.ListRequest{Prefix: c.k("l/")})
	e4 := c.put(c.k("l/4"), "x", 0)
	d, err := c.b.Delete(ctx, c.k("l/1"), kv.Condition{})
	c.must("delete", err)
	c.put(c.k("other"), "x", 0)
	s := c.watch(kv.WatchRequest{Prefix: c.k("l/"), StartRevision: lr.Revision + 1})
	if ev := s.next(); ev.Key != e4.Key || ev.Revision != e4.Version {
		c.Fatalf("list reported revision %d; a watch from %d got %s first, want the first change after the list (%s)", lr.Revision, lr.Revision+1, fmtEvent(ev), fmtEvent(putEv(e4, "x")))
	}
	s.expect(deleteEv(c.k("l/1"), lr.Entries[0].Version, d.Revision))
	z := c.put(c.k("l/z"), "z", 0)
	s.expect(putEv(z, "z"))
}

func testCompacted(c *check) {
	retention := c.cfg.retention
	if retention <= 0 {
		c.Skip("the backend's history retention is not known: pass conformance.WithRetention(n) (kvhost plugin verify --retention N) to check compaction")
	}
	first := c.put(c.k("c/first"), "x", 0).Version
	key := func(i int) string { return c.k(fmt.Sprintf("c/k/%07d", i)) }
	c.putMany(retention+kv.MaxBatchOps, key, []byte("x")) // revisions first+1 on, one per key
	if c.info.Capabilities.CleanupExpired {
		c.cleanupAll() // a backend prunes its history here
	}
	head := c.head()
	_, err := c.watcher().Watch(c.Context(), kv.WatchRequest{Prefix: c.k("c/"), StartRevision: 1})
	ce, ok := isCompacted(err)
	if !ok {
		c.Fatalf("a watch from revision 1, %d revisions after it on a backend that keeps %d: %v, want a *kv.CompactedError", head-1, retention, err)
	}
	if ce.Requested != 1 || ce.Oldest <= 1 || ce.Oldest > head-int64(retention)+1 {
		c.Fatalf("a watch from revision 1 with the store at %d and a retention of %d: compacted error %+v; want Requested 1 and Oldest between 2 and %d",
			head, retention, *ce, head-int64(retention)+1)
	}
	st, err := c.b.Stats(c.Context())
	c.must("stats", err)
	if st.OldestRevision != ce.Oldest {
		c.Fatalf("Stats says the oldest revision kept is %d; the compacted error said %d", st.OldestRevision, ce.Oldest)
	}
	_, err = c.watcher().Watch(c.Context(), kv.WatchRequest{Prefix: c.k("c/"), StartRevision: ce.Oldest - 1})
	if _, ok := isCompacted(err); !ok {
		c.Fatalf("a watch from revision %d, just before the oldest kept (%d): %v, want a *kv.CompactedError", ce.Oldest-1, ce.Oldest, err)
	}
	s := c.watch(kv.WatchRequest{Prefix: c.k("c/"), StartRevision: ce.Oldest})
	for rev := ce.Oldest; rev < ce.Oldest+3 && rev <= head; rev++ {
		if want := key(int(rev - first - 1)); rev > first {
			if ev := s.next(); ev.Revision != rev || ev.Key != want {
				c.Fatalf("a watch from the oldest revision kept (%d) got %s, want the put of %q at revision %d", ce.Oldest, fmtEvent(ev), want, rev)
			}
		}
	}
}

func testHistoryRefused(c *check) {
	w, ok := c.b.(kv.Watcher)
	if !ok {
		return // nothing to call: refused by construction
	}
	e := c.put(c.k("a"), "x", 0)
	ws, err := w.Watch(c.Context(), kv.WatchRequest{Prefix: c.p, StartRevision: e.Version})
	if err == nil {
		_ = ws.Close()
	}
	c.wantErr("a watch from a start revision on a backend that does not claim watch-history", err, kv.ErrNotSupported)
}
