package conformance

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kvhost/kvhost/kv"
)

func testWatchDelivers(c *check) {
	ctx := c.Context()
	c.put(c.k("cfg/before"), "x", 0) // before the watch: never delivered
	s := c.watch(kv.WatchRequest{Prefix: c.k("cfg/")})
	e1 := c.put(c.k("cfg/a"), "1", 0)
	c.put(c.k("other/a"), "x", 0)
	c.put(c.k("cfg"), "x", 0) // not under "cfg/"
	e2 := c.put(c.k("cfg/a"), "2", 0)
	ctr, err := c.b.Increment(ctx, c.k("cfg/n"), 3)
	c.must("increment", err)
	d, err := c.b.Delete(ctx, c.k("cfg/a"), kv.Condition{})
	c.must("delete", err)
	res := c.batch(kv.PutOp(c.k("cfg/b"), []byte("b"), 0, kv.Condition{}), kv.DeleteOp(c.k("cfg/n"), kv.Condition{}))
	z := c.put(c.k("cfg/z"), "z", 0)
	s.expect(putEv(e1, "1"))
	s.expect(putEv(e2, "2"))
	s.expect(kv.Event{Type: kv.EventPut, Key: c.k("cfg/n"), Value: []byte("3"), Version: ctr.Version, Revision: ctr.Version})
	s.expect(deleteEv(c.k("cfg/a"), e2.Version, d.Revision))
	s.expect(kv.Event{Type: kv.EventPut, Key: c.k("cfg/b"), Value: []byte("b"), Version: res.Results[0].Version, Revision: res.Results[0].Revision})
	s.expect(deleteEv(c.k("cfg/n"), ctr.Version, res.Results[1].Revision))
	s.expect(putEv(z, "z"))
	// A second watch of the subtest's whole key space sees later changes.
	all := c.watch(kv.WatchRequest{Prefix: c.p})
	e3 := c.put(c.k("zz"), "zz", 0)
	all.expect(putEv(e3, "zz"))
	_, err = c.watcher().Watch(ctx, kv.WatchRequest{Prefix: c.k("a\x00")})
	c.wantErr("watch of an invalid prefix", err, kv.ErrInvalidArgument)
}

func testWatchEventFields(c *check) {
	ctx := c.Context()
	a, b := c.k("f/a"), c.k("f/b")
	s := c.watch(kv.WatchRequest{Prefix: c.k("f/"), TTLEvents: true})
	e1 := c.put(a, "1", time.Hour)
	s.expect(putEv(e1, "1"))
	rr, err := c.b.RefreshTTL(ctx, kv.RefreshRequest{Key: a, TTL: 2 * time.Hour})
	c.must("refresh", err)
	s.expect(kv.Event{Type: kv.EventTTL, Key: a, Version: e1.Version, Revision: rr.Revision, ExpiresAt: rr.Entry.ExpiresAt})
	ctr, err := c.b.Increment(ctx, a, 1)
	c.must("increment", err)
	s.expect(kv.Event{Type: kv.EventPut, Key: a, Value: []byte("2"), Version: ctr.Version, Revision: ctr.Version, ExpiresAt: rr.Entry.ExpiresAt})
	e2 := c.put(a, "3", 0)
	s.expect(putEv(e2, "3"))
	res := c.batch(kv.PutOp(b, []byte("b"), time.Hour, kv.Condition{}))
	s.expect(kv.Event{Type: kv.EventPut, Key: b, Value: []byte("b"), Version: res.Results[0].Version, Revision: res.Results[0].Revision, ExpiresAt: res.Results[0].ExpiresAt})
	d, err := c.b.Delete(ctx, a, kv.Condition{})
	c.must("delete", err)
	s.expect(deleteEv(a, e2.Version, d.Revision))
	rr, err = c.b.RefreshTTL(ctx, kv.RefreshRequest{Key: b, TTL: 0})
	c.must("refresh to TTL 0", err)
	s.expect(kv.Event{Type: kv.EventTTL, Key: b, Version: res.Results[0].Version, Revision: rr.Revision})
}

func testWatchDeletePrefixOrder(c *check) {
	s := c.watch(kv.WatchRequest{Prefix: c.k("dp/")})
	var puts []kv.Entry
	for _, n := range []string{"dp/c", "dp/a", "dp/b", "dp/a/x"} {
		puts = append(puts, c.put(c.k(n), "v", 0))
	}
	dp, err := c.b.DeletePrefix(c.Context(), c.k("dp/"))
	if err != nil || dp.Deleted != 4 {
		c.Fatalf("delete-prefix of 4 keys: %+v %v", dp, err)
	}
	for _, e := range puts {
		s.expect(putEv(e, "v"))
	}
	version := map[string]int64{}
	for _, e := range puts {
		version[e.Key] = e.Version
	}
	for i, n := range []string{"dp/a", "dp/a/x", "dp/b", "dp/c"} {
		k := c.k(n)
		s.expect(deleteEv(k, version[k], dp.Revision-3+int64(i)))
	}
}

func testWatchPrefixEqual(c *check) {
	ctx := c.Context()
	s := c.watch(kv.WatchRequest{Prefix: c.k("job")})
	c.put(c.k("jo"), "x", 0)
	e1 := c.put(c.k("job"), "1", 0)
	e2 := c.put(c.k("job/1"), "x", 0)
	e3 := c.put(c.k("jobs"), "x", 0)
	d, err := c.b.Delete(ctx, c.k("job"), kv.Condition{})
	c.must("delete", err)
	s.expect(putEv(e1, "1"))
	s.expect(putEv(e2, "x"))
	s.expect(putEv(e3, "x"))
	s.expect(deleteEv(c.k("job"), e1.Version, d.Revision))
}

func testWatchTTLEvents(c *check) {
	with := c.watch(kv.WatchRequest{Prefix: c.k("t/"), TTLEvents: true})
	without := c.watch(kv.WatchRequest{Prefix: c.k("t/")})
	e := c.put(c.k("t/a"), "x", time.Hour)
	rr, err := c.b.RefreshTTL(c.Context(), kv.RefreshRequest{Key: c.k("t/a"), TTL: 2 * time.Hour})
	c.must("refresh", err)
	z := c.put(c.k("t/z"), "z", 0)
	with.expectKeys(kv.Event{Type: kv.EventPut, Key: e.Key})
	if ev := with.next(); ev.Type != kv.EventTTL || ev.Key != e.Key || ev.Revision != rr.Revision || ev.Version != e.Version {
		c.Fatalf("a watch that asked for TTL events got %s after a refresh at revision %d, want the TTL event", fmtEvent(ev), rr.Revision)
	}
	with.expectKeys(kv.Event{Type: kv.EventPut, Key: z.Key})
	without.expectKeys(kv.Event{Type: kv.EventPut, Key: e.Key})
	if ev := without.next(); ev.Type != kv.EventPut || ev.Key != z.Key {
		c.Fatalf("a watch that did not ask for TTL events got %s after a refresh, want the next put", fmtEvent(ev))
	}
}

func testWatchFailedWrites(c *check) {
	ctx := c.Context()
	a := c.k("f/a")
	s := c.watch(kv.WatchRequest{Prefix: c.k("f/"), TTLEvents: true})
	e := c.put(a, "not a number", 0)
	failed := []struct {
		what string
		err  error
	}{
		{"a batch [put f/b, delete f/a, put f/a if-absent]", errOf(c.b.Batch(ctx, []kv.Op{
			kv.PutOp(c.k("f/b"), nil, 0, kv.Condition{}), kv.DeleteOp(a, kv.Condition{}), kv.PutOp(a, nil, 0, kv.IfVersion(e.Version)),
		}))},
		{"a put if-absent of a live key", errOf(c.b.Put(ctx, kv.PutRequest{Key: a, Cond: kv.IfAbsent()}))},
		{"a delete if-version with a wrong version", errOf(c.b.Delete(ctx, a, kv.IfVersion(e.Version+1)))},
		{"a refresh if-version with a wrong version", errOf(c.b.RefreshTTL(ctx, kv.RefreshRequest{Key: a, TTL: time.Hour, Cond: kv.IfVersion(e.Version + 1)}))},
		{"a refresh of a missing key", errOf(c.b.RefreshTTL(ctx, kv.RefreshRequest{Key: c.k("f/missing"), TTL: time.Hour}))},
		{"an increment of a value that is not a number", errOf(c.b.Increment(ctx, a, 1))},
	}
	for _, f := range failed {
		if f.err == nil {
			c.Fatalf("%s succeeded; it must fail", f.what)
		}
	}
	_, err := c.b.Delete(ctx, c.k("f/missing"), kv.Condition{})
	c.must("delete of a missing key", err)
	c.batch(kv.DeleteOp(c.k("f/missing"), kv.Condition{}))
	_, err = c.b.DeletePrefix(ctx, c.k("f/nothing/"))
	c.must("delete-prefix of nothing", err)
	z := c.put(c.k("f/z"), "z", 0)
	s.expect(putEv(e, "not a number"))
	if ev := s.next(); ev.Type != kv.EventPut || ev.Key != z.Key {
		c.Fatalf("after failed writes (a failed batch, failed conditions, a refused increment, deletes of nothing) and then a put of %q, the watch got %s first; the failed writes must publish nothing",
			z.Key, fmtEvent(ev))
	}
}

func testWatchProgress(c *check) {
	const interval = 20 * time.Millisecond
	e := c.put(c.k("p/a"), "x", 0)
	s := c.watch(kv.WatchRequest{Prefix: c.k("p/"), ProgressInterval: interval})
	ev := s.nextAny()
	if ev.Type != kv.EventProgress || ev.Key != "" {
		c.Fatalf("an idle watch with progress every %v got %s, want a PROGRESS event", interval, fmtEvent(ev))
	}
	if ev.Revision < e.Version {
		c.Fatalf("an idle watch reports progress at revision %d, before the last change under its prefix (revision %d)", ev.Revision, e.Version)
	}
	e2 := c.put(c.k("p/b"), "x", 0)
	seen := false
	for {
		ev := s.nextAny()
		switch {
		case ev.Type == kv.EventPut && ev.Revision == e2.Version:
			seen = true
		case ev.Type != kv.EventProgress:
			c.Fatalf("after a put at revision %d the watch got %s", e2.Version, fmtEvent(ev))
		case ev.Revision >= e2.Version && !seen:
			c.Fatalf("a PROGRESS at revision %d arrived before the put at revision %d it covers", ev.Revision, e2.Version)
		case ev.Revision >= e2.Version:
			return
		case seen:
			c.Fatalf("after delivering the put at revision %d, the watch reports progress at revision %d", e2.Version, ev.Revision)
		}
	}
}

func testWatchCancel(c *check) {
	ctx, cancel := context.WithCancel(c.Context())
	defer cancel()
	ws, err := c.watcher().Watch(ctx, kv.WatchRequest{Prefix: c.k("c/"), ProgressInterval: -1})
	c.must("watch", err)
	defer ws.Close()
	s := &stream{c: c, ws: ws, what: "a watch whose context is cancelled"}
	e := c.put(c.k("c/a"), "x", 0)
	s.expect(putEv(e, "x"))
	cancel()
	if err := s.end("its context was cancelled"); !errors.Is(err, context.Canceled) && !errors.Is(err, kv.ErrClosed) {
		c.Fatalf("a cancelled watch ended with %v, want context.Canceled", err)
	}
	ws2, err := c.watcher().Watch(c.Context(), kv.WatchRequest{Prefix: c.k("c/"), ProgressInterval: -1})
	c.must("watch", err)
	s2 := &stream{c: c, ws: ws2, what: "a closed watch"}
	c.must("close", ws2.Close())
	if err := s2.end("it was closed"); !errors.Is(err, kv.ErrClosed) && !errors.Is(err, context.Canceled) {
		c.Fatalf("a closed watch ended with %v, want ErrClosed", err)
	}
}

func testWatchOverflow(c *check) {
	ctx := c.Context()
	ws, err := c.watcher().Watch(ctx, kv.WatchRequest{Prefix: c.k("o/"), ProgressInterval: -1})
	c.must("watch", err)
	defer ws.Close()
	// Nobody reads while writers go on: they must not block, and the
	// watch must end with ErrWatchOverflow rather than skip events. The
	// events must outgrow every buffer on the way, the backend's and a
	// wire's flow-control windows alike: 60 MB of them.
	const batches = 60
	revisions := overflowWrites(c, batches)
	s := &stream{c: c, ws: ws, what: "a watch that fell behind"}
	n := 0
	for {
		r, ok := s.recv(eventWait)
		if !ok {
			c.Fatalf("after %d of %d events, a watch that fell behind neither delivered the next event nor ended within %v", n, len(revisions), eventWait)
		}
		if r.err != nil {
			c.wantErr(fmt.Sprintf("the end of a watch that fell behind, after %d of %d events", n, len(revisions)), r.err, kv.ErrWatchOverflow)
			if n == len(revisions) {
				c.Fatalf("the watcher got all %d events and then overflowed: it should have ended earlier", n)
			}
			return
		}
		if n >= len(revisions) || r.ev.Revision != revisions[n] {
			c.Fatalf("event %d of a watch that fell behind has revision %d, want %d: events were skipped or reordered", n, r.ev.Revision, revisions[min(n, len(revisions)-1)])
		}
		n++
	}
}

// overflowWrites writes batches of a thousand 1000-byte values and
// returns their revisions. Writers must never wait for watchers.
func overflowWrites(c *check, batches int) []int64 {
	c.Helper()
	value := make([]byte, 1000)
	var revisions []int64
	done := make(chan error, 1)
	go func() {
		for range batches {
			ops := make([]kv.Op, 1000)
			for j := range ops {
				ops[j] = kv.PutOp(c.k(fmt.Sprintf("o/%04d", j)), value, 0, kv.Condition{})
			}
			res, err := c.b.Batch(c.Context(), ops)
			if err != nil {
				done <- err
				return
			}
			for _, r := range res.Results {
				revisions = append(revisions, r.Revision)
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		c.must("batch", err)
	case <-time.After(120 * time.Second):
		c.Fatalf("writers blocked behind a watcher that does not read")
	}
	return revisions
}

func testNoExpireAfterOverwrite(c *check) {
	k := c.k("x/k")
	s := c.watch(kv.WatchRequest{Prefix: c.k("x/")})
	e1 := c.put(k, "1", shortTTL)
	c.waitPast(e1.ExpiresAt)
	e2 := c.put(k, "2", 0)
	c.cleanupAll()
	z := c.put(c.k("x/z"), "z", 0)
	s.expectChange(putEv(e1, "1"))
	if ev := s.next(); ev.Type != kv.EventPut || ev.Key != k {
		c.Fatalf("a key that expired and was put again before cleanup: got %s, want the new PUT and no EXPIRE", fmtEvent(ev))
	}
	if ev := s.next(); ev.Type != kv.EventPut || ev.Key != z.Key {
		c.Fatalf("after cleanup, with the expired key put again: got %s, want the next put (%q) and no EXPIRE", fmtEvent(ev), z.Key)
	}
	if g := c.get(k); g.Version != e2.Version {
		c.Fatalf("cleanup touched a key that was put again after it expired: %s", fmtEntry(g))
	}
}

func testWatchRefused(c *check) {
	w, ok := c.b.(kv.Watcher)
	if !ok {
		return // nothing to call: refused by construction
	}
	ws, err := w.Watch(c.Context(), kv.WatchRequest{Prefix: c.p})
	if err == nil {
		_ = ws.Close()
	}
	c.wantErr("watch on a backend that does not claim it", err, kv.ErrNotSupported)
}
