package conformance

import (
	"errors"
	"fmt"
	"time"

	"github.com/kvhost/kvhost/kv"
)

// wantExpiry checks an expiry against the window of the call that set it:
// the Unix millisecond at the call plus the TTL rounded up to a whole
// millisecond, read from a clock that was between before and after.
func (c *check) wantExpiry(what string, got time.Time, ttl time.Duration, before, after time.Time) {
	c.Helper()
	ms := int64((ttl + time.Millisecond - 1) / time.Millisecond)
	lo, hi := before.UnixMilli()+ms, after.UnixMilli()+ms
	if got.IsZero() {
		c.Fatalf("%s with TTL %v: no expiry", what, ttl)
	}
	if got.UnixNano()%int64(time.Millisecond) != 0 {
		c.Fatalf("%s with TTL %v: expiry %s is not a whole millisecond", what, ttl, fmtTime(got))
	}
	if g := got.UnixMilli(); g < lo || g > hi {
		c.Fatalf("%s with TTL %v, called between %s and %s: expires at %s, which is the call time plus %v; want the call time plus %dms",
			what, ttl, fmtTime(before), fmtTime(after), fmtTime(got), time.Duration(g-(lo+hi)/2+ms)*time.Millisecond, ms)
	}
}

func testExpiryPrecision(c *check) {
	ctx := c.Context()
	for i, ttl := range []time.Duration{1500 * time.Millisecond, 1500*time.Millisecond + time.Microsecond, 2*time.Second - time.Millisecond, time.Microsecond, time.Hour} {
		k := c.k(fmt.Sprint("put/", i))
		before := time.Now()
		e, err := c.b.Put(ctx, kv.PutRequest{Key: k, Value: []byte("x"), TTL: ttl})
		after := time.Now()
		c.must("put", err)
		c.wantExpiry("a put", e.ExpiresAt, ttl, before, after)
		before = time.Now()
		res, err := c.b.Batch(ctx, []kv.Op{kv.PutOp(c.k(fmt.Sprint("batch/", i)), nil, ttl, kv.Condition{})})
		after = time.Now()
		c.must("batch", err)
		c.wantExpiry("a batch put", res.Results[0].ExpiresAt, ttl, before, after)
		if ttl < time.Minute {
			continue // the key may be gone by now on a slow machine
		}
		if g := c.get(k); !g.ExpiresAt.Equal(e.ExpiresAt) {
			c.Fatalf("get: expires at %s; the put said %s", fmtTime(g.ExpiresAt), fmtTime(e.ExpiresAt))
		}
	}
	k := c.k("refresh")
	c.put(k, "x", 0)
	ttl := 1500*time.Millisecond + time.Microsecond
	before := time.Now()
	r, err := c.b.RefreshTTL(ctx, kv.RefreshRequest{Key: k, TTL: ttl})
	after := time.Now()
	c.must("refresh", err)
	c.wantExpiry("a refresh", r.Entry.ExpiresAt, ttl, before, after)
	if g := c.get(k); !g.ExpiresAt.Equal(r.Entry.ExpiresAt) {
		c.Fatalf("get after a refresh: expires at %s; the refresh said %s", fmtTime(g.ExpiresAt), fmtTime(r.Entry.ExpiresAt))
	}
}

func testKeysExpire(c *check) {
	forever := c.put(c.k("forever"), "x", 0)
	if !forever.ExpiresAt.IsZero() {
		c.Fatalf("a put with TTL 0 expires at %s; TTL 0 means never", fmtTime(forever.ExpiresAt))
	}
	tiny := c.put(c.k("tiny"), "x", time.Microsecond)
	if tiny.ExpiresAt.IsZero() {
		c.Fatalf("a put with a TTL of 1µs never expires; a positive TTL rounds up to 1ms")
	}
	short := c.put(c.k("short"), "x", shortTTL)
	c.put(c.k("long"), "x", time.Hour)
	c.waitPast(tiny.ExpiresAt, short.ExpiresAt)
	c.absent(c.k("short"))
	c.absent(c.k("tiny"))
	c.get(c.k("forever"))
	c.get(c.k("long"))
}

func testExpiredInvisible(c *check) {
	ctx := c.Context()
	dead, dead2, dead3, live := c.k("p/dead"), c.k("p/dead2"), c.k("p/dead3"), c.k("p/live")
	old := c.put(dead, "5", shortTTL)
	e2 := c.put(dead2, "x", shortTTL)
	e3 := c.put(dead3, "x", shortTTL)
	c.put(live, "x", 0)
	c.waitPast(old.ExpiresAt, e2.ExpiresAt, e3.ExpiresAt)
	c.absent(dead)
	many, err := c.b.GetMany(ctx, []string{dead, live})
	if err != nil || len(many.Entries) != 2 || many.Entries[0] != nil || many.Entries[1] == nil {
		c.Fatalf("get-many [expired, live]: %s %v, want [nil live]", fmtEntries(many.Entries), err)
	}
	c.wantKeys("list after expiry", c.listAll(c.k("p/")), []string{live})
	if n := c.count(c.k("p/")); n != 1 {
		c.Fatalf("count after 3 of 4 keys expired: %d, want 1", n)
	}
	_, err = c.b.Put(ctx, kv.PutRequest{Key: dead, Value: []byte("x"), Cond: kv.IfVersion(old.Version)})
	c.wantConflict("put if-version of an expired key at its last version", err, 0, -1)
	_, err = c.b.RefreshTTL(ctx, kv.RefreshRequest{Key: dead, TTL: time.Hour})
	c.wantErr("refresh of an expired key", err, kv.ErrNotFound)
	if d, err := c.b.Delete(ctx, dead2, kv.Condition{}); err != nil || d.Deleted {
		c.Fatalf("delete of an expired key: %+v %v, want deleted false and no error", d, err)
	}
	if dp, err := c.b.DeletePrefix(ctx, c.k("p/dead")); err != nil || dp.Deleted != 0 {
		c.Fatalf("delete-prefix over expired keys only: %+v %v, want 0 deleted", dp, err)
	}
	ctr, err := c.b.Increment(ctx, dead, 2)
	if err != nil || ctr.Value != 2 || !ctr.ExpiresAt.IsZero() {
		c.Fatalf("increment of an expired counter that held 5: %+v %v, want to start at 0 without a TTL", ctr, err)
	}
	if _, err := c.b.Put(ctx, kv.PutRequest{Key: dead3, Value: []byte("new"), Cond: kv.IfAbsent()}); err != nil {
		c.Fatalf("put if-absent of an expired key: %v, want it to count as absent", err)
	}
}

func testPutClearsTTL(c *check) {
	k, j := c.k("k"), c.k("j")
	e1 := c.put(k, "1", shortTTL)
	if e := c.put(k, "2", 0); !e.ExpiresAt.IsZero() {
		c.Fatalf("a put without a TTL over a key with one reports expiry %s", fmtTime(e.ExpiresAt))
	}
	ej := c.put(j, "1", shortTTL)
	if res := c.batch(kv.PutOp(j, []byte("2"), 0, kv.Condition{})); !res.Results[0].ExpiresAt.IsZero() {
		c.Fatalf("a batch put without a TTL over a key with one reports expiry %s", fmtTime(res.Results[0].ExpiresAt))
	}
	c.waitPast(e1.ExpiresAt, ej.ExpiresAt)
	for _, key := range []string{k, j} {
		if e := c.get(key); string(e.Value) != "2" || !e.ExpiresAt.IsZero() {
			c.Fatalf("after the first TTL passed, %q is %s; the second put cleared the TTL", key, fmtEntry(e))
		}
	}
}

// putThenRefresh puts a key with a short TTL and refreshes it to ttl
// before it expires; on a machine so slow that the short TTL passed in
// between, it tries again with a longer one.
func (c *check) putThenRefresh(key, value string, ttl time.Duration) (kv.Entry, kv.RefreshResult) {
	c.Helper()
	for short := shortTTL; ; short *= 2 {
		e := c.put(key, value, short)
		r, err := c.b.RefreshTTL(c.Context(), kv.RefreshRequest{Key: key, TTL: ttl})
		if errors.Is(err, kv.ErrNotFound) && time.Now().After(e.ExpiresAt) && short < 10*time.Second {
			continue // the clock overtook the test
		}
		c.must("refresh", err)
		return e, r
	}
}

func testRefreshTTL(c *check) {
	ctx := c.Context()
	hb := c.k("hb")
	e, r := c.putThenRefresh(hb, "alive", time.Hour)
	if r.Entry.Version != e.Version || !r.Entry.ExpiresAt.After(e.ExpiresAt) {
		c.Fatalf("refresh of a key at version %d to 1h: %s, want the same version and a later expiry", e.Version, fmtEntry(r.Entry))
	}
	c.waitPast(e.ExpiresAt)
	if g := c.get(hb); string(g.Value) != "alive" || g.Version != e.Version || !g.ExpiresAt.Equal(r.Entry.ExpiresAt) {
		c.Fatalf("past the old expiry the refreshed key is %s; want value \"alive\", version %d, expiry %s", fmtEntry(g), e.Version, fmtTime(r.Entry.ExpiresAt))
	}
	_, err := c.b.RefreshTTL(ctx, kv.RefreshRequest{Key: hb, TTL: time.Hour, Cond: kv.IfVersion(e.Version + 1)})
	c.wantConflict("refresh if-version with a wrong version", err, e.Version, -1)
	r, err = c.b.RefreshTTL(ctx, kv.RefreshRequest{Key: hb, TTL: 0, Cond: kv.IfVersion(e.Version)})
	if err != nil || !r.Entry.ExpiresAt.IsZero() || r.Entry.Version != e.Version {
		c.Fatalf("refresh to TTL 0 if-version %d: %s %v, want no expiry at the same version", e.Version, fmtEntry(r.Entry), err)
	}
	if g := c.get(hb); !g.ExpiresAt.IsZero() || string(g.Value) != "alive" {
		c.Fatalf("after a refresh to TTL 0 the key is %s, want no expiry", fmtEntry(g))
	}
}

func testRefreshMissing(c *check) {
	ctx := c.Context()
	notFound := func(what string, req kv.RefreshRequest) {
		c.Helper()
		_, err := c.b.RefreshTTL(ctx, req)
		if !errors.Is(err, kv.ErrNotFound) || errors.Is(err, kv.ErrConflict) {
			c.Fatalf("%s: %v, want ErrNotFound (and not a conflict)", what, err)
		}
		c.absent(req.Key)
	}
	notFound("refresh of a missing key", kv.RefreshRequest{Key: c.k("missing"), TTL: time.Hour})
	notFound("refresh if-version 1 of a missing key", kv.RefreshRequest{Key: c.k("missing"), TTL: time.Hour, Cond: kv.IfVersion(1)})
	e := c.put(c.k("deleted"), "x", 0)
	_, err := c.b.Delete(ctx, c.k("deleted"), kv.Condition{})
	c.must("delete", err)
	notFound("refresh if-version of a deleted key at its last version", kv.RefreshRequest{Key: c.k("deleted"), TTL: time.Hour, Cond: kv.IfVersion(e.Version)})
	x := c.put(c.k("expired"), "x", shortTTL)
	c.waitPast(x.ExpiresAt)
	notFound("refresh of an expired key", kv.RefreshRequest{Key: c.k("expired"), TTL: time.Hour})
	notFound("refresh if-version of an expired key at its last version", kv.RefreshRequest{Key: c.k("expired"), TTL: time.Hour, Cond: kv.IfVersion(x.Version)})
}

func (c *check) expirer() kv.Expirer {
	c.Helper()
	x, ok := c.b.(kv.Expirer)
	if !ok {
		c.Fatalf("the backend claims cleanup-expired but does not implement kv.Expirer")
	}
	return x
}

// cleanupAll calls CleanupExpired until it removes nothing and returns how
// many keys it removed.
func (c *check) cleanupAll() int64 {
	c.Helper()
	var total int64
	for range 1000 {
		n, err := c.expirer().CleanupExpired(c.Context(), 0)
		c.must("cleanup", err)
		if n == 0 {
			return total
		}
		total += n
	}
	c.Fatalf("cleanup still removes keys after 1000 calls")
	return 0
}

func testCleanup(c *check) {
	x := c.expirer()
	var s *stream
	if c.info.Capabilities.Watch {
		s = c.watch(kv.WatchRequest{Prefix: c.k("s/")})
	}
	c.cleanupAll() // what others left, in a shared store
	versions := map[string]int64{}
	var expiries []time.Time
	var puts []kv.Event
	for i := range 10 {
		e := c.put(c.k(fmt.Sprint("s/", i)), "x", shortTTL)
		versions[e.Key], expiries = e.Version, append(expiries, e.ExpiresAt)
		puts = append(puts, putEv(e, "x"))
	}
	keep := c.put(c.k("s/keep"), "x", time.Hour)
	puts = append(puts, putEv(keep, "x"))
	c.waitPast(expiries...)
	r := c.head()
	n1, err := x.CleanupExpired(c.Context(), 4)
	c.must("cleanup with limit 4", err)
	if n1 != 4 {
		c.Fatalf("cleanup with limit 4 and 10 keys expired removed %d", n1)
	}
	c.wantHead("a cleanup that removed 4 keys", r+4)
	if n := c.cleanupAll(); n != 6 {
		c.Fatalf("cleanup of the other 6 expired keys removed %d", n)
	}
	c.wantHead("a cleanup of the other 6 keys", r+10)
	c.get(c.k("s/keep"))
	if s == nil {
		return
	}
	for _, want := range puts {
		s.expectChange(want)
	}
	last := r
	for range 10 {
		ev := s.next()
		v, ok := versions[ev.Key]
		if ev.Type != kv.EventExpire || !ok || ev.Version != v || ev.Revision <= last || ev.Revision > r+10 {
			c.Fatalf("after cleanup of 10 keys (revisions %d to %d): %s, want an EXPIRE of one of them at the version it had, revisions in order", r+1, r+10, fmtEvent(ev))
		}
		delete(versions, ev.Key)
		last = ev.Revision
	}
}

func testCleanupRefused(c *check) {
	x, ok := c.b.(kv.Expirer)
	if !ok {
		return // nothing to call: refused by construction
	}
	_, err := x.CleanupExpired(c.Context(), 0)
	c.wantErr("cleanup on a backend that does not claim it", err, kv.ErrNotSupported)
}
