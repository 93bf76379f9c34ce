package conformance

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi"
)

func testInfo(c *check) {
	info := c.info
	if info.Name == "" || info.Version == "" {
		c.Fatalf("Info %+v: the name and version must be set", info)
	}
	if info.ProtocolVersion != pluginapi.ProtocolVersion {
		c.Fatalf("Info says protocol version %d; this host speaks %d", info.ProtocolVersion, pluginapi.ProtocolVersion)
	}
	caps := info.Capabilities
	if caps.WatchHistory && !caps.Watch {
		c.Fatalf("Info claims watch-history without watch")
	}
	if _, ok := c.b.(kv.Watcher); caps.Watch && !ok {
		c.Fatalf("Info claims watch, but the backend does not implement kv.Watcher")
	}
	if _, ok := c.b.(kv.Expirer); caps.CleanupExpired && !ok {
		c.Fatalf("Info claims cleanup-expired, but the backend does not implement kv.Expirer")
	}
}

func testKeys(c *check) {
	good := []string{"a", "actor/1", "node:é:ü", "a b\tc", "🔑", "x\x01y", strings.Repeat("k", kv.MaxKeyLen-len(c.p))}
	for _, name := range good {
		k := c.k(name)
		c.put(k, "v:"+name, 0)
		if e := c.get(k); string(e.Value) != "v:"+name || e.Key != k {
			c.Fatalf("get %q returned %s", k, fmtEntry(e))
		}
	}
	if got := c.count(c.p); c.private() && got != int64(len(good)) {
		c.Fatalf("count %d after %d puts of distinct keys", got, len(good))
	}
}

func testInvalidInput(c *check) {
	ctx := c.Context()
	c.put(c.k("keep"), "x", 0)
	bad := map[string]string{
		"empty":        "",
		"too long":     c.k(strings.Repeat("k", kv.MaxKeyLen+1-len(c.p))),
		"invalid utf8": c.k("a\xffb"),
		"nul":          c.k("a\x00b"),
	}
	for name, k := range bad {
		_, err := c.b.Put(ctx, kv.PutRequest{Key: k, Value: []byte("x")})
		c.wantErr("put with a key that is "+name, err, kv.ErrInvalidArgument)
		_, err = c.b.Get(ctx, k)
		c.wantErr("get with a key that is "+name, err, kv.ErrInvalidArgument)
		_, err = c.b.Delete(ctx, k, kv.Condition{})
		c.wantErr("delete with a key that is "+name, err, kv.ErrInvalidArgument)
		_, err = c.b.Increment(ctx, k, 1)
		c.wantErr("increment with a key that is "+name, err, kv.ErrInvalidArgument)
		_, err = c.b.RefreshTTL(ctx, kv.RefreshRequest{Key: k, TTL: time.Second})
		c.wantErr("refresh with a key that is "+name, err, kv.ErrInvalidArgument)
		_, err = c.b.GetMany(ctx, []string{c.k("keep"), k})
		c.wantErr("get-many with a key that is "+name, err, kv.ErrInvalidArgument)
		_, err = c.b.Batch(ctx, []kv.Op{kv.PutOp(c.k("b"), nil, 0, kv.Condition{}), kv.PutOp(k, nil, 0, kv.Condition{})})
		c.wantErr("batch with a key that is "+name, err, kv.ErrInvalidArgument)
		if k != "" { // an empty prefix is valid: it lists everything
			_, err = c.b.List(ctx, kv.ListRequest{Prefix: k})
			c.wantErr("list with a prefix that is "+name, err, kv.ErrInvalidArgument)
			_, err = c.b.Count(ctx, k)
			c.wantErr("count with a prefix that is "+name, err, kv.ErrInvalidArgument)
			_, err = c.b.DeletePrefix(ctx, k)
			c.wantErr("delete-prefix with a prefix that is "+name, err, kv.ErrInvalidArgument)
		}
	}
	e := c.get(c.k("keep"))
	invalid := []struct {
		what string
		err  error
	}{
		{"put with a negative TTL", errOf(c.b.Put(ctx, kv.PutRequest{Key: c.k("neg"), TTL: -time.Second}))},
		{"put if-version 0", errOf(c.b.Put(ctx, kv.PutRequest{Key: c.k("keep"), Cond: kv.IfVersion(0)}))},
		{"delete if-absent", errOf(c.b.Delete(ctx, c.k("keep"), kv.IfAbsent()))},
		{"refresh if-absent", errOf(c.b.RefreshTTL(ctx, kv.RefreshRequest{Key: c.k("keep"), TTL: time.Hour, Cond: kv.IfAbsent()}))},
		{"refresh with a negative TTL", errOf(c.b.RefreshTTL(ctx, kv.RefreshRequest{Key: c.k("keep"), TTL: -time.Second}))},
		{"list with a negative limit", errOf(c.b.List(ctx, kv.ListRequest{Prefix: c.p, Limit: -1}))},
		{"get-many of more than MaxGetMany keys", errOf(c.b.GetMany(ctx, names(c, "g", kv.MaxGetMany+1)))},
		{"batch of more than MaxBatchOps ops", errOf(c.b.Batch(ctx, putOps(names(c, "b", kv.MaxBatchOps+1))))},
	}
	if c.private() { // in a shared store, a backend that took it would delete what is not the suite's
		invalid = append(invalid, struct {
			what string
			err  error
		}{"delete-prefix of the empty prefix", errOf(c.b.DeletePrefix(ctx, ""))})
	}
	for _, tc := range invalid {
		c.wantErr(tc.what, tc.err, kv.ErrInvalidArgument)
	}
	if g := c.get(c.k("keep")); g.Version != e.Version || !g.ExpiresAt.IsZero() {
		c.Fatalf("refused writes changed a key: %s, was %s", fmtEntry(g), fmtEntry(e))
	}
	if got := c.listAll(c.p); len(got) != 1 {
		c.Fatalf("refused writes stored keys: %q", got)
	}
}

func errOf[T any](_ T, err error) error { return err }

// names returns n keys in the subtest's key space.
func names(c *check, stem string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = c.k(fmt.Sprintf("%s/%06d", stem, i))
	}
	return out
}

func putOps(keys []string) []kv.Op {
	ops := make([]kv.Op, len(keys))
	for i, k := range keys {
		ops[i] = kv.PutOp(k, []byte("v"), 0, kv.Condition{})
	}
	return ops
}

func testValues(c *check) {
	cases := []struct {
		name  string
		value []byte
	}{
		{"empty", []byte{}},
		{"binary", []byte{0, 1, 2, 0xff, 0xfe, 0}},
		{"text", []byte("hello")},
	}
	for _, tc := range cases {
		k := c.k("v/" + tc.name)
		_, err := c.b.Put(c.Context(), kv.PutRequest{Key: k, Value: tc.value})
		c.must("put "+tc.name+" value", err)
		if e := c.get(k); !bytes.Equal(e.Value, tc.value) {
			c.Fatalf("%s value: wrote %v, read back %v", tc.name, tc.value, e.Value)
		}
	}
}

func testLargeValue(c *check) {
	v := bytes.Repeat([]byte{0xab, 0x00, 0x7f}, kv.MinValueSize/3+1)[:kv.MinValueSize]
	_, err := c.b.Put(c.Context(), kv.PutRequest{Key: c.k("big"), Value: v})
	c.must("put of a 16 MiB value", err)
	if e := c.get(c.k("big")); !bytes.Equal(e.Value, v) {
		c.Fatalf("a 16 MiB value came back as %d bytes, not equal to what was written", len(e.Value))
	}
}

func testGetMissing(c *check) {
	e := c.put(c.k("there"), "x", 0)
	for _, k := range []string{c.k("missing"), c.k("ther"), c.k("there/")} {
		r, err := c.b.Get(c.Context(), k)
		if err != nil {
			c.Fatalf("get %q (missing): error %v, want Found false and no error", k, err)
		}
		if r.Found || r.Entry.Key != "" || r.Entry.Version != 0 {
			c.Fatalf("get %q (missing): found %v, entry %s", k, r.Found, fmtEntry(r.Entry))
		}
		if r.Revision < e.Version {
			c.Fatalf("get %q (missing) reports revision %d, before the put at revision %d that came before it", k, r.Revision, e.Version)
		}
	}
	if _, err := c.b.Delete(c.Context(), c.k("there"), kv.Condition{}); err != nil {
		c.Fatalf("delete: %v", err)
	}
	c.absent(c.k("there"))
}

func testVersions(c *check) {
	var last int64
	next := func(what string, v int64) {
		c.Helper()
		if v <= last {
			c.Fatalf("%s: version %d, not above the previous change's %d", what, v, last)
		}
		last = v
	}
	a, b, n := c.k("a"), c.k("b"), c.k("n")
	next("put a", c.put(a, "1", 0).Version)
	next("put b", c.put(b, "1", 0).Version)
	next("put a again", c.put(a, "2", 0).Version)
	if e := c.get(a); e.Version != last {
		c.Fatalf("get a: version %d; the put said %d", e.Version, last)
	}
	ctr, err := c.b.Increment(c.Context(), n, 1)
	c.must("increment", err)
	next("increment", ctr.Version)
	if e := c.get(n); e.Version != ctr.Version {
		c.Fatalf("get of a counter: version %d; the increment said %d", e.Version, ctr.Version)
	}
	res := c.batch(kv.PutOp(a, []byte("3"), 0, kv.Condition{}), kv.PutOp(c.k("c"), []byte("1"), 0, kv.Condition{}))
	next("batch op 0", res.Results[0].Version)
	next("batch op 1", res.Results[1].Version)
	if e := c.get(c.k("c")); e.Version != res.Results[1].Version {
		c.Fatalf("get c: version %d; the batch said %d", e.Version, res.Results[1].Version)
	}
	r, err := c.b.RefreshTTL(c.Context(), kv.RefreshRequest{Key: c.k("c"), TTL: time.Hour})
	c.must("refresh", err)
	if r.Entry.Version != res.Results[1].Version || c.get(c.k("c")).Version != res.Results[1].Version {
		c.Fatalf("a TTL refresh changed the version from %d to %d", res.Results[1].Version, r.Entry.Version)
	}
}

func testNoABA(c *check) {
	ctx := c.Context()
	lock := c.k("lock")
	v1 := c.put(lock, "owner-1", 0).Version
	d, err := c.b.Delete(ctx, lock, kv.Condition{})
	if err != nil || !d.Deleted {
		c.Fatalf("delete: %+v %v", d, err)
	}
	v2 := c.put(lock, "owner-2", 0).Version
	if v2 <= v1 {
		c.Fatalf("a key recreated after a delete got version %d, not above the deleted key's %d", v2, v1)
	}
	_, err = c.b.Put(ctx, kv.PutRequest{Key: lock, Value: []byte("stale"), Cond: kv.IfVersion(v1)})
	c.wantConflict("compare-and-set with the deleted key's version", err, v2, -1)
	e3 := c.put(c.k("ttl"), "x", shortTTL)
	c.waitPast(e3.ExpiresAt)
	if v4 := c.put(c.k("ttl"), "y", 0).Version; v4 <= e3.Version {
		c.Fatalf("a key recreated after it expired got version %d, not above %d", v4, e3.Version)
	}
	c.batch(kv.DeleteOp(lock, kv.Condition{}))
	if v5 := c.put(lock, "owner-3", 0).Version; v5 <= v2 {
		c.Fatalf("a key recreated after a batch delete got version %d, not above %d", v5, v2)
	}
}

func testPutConditions(c *check) {
	ctx := c.Context()
	k, missing := c.k("k"), c.k("missing")
	e1, err := c.b.Put(ctx, kv.PutRequest{Key: k, Value: []byte("1"), Cond: kv.IfAbsent()})
	c.must("put if-absent of a missing key", err)
	_, err = c.b.Put(ctx, kv.PutRequest{Key: k, Value: []byte("2"), Cond: kv.IfAbsent()})
	c.wantConflict("put if-absent of a live key", err, e1.Version, -1)
	_, err = c.b.Put(ctx, kv.PutRequest{Key: k, Value: []byte("2"), Cond: kv.IfVersion(e1.Version + 100)})
	c.wantConflict("put if-version with a wrong version", err, e1.Version, -1)
	_, err = c.b.Put(ctx, kv.PutRequest{Key: missing, Value: []byte("2"), Cond: kv.IfVersion(e1.Version)})
	c.wantConflict("put if-version of a missing key", err, 0, -1)
	if g := c.get(k); string(g.Value) != "1" || g.Version != e1.Version {
		c.Fatalf("failed conditions changed the key: %s", fmtEntry(g))
	}
	c.absent(missing)
	e2, err := c.b.Put(ctx, kv.PutRequest{Key: k, Value: []byte("2"), Cond: kv.IfVersion(e1.Version)})
	c.must("put if-version with the right version", err)
	if e2.Version <= e1.Version {
		c.Fatalf("compare-and-set took version %d, not above %d", e2.Version, e1.Version)
	}
	if g := c.get(k); string(g.Value) != "2" || g.Version != e2.Version {
		c.Fatalf("after a successful compare-and-set the key is %s", fmtEntry(g))
	}
}

func testDelete(c *check) {
	ctx := c.Context()
	k := c.k("k")
	d, err := c.b.Delete(ctx, c.k("missing"), kv.Condition{})
	if err != nil || d.Deleted {
		c.Fatalf("delete of a missing key: %+v %v, want deleted false and no error", d, err)
	}
	e := c.put(k, "v", 0)
	_, err = c.b.Delete(ctx, k, kv.IfVersion(e.Version+1))
	c.wantConflict("delete with a wrong version", err, e.Version, -1)
	c.get(k)
	d, err = c.b.Delete(ctx, k, kv.IfVersion(e.Version))
	if err != nil || !d.Deleted {
		c.Fatalf("delete with the right version: %+v %v", d, err)
	}
	c.absent(k)
	_, err = c.b.Delete(ctx, k, kv.IfVersion(e.Version))
	c.wantConflict("delete if-version of a missing key", err, 0, -1)
}

func testGetManyOrder(c *check) {
	a, b, cc := c.k("a"), c.k("b"), c.k("c")
	c.put(a, "1", 0)
	ec := c.put(cc, "3", time.Hour)
	res, err := c.b.GetMany(c.Context(), []string{cc, b, a, cc})
	c.must("get-many", err)
	got := res.Entries
	if len(got) != 4 || got[0] == nil || got[1] != nil || got[2] == nil || got[3] == nil {
		c.Fatalf("get-many of [c b a c] with b missing: %s, want [c nil a c]", fmtEntries(got))
	}
	if got[0].Key != cc || string(got[0].Value) != "3" || !sameInstant(got[0].ExpiresAt, ec.ExpiresAt) || got[2].Key != a || string(got[2].Value) != "1" {
		c.Fatalf("get-many of [c b a c]: %s, not in request order or incomplete", fmtEntries(got))
	}
	if res, err := c.b.GetMany(c.Context(), nil); err != nil || len(res.Entries) != 0 {
		c.Fatalf("get-many of no keys: %s %v", fmtEntries(res.Entries), err)
	}
}

func testGetManyFull(c *check) {
	keys := names(c, "k", kv.MaxGetMany)
	ops := make([]kv.Op, len(keys))
	for i, k := range keys {
		ops[i] = kv.PutOp(k, []byte(fmt.Sprint(i)), 0, kv.Condition{})
	}
	c.batch(ops...)
	res, err := c.b.GetMany(c.Context(), keys)
	c.must(fmt.Sprintf("get-many of %d keys", len(keys)), err)
	if len(res.Entries) != len(keys) {
		c.Fatalf("get-many of %d keys returned %d answers", len(keys), len(res.Entries))
	}
	for i, e := range res.Entries {
		if e == nil || e.Key != keys[i] || string(e.Value) != fmt.Sprint(i) {
			c.Fatalf("get-many of %d existing keys: answer %d is %s, want key %q", len(keys), i, fmtEntries([]*kv.Entry{e}), keys[i])
		}
	}
}

func fmtEntries(es []*kv.Entry) string {
	parts := make([]string, len(es))
	for i, e := range es {
		if e == nil {
			parts[i] = "nil"
		} else {
			parts[i] = fmtEntry(*e)
		}
	}
	return "[" + strings.Join(parts, " ") + "]"
}
