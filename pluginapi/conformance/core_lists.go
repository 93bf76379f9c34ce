package conformance

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi"
)

func (c *check) list(req kv.ListRequest) kv.ListResult {
	c.Helper()
	res, err := c.b.List(c.Context(), req)
	c.must(fmt.Sprintf("list %q after %q limit %d", req.Prefix, req.StartAfter, req.Limit), err)
	return res
}

func testListOrder(c *check) {
	names := []string{"a", "a/b", "a/b/c", "a0", "aé", "a\x7f", "a~", "b", "ab", "A", "B", "a-"}
	for _, n := range names {
		c.put(c.k(n), "v-"+n, 0)
	}
	want := c.ks("A", "B", "a", "a-", "a/b", "a/b/c", "a0", "ab", "a~", "a\x7f", "aé", "b")
	c.wantKeys("list of everything, in pages of 7", c.listAll(c.p), want)
	c.wantKeys("list of a/", c.listAll(c.k("a/")), c.ks("a/b", "a/b/c"))
	res := c.list(kv.ListRequest{Prefix: c.k("a"), Limit: 3})
	if !res.More {
		c.Fatalf("a first page of 3 of the 9 keys under a says no more remain")
	}
	c.wantKeys("first page of 3 under a", keysOf(res.Entries), c.ks("a", "a-", "a/b"))
	if e := res.Entries[1]; string(e.Value) != "v-a-" || e.Version == 0 {
		c.Fatalf("a listed entry lacks its value or version: %s", fmtEntry(e))
	}
	res = c.list(kv.ListRequest{Prefix: c.k("a"), StartAfter: c.k("a~"), Limit: 3, KeysOnly: true})
	c.wantKeys("last page under a", keysOf(res.Entries), c.ks("a\x7f", "aé"))
	if res.More {
		c.Fatalf("the last page under a says more remain")
	}
	for _, e := range res.Entries {
		if len(e.Value) != 0 || e.Version == 0 {
			c.Fatalf("a keys-only entry must have its version and no value: %s", fmtEntry(e))
		}
	}
	res = c.list(kv.ListRequest{Prefix: c.k("a/"), Limit: 2})
	c.wantKeys("a page of exactly the keys there are", keysOf(res.Entries), c.ks("a/b", "a/b/c"))
	if res.More {
		c.Fatalf("a page holding exactly the last keys says more remain")
	}
	res = c.list(kv.ListRequest{Prefix: c.k("a/"), StartAfter: c.k("0")})
	c.wantKeys("list with StartAfter before the prefix", keysOf(res.Entries), c.ks("a/b", "a/b/c"))
	// The empty prefix lists everything: the keys after this subtest's
	// own prefix begin with its keys (in a shared store, others follow).
	res = c.list(kv.ListRequest{StartAfter: c.p, Limit: len(want), KeysOnly: true})
	c.wantKeys("list with an empty prefix", keysOf(res.Entries), want)
}

// ks returns the full keys of names.
func (c *check) ks(names ...string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = c.k(n)
	}
	return out
}

func testListLimits(c *check) {
	const n = kv.MaxListLimit + 1
	key := func(i int) string { return c.k(fmt.Sprintf("k/%06d", i)) }
	c.putMany(n, key, []byte("v"))
	res := c.list(kv.ListRequest{Prefix: c.k("k/"), KeysOnly: true})
	if len(res.Entries) != kv.DefaultListLimit || !res.More {
		c.Fatalf("list with limit 0 of %d keys: %d entries, more=%v; want %d and more", n, len(res.Entries), res.More, kv.DefaultListLimit)
	}
	res = c.list(kv.ListRequest{Prefix: c.k("k/"), KeysOnly: true, Limit: 1 << 20})
	if len(res.Entries) != kv.MaxListLimit || !res.More {
		c.Fatalf("list with a limit above %d of %d keys: %d entries, more=%v; want %d and more", kv.MaxListLimit, n, len(res.Entries), res.More, kv.MaxListLimit)
	}
	if last := res.Entries[len(res.Entries)-1].Key; last != key(kv.MaxListLimit-1) {
		c.Fatalf("the last key of a full page is %q, want %q", last, key(kv.MaxListLimit-1))
	}
}

func testListBytes(c *check) {
	value := make([]byte, 1000)
	key := func(i int) string { return c.k(fmt.Sprintf("b/%02d", i)) }
	c.putMany(20, key, value)
	size := len(key(0)) + len(value)
	// Five entries fit in 5 sizes; the sixth would pass the bound.
	res := c.list(kv.ListRequest{Prefix: c.k("b/"), MaxBytes: 5*size + size/2})
	if len(res.Entries) != 5 || !res.More {
		c.Fatalf("list of 20 entries of %d bytes with max bytes %d: %d entries, more=%v; want 5 and more", size, 5*size+size/2, len(res.Entries), res.More)
	}
	// Paging by bytes visits every key once.
	var got []string
	for after := ""; ; {
		res := c.list(kv.ListRequest{Prefix: c.k("b/"), StartAfter: after, MaxBytes: 3 * size})
		for _, e := range res.Entries {
			got = append(got, e.Key)
		}
		if !res.More {
			break
		}
		if len(res.Entries) == 0 {
			c.Fatalf("a page with more=true holds no entry")
		}
		after = res.Entries[len(res.Entries)-1].Key
	}
	var want []string
	for i := range 20 {
		want = append(want, key(i))
	}
	c.wantKeys("paging by 3 entries' bytes", got, want)
	// The first entry comes even when it alone is over the bound.
	res = c.list(kv.ListRequest{Prefix: c.k("b/"), MaxBytes: 10})
	if len(res.Entries) != 1 || !res.More {
		c.Fatalf("list with max bytes below one entry: %d entries, more=%v; want the first entry and more", len(res.Entries), res.More)
	}
	// Keys only: values do not count.
	res = c.list(kv.ListRequest{Prefix: c.k("b/"), KeysOnly: true, MaxBytes: 20 * len(key(0))})
	if len(res.Entries) != 20 || res.More {
		c.Fatalf("keys-only list with max bytes of 20 keys: %d entries, more=%v; want all 20 (values do not count)", len(res.Entries), res.More)
	}
	// The default bound, 4 MiB, keeps a page of large values small.
	big := make([]byte, 1<<20)
	c.putMany(6, func(i int) string { return c.k(fmt.Sprintf("m/%d", i)) }, big)
	res = c.list(kv.ListRequest{Prefix: c.k("m/")})
	if len(res.Entries) != 3 || !res.More {
		c.Fatalf("list of six 1 MiB values at the default bound: %d entries, more=%v; want 3 (a fourth would pass 4 MiB) and more", len(res.Entries), res.More)
	}
}

func testLiteralPrefixes(c *check) {
	names := []string{`a%b`, `a_b`, `axb`, `a*b`, `a?b`, `a[b`, `a\b`, `a.b`, `ab`, `a]`, `a^`}
	for _, n := range names {
		c.put(c.k(n), "v", 0)
	}
	for _, p := range []string{`a%`, `a_`, `a*`, `a?`, `a[`, `a\`, `a.`, `a]`, `a^`} {
		var want []string
		for _, n := range names {
			if strings.HasPrefix(n, p) {
				want = append(want, c.k(n))
			}
		}
		c.wantKeys(fmt.Sprintf("list %q", p), c.listAll(c.k(p)), want)
		if n := c.count(c.k(p)); n != int64(len(want)) {
			c.Fatalf("count %q: %d, want %d (only literal matches)", p, n, len(want))
		}
	}
	for _, p := range []string{`a_`, `a%`} {
		res, err := c.b.DeletePrefix(c.Context(), c.k(p))
		if err != nil || res.Deleted != 1 {
			c.Fatalf("delete-prefix %q: %d deleted, %v; want only the one literal match", p, res.Deleted, err)
		}
	}
	if n := c.count(c.k("a")); n != int64(len(names)-2) {
		c.Fatalf("count after two literal delete-prefixes: %d, want %d", n, len(names)-2)
	}
	c.get(c.k("axb"))
}

func testPrefixEqualKey(c *check) {
	for _, n := range []string{"job", "job/1", "jo", "jobs"} {
		c.put(c.k(n), "v", 0)
	}
	c.wantKeys(`list "job"`, c.listAll(c.k("job")), c.ks("job", "job/1", "jobs"))
	if n := c.count(c.k("job")); n != 3 {
		c.Fatalf(`count "job": %d, want 3 (job, job/1 and jobs)`, n)
	}
	c.wantKeys(`list "job/1"`, c.listAll(c.k("job/1")), c.ks("job/1"))
	res, err := c.b.DeletePrefix(c.Context(), c.k("job/1"))
	if err != nil || res.Deleted != 1 {
		c.Fatalf(`delete-prefix "job/1": %d deleted, %v; want the key equal to the prefix`, res.Deleted, err)
	}
	c.absent(c.k("job/1"))
}

// testPrefixLastCodePoint: the range of a prefix ends at the prefix with
// its last byte plus one (kv.PrefixEnd). For a prefix whose last code point
// ends in the byte 0xBF that bound is not UTF-8, which a store that checks
// its text (PostgreSQL) refuses; the key one code point below and the
// first code point above must stay outside.
func testPrefixLastCodePoint(c *check) {
	for i, last := range []string{"\u00bf", "\u07ff", "\uffff", "\U0010ffff"} {
		p := fmt.Sprint("cp", i, "/a", last)
		under := []string{p, p + "\x01", p + "x", p + "\U0010ffff"}
		r := []rune(last)[0]
		outside := []string{fmt.Sprint("cp", i, "/a", string(r-1), "x"), fmt.Sprint("cp", i, "/b")}
		if r < utf8.MaxRune {
			outside = append(outside, fmt.Sprint("cp", i, "/a", string(r+1)))
		}
		for _, k := range append(append([]string{}, under...), outside...) {
			c.put(c.k(k), "v", 0)
		}
		want := c.ks(under...)
		c.wantKeys(fmt.Sprintf("list %q", p), c.listAll(c.k(p)), want)
		if n := c.count(c.k(p)); n != int64(len(under)) {
			c.Fatalf("count %q: %d, want %d", p, n, len(under))
		}
		res, err := c.b.DeletePrefix(c.Context(), c.k(p))
		if err != nil || res.Deleted != int64(len(under)) {
			c.Fatalf("delete-prefix %q: %d deleted, %v; want %d", p, res.Deleted, err, len(under))
		}
		c.wantKeys(fmt.Sprintf("keys under cp%d/ after delete-prefix %q", i, p), c.listAll(c.k(fmt.Sprint("cp", i, "/"))), sortedKeys(c, outside))
	}
}

// sortedKeys is c.ks of names in byte order.
func sortedKeys(c *check, names []string) []string {
	keys := c.ks(names...)
	slices.Sort(keys)
	return keys
}

func testCountDeletePrefix(c *check) {
	ctx := c.Context()
	for i := range 5 {
		c.put(c.k(fmt.Sprint("actor/", i)), "x", 0)
	}
	c.put(c.k("actors"), "x", 0)
	c.put(c.k("node/1"), "x", 0)
	for _, tc := range []struct {
		prefix string
		want   int64
	}{{c.k("actor/"), 5}, {c.p, 7}, {c.k("zzz"), 0}} {
		if n := c.count(tc.prefix); n != tc.want {
			c.Fatalf("count %q: %d, want %d", tc.prefix, n, tc.want)
		}
	}
	res, err := c.b.DeletePrefix(ctx, c.k("actor/"))
	if err != nil || res.Deleted != 5 {
		c.Fatalf("delete-prefix actor/: %d deleted, %v; want 5", res.Deleted, err)
	}
	c.wantKeys("keys after delete-prefix actor/", c.listAll(c.p), c.ks("actors", "node/1"))
	if res, err := c.b.DeletePrefix(ctx, c.k("actor/")); err != nil || res.Deleted != 0 {
		c.Fatalf("delete-prefix of nothing: %d deleted, %v; want 0", res.Deleted, err)
	}
}

// testPackedPage compares ListPacked with List, where a backend has both,
// on pages cut by limit, by bytes at and around their boundaries, by
// StartAfter, keys only, and on values empty, small and larger, with and
// without an expiry.
func testPackedPage(c *check) {
	pl, ok := c.b.(pluginapi.PackedLister)
	if !ok {
		c.Skip("the backend has no ListPacked: its lists cross the plugin wire from List")
	}
	for i := range 40 {
		var ttl time.Duration
		if i%3 == 0 {
			ttl = time.Hour
		}
		c.put(c.k(fmt.Sprintf("pk/%02d", i)), strings.Repeat("v", i*i%301), ttl)
	}
	p := c.k("pk/")
	reqs := []kv.ListRequest{
		{Prefix: p},
		{Prefix: p, KeysOnly: true},
		{Prefix: p, Limit: 7},
		{Prefix: p, StartAfter: c.k("pk/12"), Limit: 9},
		{Prefix: c.k("pk/3")},
		{Prefix: c.k("pk/none/")},
	}
	for _, budget := range []int{1, 200, 1000, 1001, 2500} {
		reqs = append(reqs, kv.ListRequest{Prefix: p, MaxBytes: budget}, kv.ListRequest{Prefix: p, MaxBytes: budget, KeysOnly: true})
	}
	for _, req := range reqs {
		what := fmt.Sprintf("list %q after %q limit %d max bytes %d keys only %v", req.Prefix, req.StartAfter, req.Limit, req.MaxBytes, req.KeysOnly)
		want := c.list(req)
		got, err := pluginapi.ListPackedEntries(c.Context(), pl, req)
		c.must(what+" through ListPacked", err)
		if got.More != want.More || got.Revision < want.Revision || len(got.Entries) != len(want.Entries) {
			c.Fatalf("%s: ListPacked says %d entries, more %v at revision %d; List %d, more %v at revision %d",
				what, len(got.Entries), got.More, got.Revision, len(want.Entries), want.More, want.Revision)
		}
		for i, w := range want.Entries {
			g := got.Entries[i]
			if g.Key != w.Key || !bytes.Equal(g.Value, w.Value) || g.Version != w.Version ||
				kv.UnixMillis(g.ExpiresAt) != kv.UnixMillis(w.ExpiresAt) {
				c.Fatalf("%s: entry %d through ListPacked is %s, through List %s", what, i, fmtEntry(g), fmtEntry(w))
			}
		}
	}
}
