package conformance

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/kvhost/kvhost/kv"
)

// check is one rule's subtest: the testing.T it runs on, the backend under
// test and the key prefix the subtest owns. Its Fatalf and Errorf end every
// message with the rule broken, so a backend author reads what is wrong in
// the contract's words.
type check struct {
	*testing.T
	rule Rule
	b    kv.Backend
	info kv.Info
	cfg  *config
	// p starts every key the subtest writes ("" in a private store).
	p string
}

func (c *check) explain(msg string) string {
	return msg + "\n    rule broken: " + c.rule.Says
}

func (c *check) Fatalf(format string, args ...any) {
	c.Helper()
	c.T.Fatal(c.explain(fmt.Sprintf(format, args...)))
}

func (c *check) Errorf(format string, args ...any) {
	c.Helper()
	c.T.Error(c.explain(fmt.Sprintf(format, args...)))
}

func (c *check) Fatal(args ...any) {
	c.Helper()
	c.T.Fatal(c.explain(fmt.Sprint(args...)))
}

// must fails the subtest when a call the rule relies on fails.
func (c *check) must(what string, err error) {
	c.Helper()
	if err != nil {
		c.Fatalf("%s: %v", what, err)
	}
}

// k returns the full key of a name in the subtest's own key space.
func (c *check) k(name string) string { return c.p + name }

// private says whether the backend is this subtest's alone.
func (c *check) private() bool { return !c.cfg.shared }

func (c *check) put(key, value string, ttl time.Duration) kv.Entry {
	c.Helper()
	e, err := c.b.Put(c.Context(), kv.PutRequest{Key: key, Value: []byte(value), TTL: ttl})
	if err != nil {
		c.Fatalf("put %q: %v", key, err)
	}
	if e.Version <= 0 {
		c.Fatalf("put %q returned version %d; a version is the revision of the change, above 0", key, e.Version)
	}
	return e
}

// get returns a key that must be there.
func (c *check) get(key string) kv.Entry {
	c.Helper()
	r, err := c.b.Get(c.Context(), key)
	if err != nil {
		c.Fatalf("get %q: %v", key, err)
	}
	if !r.Found {
		c.Fatalf("get %q: not found, but it should be there", key)
	}
	return r.Entry
}

// absent checks that a key is not there: Found false, no error.
func (c *check) absent(key string) {
	c.Helper()
	r, err := c.b.Get(c.Context(), key)
	if err != nil {
		c.Fatalf("get %q: error %v; a missing key is Found false, not an error", key, err)
	}
	if r.Found {
		c.Fatalf("get %q: found %s, but it should be gone", key, fmtEntry(r.Entry))
	}
}

// head returns the store revision, as a Count of nothing reports it.
func (c *check) head() int64 {
	c.Helper()
	r, err := c.b.Count(c.Context(), c.k("~head/"))
	if err != nil {
		c.Fatalf("count (to read the store revision): %v", err)
	}
	return r.Revision
}

func (c *check) wantErr(what string, err, target error) {
	c.Helper()
	if !errors.Is(err, target) {
		c.Fatalf("%s: error %v, want one that is %v", what, err, target)
	}
}

func (c *check) wantConflict(what string, err error, current int64, opIndex int) {
	c.Helper()
	var ce *kv.ConflictError
	if !errors.As(err, &ce) || !errors.Is(err, kv.ErrConflict) {
		c.Fatalf("%s: error %v (%T), want a *kv.ConflictError", what, err, err)
	}
	if ce.CurrentVersion != current {
		c.Fatalf("%s: the conflict says the key is at version %d; it is at %d", what, ce.CurrentVersion, current)
	}
	if ce.OpIndex != opIndex {
		c.Fatalf("%s: the conflict names op %d, want %d (-1 outside a batch)", what, ce.OpIndex, opIndex)
	}
}

func (c *check) count(prefix string) int64 {
	c.Helper()
	n, err := c.b.Count(c.Context(), prefix)
	c.must(fmt.Sprintf("count %q", prefix), err)
	return n.Count
}

func (c *check) batch(ops ...kv.Op) kv.BatchResult {
	c.Helper()
	res, err := c.b.Batch(c.Context(), ops)
	c.must("batch", err)
	if len(res.Results) != len(ops) {
		c.Fatalf("batch of %d ops returned %d results", len(ops), len(res.Results))
	}
	return res
}

// putMany writes n keys name(0)..name(n-1) in batches.
func (c *check) putMany(n int, name func(int) string, value []byte) {
	c.Helper()
	ops := make([]kv.Op, 0, kv.MaxBatchOps)
	for i := range n {
		ops = append(ops, kv.PutOp(name(i), value, 0, kv.Condition{}))
		if len(ops) == kv.MaxBatchOps || i == n-1 {
			c.batch(ops...)
			ops = ops[:0]
		}
	}
}

func keysOf(es []kv.Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Key
	}
	return out
}

// listAll lists every key under prefix, a small page at a time.
func (c *check) listAll(prefix string) []string {
	c.Helper()
	var keys []string
	after := ""
	for {
		res, err := c.b.List(c.Context(), kv.ListRequest{Prefix: prefix, StartAfter: after, Limit: 7, KeysOnly: true})
		c.must(fmt.Sprintf("list %q", prefix), err)
		keys = append(keys, keysOf(res.Entries)...)
		if !res.More {
			return keys
		}
		if len(res.Entries) == 0 {
			c.Fatalf("list %q: an empty page that says more remain", prefix)
		}
		after = res.Entries[len(res.Entries)-1].Key
		if len(keys) > 100_000 {
			c.Fatalf("list %q: more than 100000 keys, pages do not advance", prefix)
		}
	}
}

func (c *check) wantKeys(what string, got, want []string) {
	c.Helper()
	if !slices.Equal(got, want) {
		c.Fatalf("%s: keys %q, want %q", what, got, want)
	}
}

// Short TTLs keep the tests quick; the suite waits until the expiry the
// backend reported has passed, and asserts nothing about timing beyond
// what the contract promises.
const shortTTL = 80 * time.Millisecond

// waitPast waits until the wall clock is past every given expiry. The
// backend reported them at millisecond precision from the same clock; a
// few milliseconds more cover a clock read at the start of a millisecond.
func (c *check) waitPast(expiries ...time.Time) {
	c.Helper()
	var last time.Time
	for _, e := range expiries {
		if e.IsZero() {
			c.Fatalf("a put with a TTL reported no expiry")
		}
		if e.After(last) {
			last = e
		}
	}
	if d := time.Until(last.Add(5 * time.Millisecond)); d > 0 {
		if d > time.Minute {
			c.Fatalf("an expiry %v ahead for a TTL of under a second", d)
		}
		time.Sleep(d) // waiting for the clock itself, not for another goroutine
	}
}

func fmtEntry(e kv.Entry) string {
	return fmt.Sprintf("{key %q value %q version %d expires %s}", e.Key, e.Value, e.Version, fmtTime(e.ExpiresAt))
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("15:04:05.000000")
}

// sameInstant compares expiries at the contract's precision, a millisecond.
func sameInstant(a, b time.Time) bool {
	return a.IsZero() == b.IsZero() && a.UnixMilli() == b.UnixMilli()
}
