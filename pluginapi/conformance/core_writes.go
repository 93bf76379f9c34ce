package conformance

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kvhost/kvhost/kv"
)

func testIncrement(c *check) {
	ctx := c.Context()
	n := c.k("n")
	ctr, err := c.b.Increment(ctx, n, 5)
	if err != nil || ctr.Value != 5 || !ctr.ExpiresAt.IsZero() {
		c.Fatalf("increment of a missing key by 5: %+v %v, want 5 without expiry", ctr, err)
	}
	if ctr, err = c.b.Increment(ctx, n, -7); err != nil || ctr.Value != -2 {
		c.Fatalf("increment by -7: %+v %v, want -2", ctr, err)
	}
	if e := c.get(n); string(e.Value) != "-2" || e.Version != ctr.Version {
		c.Fatalf("the stored counter is %s, want value \"-2\" at version %d", fmtEntry(e), ctr.Version)
	}
	c.put(c.k("text"), "3", 0)
	if ctr, err = c.b.Increment(ctx, c.k("text"), 1); err != nil || ctr.Value != 4 {
		c.Fatalf("increment of a put \"3\": %+v %v, want 4", ctr, err)
	}
	for _, bad := range []string{"abc", "1.5", "", " 1", "0x10", "99999999999999999999"} {
		e := c.put(c.k("bad"), bad, 0)
		_, err := c.b.Increment(ctx, c.k("bad"), 1)
		c.wantErr(fmt.Sprintf("increment of %q", bad), err, kv.ErrInvalidArgument)
		if g := c.get(c.k("bad")); string(g.Value) != bad || g.Version != e.Version {
			c.Fatalf("a refused increment changed the key to %s", fmtEntry(g))
		}
	}
	c.put(c.k("max"), "9223372036854775806", 0)
	if ctr, err = c.b.Increment(ctx, c.k("max"), 1); err != nil || ctr.Value != 1<<63-1 {
		c.Fatalf("increment to the largest int64: %+v %v", ctr, err)
	}
	_, err = c.b.Increment(ctx, c.k("max"), 1)
	c.wantErr("increment past the largest int64", err, kv.ErrInvalidArgument)
	c.put(c.k("min"), "-9223372036854775808", 0)
	_, err = c.b.Increment(ctx, c.k("min"), -1)
	c.wantErr("increment past the smallest int64", err, kv.ErrInvalidArgument)
	if g := c.get(c.k("max")); string(g.Value) != "9223372036854775807" {
		c.Fatalf("a refused overflow changed the counter to %q", g.Value)
	}
	e := c.put(c.k("ttl"), "1", time.Hour)
	if ctr, err = c.b.Increment(ctx, c.k("ttl"), 1); err != nil || !sameInstant(ctr.ExpiresAt, e.ExpiresAt) {
		c.Fatalf("increment of a key with a TTL: %+v %v, want its expiry %s kept", ctr, err, fmtTime(e.ExpiresAt))
	}
	if g := c.get(c.k("ttl")); !sameInstant(g.ExpiresAt, e.ExpiresAt) {
		c.Fatalf("increment lost the key's expiry: %s", fmtEntry(g))
	}
}

func testBatch(c *check) {
	a, old, b := c.k("a"), c.k("old"), c.k("b")
	eo := c.put(old, "x", 0)
	res := c.batch(
		kv.PutOp(a, []byte("1"), 0, kv.IfAbsent()),
		kv.PutOp(a, []byte("2"), time.Hour, kv.Condition{}),
		kv.DeleteOp(old, kv.IfVersion(eo.Version)),
		kv.DeleteOp(c.k("never"), kv.Condition{}),
		kv.PutOp(b, nil, 0, kv.Condition{}),
	)
	r := res.Results
	if r[1].Version <= r[0].Version || r[1].ExpiresAt.IsZero() || !r[2].Deleted || r[3].Deleted || r[4].Version <= r[1].Version {
		c.Fatalf("batch [put a, put a with TTL, delete old, delete never, put b]: results %+v", r)
	}
	if g := c.get(a); string(g.Value) != "2" || g.Version != r[1].Version || !sameInstant(g.ExpiresAt, r[1].ExpiresAt) {
		c.Fatalf("after a batch that put a twice, a is %s; want the second put, version %d", fmtEntry(g), r[1].Version)
	}
	c.absent(old)
	if g := c.get(b); len(g.Value) != 0 || g.Version != r[4].Version {
		c.Fatalf("after the batch b is %s", fmtEntry(g))
	}
	// A later op sees an earlier op on the same key.
	res = c.batch(kv.DeleteOp(a, kv.Condition{}), kv.PutOp(a, []byte("3"), 0, kv.IfAbsent()))
	if g := c.get(a); string(g.Value) != "3" || g.Version != res.Results[1].Version || !g.ExpiresAt.IsZero() {
		c.Fatalf("batch [delete a, put a if-absent]: a is %s, want \"3\" at version %d", fmtEntry(g), res.Results[1].Version)
	}
	res = c.batch(kv.PutOp(b, []byte("x"), 0, kv.Condition{}), kv.DeleteOp(b, kv.Condition{}))
	if !res.Results[1].Deleted {
		c.Fatalf("batch [put b, delete b]: the delete says it deleted nothing")
	}
	c.absent(b)
	if res, err := c.b.Batch(c.Context(), nil); err != nil || len(res.Results) != 0 {
		c.Fatalf("an empty batch: %+v %v", res, err)
	}
}

func testBatchAtomic(c *check) {
	ctx := c.Context()
	a, cc := c.k("a"), c.k("c")
	ea := c.put(a, "1", 0)
	ec := c.put(cc, "1", 0)
	_, err := c.b.Batch(ctx, []kv.Op{
		kv.PutOp(a, []byte("2"), 0, kv.Condition{}),
		kv.PutOp(c.k("b"), []byte("2"), 0, kv.Condition{}),
		kv.DeleteOp(cc, kv.Condition{}),
		kv.PutOp(a, []byte("3"), 0, kv.IfVersion(ea.Version)), // a is past this version by now
		kv.PutOp(c.k("d"), []byte("2"), 0, kv.Condition{}),
	})
	if !errors.Is(err, kv.ErrConflict) {
		c.Fatalf("a batch whose op 3 fails its condition: %v, want a conflict", err)
	}
	unchanged := func(what string) {
		c.Helper()
		if g := c.get(a); string(g.Value) != "1" || g.Version != ea.Version {
			c.Fatalf("%s: a is %s: part of the batch was applied", what, fmtEntry(g))
		}
		if g := c.get(cc); g.Version != ec.Version {
			c.Fatalf("%s: c is %s: part of the batch was applied", what, fmtEntry(g))
		}
		c.absent(c.k("b"))
		c.absent(c.k("d"))
	}
	unchanged("after a failed condition")
	_, err = c.b.Batch(ctx, []kv.Op{kv.PutOp(c.k("b"), []byte("2"), 0, kv.Condition{}), kv.PutOp("", []byte("2"), 0, kv.Condition{})})
	c.wantErr("a batch with an empty key", err, kv.ErrInvalidArgument)
	unchanged("after an invalid op")
	ops := putOps(names(c, "many", kv.MaxBatchOps))
	c.batch(ops...)
	if n := c.count(c.k("many/")); n != kv.MaxBatchOps {
		c.Fatalf("a batch of %d puts stored %d keys", kv.MaxBatchOps, n)
	}
}

func testBatchConflict(c *check) {
	ctx := c.Context()
	a, z := c.k("a"), c.k("z")
	ea := c.put(a, "1", 0)
	// Deleted by an earlier op: the key is absent at the failing op.
	_, err := c.b.Batch(ctx, []kv.Op{kv.DeleteOp(a, kv.Condition{}), kv.PutOp(a, []byte("2"), 0, kv.IfVersion(ea.Version))})
	c.wantConflict("batch [delete a, put a if-version of a's version]", err, 0, 1)
	// Live before the batch, untouched by earlier ops: its stored version.
	_, err = c.b.Batch(ctx, []kv.Op{kv.PutOp(z, nil, 0, kv.Condition{}), kv.PutOp(a, []byte("2"), 0, kv.IfAbsent())})
	c.wantConflict("batch [put z, put a if-absent] with a live", err, ea.Version, 1)
	// Written by an earlier op: the version that op gave it, which is the
	// revision it would have taken (the batch's second change).
	before := c.head()
	_, err = c.b.Batch(ctx, []kv.Op{
		kv.PutOp(z, nil, 0, kv.Condition{}),
		kv.PutOp(a, []byte("2"), 0, kv.Condition{}),
		kv.DeleteOp(c.k("missing"), kv.Condition{}),
		kv.PutOp(a, []byte("3"), 0, kv.IfVersion(ea.Version)),
	})
	after := c.head()
	var ce *kv.ConflictError
	if !errors.As(err, &ce) {
		c.Fatalf("batch [put z, put a, delete missing, put a if-version of a's old version]: %v, want a *kv.ConflictError", err)
	}
	if ce.OpIndex != 3 || ce.Key != a {
		c.Fatalf("batch [put z, put a, delete missing, put a if-version of a's old version]: the conflict names op %d key %q, want op 3 key %q", ce.OpIndex, ce.Key, a)
	}
	if ce.CurrentVersion < before+2 || ce.CurrentVersion > after+2 {
		c.Fatalf("batch [put z, put a, delete missing, put a if-version of a's old version] on a store at revision %d: the conflict says a is at version %d; op 1 gave it the batch's second revision, %d",
			before, ce.CurrentVersion, before+2)
	}
	if g := c.get(a); g.Version != ea.Version {
		c.Fatalf("a failed batch changed a to %s", fmtEntry(g))
	}
	c.absent(z)
}

func testStats(c *check) {
	ctx := c.Context()
	st0, err := c.b.Stats(ctx)
	c.must("stats", err)
	if st0.Backend == "" {
		c.Fatalf("stats names no backend: %+v", st0)
	}
	if c.private() && (st0.Keys != 0 || st0.Bytes != 0) {
		c.Fatalf("stats of an empty store: %d keys and %d bytes", st0.Keys, st0.Bytes)
	}
	ab, f := c.k("ab"), c.k("f")
	c.put(ab, "cde", 0)
	c.put(f, "", 0)
	gone := c.put(c.k("gone"), "xxxxxxxx", shortTTL)
	c.put(c.k("deleted"), "x", 0)
	_, err = c.b.Delete(ctx, c.k("deleted"), kv.Condition{})
	c.must("delete", err)
	c.waitPast(gone.ExpiresAt)
	st, err := c.b.Stats(ctx)
	c.must("stats", err)
	wantBytes := int64(len(ab) + 3 + len(f))
	if st.Keys-st0.Keys != 2 || st.Bytes-st0.Bytes != wantBytes {
		c.Fatalf("stats after adding 2 live keys of %d bytes (and one expired, one deleted): %d more keys and %d more bytes",
			wantBytes, st.Keys-st0.Keys, st.Bytes-st0.Bytes)
	}
}

// race starts n calls of fn at once and waits for them.
func race(n int, fn func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			fn(i)
		})
	}
	close(start)
	wg.Wait()
}

const racers = 16

func testConcurrentIncrement(c *check) {
	const each = 25
	errs := make(chan error, racers)
	race(racers, func(int) {
		for range each {
			if _, err := c.b.Increment(c.Context(), c.k("counter"), 1); err != nil {
				errs <- err
				return
			}
		}
	})
	close(errs)
	for err := range errs {
		c.Fatalf("a concurrent increment: %v", err)
	}
	if e := c.get(c.k("counter")); string(e.Value) != fmt.Sprint(racers*each) {
		c.Fatalf("the counter is %q after %d concurrent increments by 1: updates were lost", e.Value, racers*each)
	}
}

// tally sorts the outcomes of a race of conditional puts.
type tally struct {
	mu        sync.Mutex
	winners   []kv.Entry
	conflicts []*kv.ConflictError
	other     []error
}

func (t *tally) add(e kv.Entry, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var ce *kv.ConflictError
	switch {
	case err == nil:
		t.winners = append(t.winners, e)
	case errors.As(err, &ce) && errors.Is(err, kv.ErrConflict):
		t.conflicts = append(t.conflicts, ce)
	default:
		t.other = append(t.other, err)
	}
}

func (t *tally) oneWinner(c *check, what string) kv.Entry {
	c.Helper()
	if len(t.other) > 0 {
		c.Fatalf("%s: %v", what, t.other[0])
	}
	if len(t.winners) != 1 || len(t.conflicts) != racers-1 {
		c.Fatalf("%s: %d of %d succeeded and %d were conflicts; exactly one must win", what, len(t.winners), racers, len(t.conflicts))
	}
	return t.winners[0]
}

func testConcurrentPutIfAbsent(c *check) {
	var t tally
	race(racers, func(i int) {
		t.add(c.b.Put(c.Context(), kv.PutRequest{Key: c.k("leader"), Value: []byte(fmt.Sprint(i)), Cond: kv.IfAbsent()}))
	})
	w := t.oneWinner(c, fmt.Sprintf("%d concurrent puts if-absent of one key", racers))
	if g := c.get(c.k("leader")); g.Version != w.Version {
		c.Fatalf("the winner of put-if-absent wrote version %d, but the key is at %d", w.Version, g.Version)
	}
}

func testConcurrentCompareAndSet(c *check) {
	k := c.k("config")
	e := c.put(k, "v0", 0)
	var t tally
	race(racers, func(i int) {
		t.add(c.b.Put(c.Context(), kv.PutRequest{Key: k, Value: []byte(fmt.Sprint("v", i+1)), Cond: kv.IfVersion(e.Version)}))
	})
	w := t.oneWinner(c, fmt.Sprintf("%d concurrent puts if-version %d of one key", racers, e.Version))
	for _, ce := range t.conflicts {
		if ce.CurrentVersion != w.Version {
			c.Fatalf("a losing compare-and-set says the key is at version %d; the winner made it %d", ce.CurrentVersion, w.Version)
		}
	}
	if g := c.get(k); g.Version != w.Version {
		c.Fatalf("the compare-and-set winner wrote version %d, but the key is at %d", w.Version, g.Version)
	}
}
