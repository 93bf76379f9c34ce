package conformance

import (
	"time"

	"github.com/kvhost/kvhost/kv"
)

// These rules read the store revision before and after each write, so they
// run while nothing else writes to the store.

// atRevision checks that a write reported revision want and that the
// store is now at it.
func (c *check) atRevision(what string, got, want int64) {
	c.Helper()
	if got != want {
		c.Fatalf("%s reported revision %d; the store was at %d before it, so it should be %d", what, got, want-1, want)
	}
	c.wantHead(what, want)
}

// wantHead checks the store revision after a write.
func (c *check) wantHead(after string, want int64) {
	c.Helper()
	if h := c.head(); h != want {
		c.Fatalf("after %s the store is at revision %d, want %d", after, h, want)
	}
}

func testEachChangeTakesOne(c *check) {
	ctx := c.Context()
	a, n := c.k("a"), c.k("n")
	r := c.head()
	c.atRevision("a put", c.put(a, "1", 0).Version, r+1)
	e := c.put(a, "2", 0)
	c.atRevision("a second put of the same key", e.Version, r+2)
	ctr, err := c.b.Increment(ctx, n, 1)
	c.must("increment", err)
	c.atRevision("an increment", ctr.Version, r+3)
	rr, err := c.b.RefreshTTL(ctx, kv.RefreshRequest{Key: a, TTL: time.Hour})
	c.must("refresh", err)
	c.atRevision("a TTL refresh", rr.Revision, r+4)
	if rr.Entry.Version != e.Version {
		c.Fatalf("a TTL refresh changed the version from %d to %d; it must keep it", e.Version, rr.Entry.Version)
	}
	d, err := c.b.Delete(ctx, a, kv.Condition{})
	if err != nil || !d.Deleted {
		c.Fatalf("delete: %+v %v", d, err)
	}
	c.atRevision("a delete", d.Revision, r+5)
	res := c.batch(
		kv.PutOp(c.k("b"), nil, 0, kv.Condition{}),
		kv.DeleteOp(c.k("missing"), kv.Condition{}),
		kv.DeleteOp(n, kv.Condition{}),
		kv.PutOp(c.k("d"), nil, 0, kv.Condition{}),
	)
	for i, want := range []int64{r + 6, 0, r + 7, r + 8} {
		got := res.Results[i]
		if got.Revision != want || (got.Version != 0 && got.Version != want) {
			c.Fatalf("batch [put b, delete missing, delete n, put d] on a store at revision %d: op %d took revision %d (version %d), want %d",
				r+5, i, got.Revision, got.Version, want)
		}
	}
	c.atRevision("a batch of three changes and a delete of a missing key", res.Revision, r+8)
	c.batch(putOps(c.ks("x/1", "x/2", "x/3"))...)
	dp, err := c.b.DeletePrefix(ctx, c.k("x/"))
	if err != nil || dp.Deleted != 3 {
		c.Fatalf("delete-prefix of 3 keys: %+v %v", dp, err)
	}
	c.atRevision("a delete-prefix of 3 keys (the last key's revision)", dp.Revision, r+14)
}

func testNoChangeTakesNone(c *check) {
	ctx := c.Context()
	a := c.k("a")
	e := c.put(a, "not a number", 0)
	r := e.Version
	d, err := c.b.Delete(ctx, c.k("missing"), kv.Condition{})
	if err != nil || d.Deleted {
		c.Fatalf("delete of a missing key: %+v %v", d, err)
	}
	c.atRevision("a delete of a missing key", d.Revision, r)
	failed := []struct {
		what string
		err  error
	}{
		{"a put if-absent of a live key", errOf(c.b.Put(ctx, kv.PutRequest{Key: a, Cond: kv.IfAbsent()}))},
		{"a put if-version with a wrong version", errOf(c.b.Put(ctx, kv.PutRequest{Key: a, Cond: kv.IfVersion(r + 1)}))},
		{"a delete if-version with a wrong version", errOf(c.b.Delete(ctx, a, kv.IfVersion(r+1)))},
		{"a refresh if-version with a wrong version", errOf(c.b.RefreshTTL(ctx, kv.RefreshRequest{Key: a, TTL: time.Hour, Cond: kv.IfVersion(r + 1)}))},
		{"a refresh of a missing key", errOf(c.b.RefreshTTL(ctx, kv.RefreshRequest{Key: c.k("missing"), TTL: time.Hour}))},
		{"an increment of a value that is not a number", errOf(c.b.Increment(ctx, a, 1))},
		{"a batch [put b, put a if-absent] with a live", errOf(c.b.Batch(ctx, []kv.Op{kv.PutOp(c.k("b"), nil, 0, kv.Condition{}), kv.PutOp(a, nil, 0, kv.IfAbsent())}))},
	}
	for _, f := range failed {
		if f.err == nil {
			c.Fatalf("%s succeeded; it must fail", f.what)
		}
		c.wantHead(f.what+" (which failed)", r)
	}
	res := c.batch(kv.DeleteOp(c.k("missing"), kv.Condition{}))
	if res.Results[0].Deleted || res.Results[0].Revision != 0 {
		c.Fatalf("a batch delete of a missing key: %+v, want deleted false and revision 0", res.Results[0])
	}
	c.atRevision("a batch that only deleted a missing key", res.Revision, r)
	dp, err := c.b.DeletePrefix(ctx, c.k("nothing/"))
	if err != nil || dp.Deleted != 0 {
		c.Fatalf("delete-prefix of nothing: %+v %v", dp, err)
	}
	c.atRevision("a delete-prefix that matched nothing", dp.Revision, r)
	c.atRevision("the next put", c.put(c.k("c"), "x", 0).Version, r+1)
}

func testReadsReportRevision(c *check) {
	ctx := c.Context()
	a := c.k("a")
	var h int64
	for round := range 2 {
		c.put(a, "x", 0)
		if round == 1 {
			_, err := c.b.Delete(ctx, c.k("b"), kv.Condition{})
			c.must("delete", err)
		}
		h = c.put(c.k("c"), "y", 0).Version
		reads := []struct {
			what string
			read func() (int64, error)
		}{
			{"get of a live key", func() (int64, error) { r, err := c.b.Get(ctx, a); return r.Revision, err }},
			{"get of a missing key", func() (int64, error) { r, err := c.b.Get(ctx, c.k("missing")); return r.Revision, err }},
			{"get-many", func() (int64, error) { r, err := c.b.GetMany(ctx, []string{a, c.k("missing")}); return r.Revision, err }},
			{"list", func() (int64, error) { r, err := c.b.List(ctx, kv.ListRequest{Prefix: c.p}); return r.Revision, err }},
			{"count", func() (int64, error) { r, err := c.b.Count(ctx, c.p); return r.Revision, err }},
			{"stats", func() (int64, error) { r, err := c.b.Stats(ctx); return r.Revision, err }},
		}
		for _, r := range reads {
			rev, err := r.read()
			c.must(r.what, err)
			if rev != h {
				c.Fatalf("a %s right after the change at revision %d reports revision %d", r.what, h, rev)
			}
		}
	}
}
