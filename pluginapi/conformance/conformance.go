package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi"
)

// NewBackend returns a fresh, empty backend for one subtest.
type NewBackend func(t testing.TB) kv.Backend

// Run runs the whole suite against backends made by newBackend, in-process.
func Run(t *testing.T, newBackend NewBackend) {
	t.Helper()
	s := &suite{newBackend: newBackend}
	for _, tc := range s.cases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t)
		})
	}
}

// RunGRPC runs the suite with each backend served over an in-process gRPC
// connection, so every value and error crosses the real plugin protocol
// with the same message limits as a plugin subprocess.
func RunGRPC(t *testing.T, open pluginapi.OpenFunc, settings func(t testing.TB) map[string]string) {
	t.Helper()
	Run(t, func(t testing.TB) kv.Backend {
		t.Helper()
		c, err := pluginapi.ServeInProcess(t.Context(), open)
		if err != nil {
			t.Fatalf("serve in process: %v", err)
		}
		var set map[string]string
		if settings != nil {
			set = settings(t)
		}
		if err := c.Open(t.Context(), set); err != nil {
			_ = c.Close()
			t.Fatalf("open: %v", err)
		}
		return c
	})
}

// RunPlugin runs the suite against a built plugin binary: every subtest
// starts its own plugin process over go-plugin, with the settings returned
// by settings (which may be nil).
func RunPlugin(t *testing.T, path string, settings func(t testing.TB) map[string]string) {
	t.Helper()
	Run(t, func(t testing.TB) kv.Backend {
		return StartPlugin(t, path, settings)
	})
}

// StartPlugin starts one plugin process for a test and kills it at cleanup.
func StartPlugin(t testing.TB, path string, settings func(t testing.TB) map[string]string) *pluginapi.Plugin {
	t.Helper()
	var set map[string]string
	if settings != nil {
		set = settings(t)
	}
	p, err := pluginapi.Start(t.Context(), pluginapi.StartConfig{
		Path:     path,
		Settings: set,
		Logger:   hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: testWriter{t}}),
	})
	if err != nil {
		t.Fatalf("start plugin %s: %v", path, err)
	}
	t.Cleanup(p.Kill)
	return p
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

type suite struct {
	newBackend NewBackend
}

type testCase struct {
	name string
	fn   func(t *testing.T)
}

func (s *suite) cases() []testCase {
	return []testCase{
		{"Info", s.testInfo},
		{"Keys", s.testKeys},
		{"Values", s.testValues},
		{"LargeValue", s.testLargeValue},
		{"Versions", s.testVersions},
		{"NoABA", s.testNoABA},
		{"TTL", s.testTTL},
		{"TTLInvisibleEverywhere", s.testTTLInvisible},
		{"PutWithoutTTLClearsTTL", s.testPutClearsTTL},
		{"GetMany", s.testGetMany},
		{"PutConditions", s.testPutConditions},
		{"Delete", s.testDelete},
		{"ListOrderAndPages", s.testListOrder},
		{"ListLimits", s.testListLimits},
		{"LiteralPrefixes", s.testLiteralPrefixes},
		{"CountAndDeletePrefix", s.testCountDeletePrefix},
		{"Increment", s.testIncrement},
		{"RefreshTTL", s.testRefreshTTL},
		{"Batch", s.testBatch},
		{"BatchAtomic", s.testBatchAtomic},
		{"Watch", s.testWatch},
		{"WatchOverflow", s.testWatchOverflow},
		{"CleanupExpired", s.testCleanupExpired},
		{"Stats", s.testStats},
		{"ConcurrentIncrement", s.testConcurrentIncrement},
		{"ConcurrentPutIfAbsent", s.testConcurrentPutIfAbsent},
	}
}

func (s *suite) open(t *testing.T) kv.Backend {
	t.Helper()
	b := s.newBackend(t)
	if b == nil {
		t.Fatal("newBackend returned nil")
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func ctxOf(t *testing.T) context.Context { return t.Context() }

func put(t *testing.T, b kv.Backend, key, value string, ttl time.Duration) kv.Entry {
	t.Helper()
	e, err := b.Put(ctxOf(t), kv.PutRequest{Key: key, Value: []byte(value), TTL: ttl})
	if err != nil {
		t.Fatalf("put %q: %v", key, err)
	}
	if e.Version <= 0 {
		t.Fatalf("put %q: version %d, want > 0", key, e.Version)
	}
	return e
}

func get(t *testing.T, b kv.Backend, key string) kv.Entry {
	t.Helper()
	r, err := b.Get(ctxOf(t), key)
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	if !r.Found {
		t.Fatalf("get %q: not found", key)
	}
	return r.Entry
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: error %v, want one that is %v", what, err, target)
	}
}

func wantNotFound(t *testing.T, b kv.Backend, key string) {
	t.Helper()
	r, err := b.Get(ctxOf(t), key)
	if err != nil || r.Found {
		t.Fatalf("get %q: found=%v err=%v, want not found and no error", key, r.Found, err)
	}
}

func wantConflict(t *testing.T, what string, err error, current int64, opIndex int) {
	t.Helper()
	var ce *kv.ConflictError
	if !errors.As(err, &ce) || !errors.Is(err, kv.ErrConflict) {
		t.Fatalf("%s: error %v (%T), want a *ConflictError", what, err, err)
	}
	if ce.CurrentVersion != current {
		t.Fatalf("%s: conflict reports current version %d, want %d", what, ce.CurrentVersion, current)
	}
	if ce.OpIndex != opIndex {
		t.Fatalf("%s: conflict reports op index %d, want %d", what, ce.OpIndex, opIndex)
	}
}

func keysOf(es []kv.Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Key
	}
	return out
}

func listAll(t *testing.T, b kv.Backend, prefix string) []string {
	t.Helper()
	var keys []string
	after := ""
	for {
		res, err := b.List(ctxOf(t), kv.ListRequest{Prefix: prefix, StartAfter: after, Limit: 7, KeysOnly: true})
		if err != nil {
			t.Fatalf("list %q: %v", prefix, err)
		}
		keys = append(keys, keysOf(res.Entries)...)
		if !res.More {
			return keys
		}
		if len(res.Entries) == 0 {
			t.Fatalf("list %q: More with an empty page", prefix)
		}
		after = res.Entries[len(res.Entries)-1].Key
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// expire waits until a TTL set before now has certainly passed.
func expire(ttl time.Duration) { time.Sleep(ttl + 60*time.Millisecond) }

const shortTTL = 80 * time.Millisecond

func (s *suite) testInfo(t *testing.T) {
	b := s.open(t)
	info, err := b.Info(ctxOf(t))
	if err != nil {
		t.Fatal(err)
	}
	if info.Name == "" || info.Version == "" {
		t.Fatalf("info %+v: name and version must be set", info)
	}
	if info.ProtocolVersion != pluginapi.ProtocolVersion {
		t.Fatalf("info protocol version %d, want %d", info.ProtocolVersion, pluginapi.ProtocolVersion)
	}
	if !info.Capabilities.Watch {
		if w, ok := b.(kv.Watcher); ok {
			_, err := w.Watch(ctxOf(t), kv.WatchRequest{})
			wantErr(t, "watch on a backend without the capability", err, kv.ErrNotSupported)
		}
	}
	if !info.Capabilities.CleanupExpired {
		if x, ok := b.(kv.Expirer); ok {
			_, err := x.CleanupExpired(ctxOf(t), 0)
			wantErr(t, "cleanup on a backend without the capability", err, kv.ErrNotSupported)
		}
	}
}

func (s *suite) testKeys(t *testing.T) {
	b := s.open(t)
	good := []string{"a", "actor/1", "node:é:ü", strings.Repeat("k", kv.MaxKeyLen), "a b\tc", "🔑", "x\x01y"}
	for _, k := range good {
		put(t, b, k, "v:"+k, 0)
		if e := get(t, b, k); string(e.Value) != "v:"+k || e.Key != k {
			t.Fatalf("get %q: %+v", k, e)
		}
	}
	bad := map[string]string{
		"empty":        "",
		"too long":     strings.Repeat("k", kv.MaxKeyLen+1),
		"invalid utf8": "a\xffb",
		"nul":          "a\x00b",
	}
	for name, k := range bad {
		_, err := b.Put(ctxOf(t), kv.PutRequest{Key: k, Value: []byte("x")})
		wantErr(t, "put with "+name+" key", err, kv.ErrInvalidArgument)
		_, err = b.Get(ctxOf(t), k)
		wantErr(t, "get with "+name+" key", err, kv.ErrInvalidArgument)
		_, err = b.Delete(ctxOf(t), k, kv.Condition{})
		wantErr(t, "delete with "+name+" key", err, kv.ErrInvalidArgument)
		_, err = b.Increment(ctxOf(t), k, 1)
		wantErr(t, "increment with "+name+" key", err, kv.ErrInvalidArgument)
		_, err = b.RefreshTTL(ctxOf(t), kv.RefreshRequest{Key: k, TTL: time.Second})
		wantErr(t, "refresh ttl with "+name+" key", err, kv.ErrInvalidArgument)
		_, err = b.GetMany(ctxOf(t), []string{"a", k})
		wantErr(t, "get-many with "+name+" key", err, kv.ErrInvalidArgument)
		if k != "" { // an empty prefix is valid: it lists everything
			_, err = b.List(ctxOf(t), kv.ListRequest{Prefix: k})
			wantErr(t, "list with "+name+" prefix", err, kv.ErrInvalidArgument)
			_, err = b.Count(ctxOf(t), k)
			wantErr(t, "count with "+name+" prefix", err, kv.ErrInvalidArgument)
		}
	}
	_, err := b.Put(ctxOf(t), kv.PutRequest{Key: "neg", TTL: -time.Second})
	wantErr(t, "put with negative ttl", err, kv.ErrInvalidArgument)
	if n, err := b.Count(ctxOf(t), ""); err != nil || n.Count != int64(len(good)) {
		t.Fatalf("count after bad puts: %d, %v; want %d (bad input must store nothing)", n, err, len(good))
	}
}

func (s *suite) testValues(t *testing.T) {
	b := s.open(t)
	cases := map[string][]byte{
		"empty":  {},
		"binary": {0, 1, 2, 0xff, 0xfe, 0},
		"text":   []byte("hello"),
	}
	for name, v := range cases {
		if _, err := b.Put(ctxOf(t), kv.PutRequest{Key: "v/" + name, Value: v}); err != nil {
			t.Fatalf("put %s: %v", name, err)
		}
		e := get(t, b, "v/"+name)
		if !bytes.Equal(e.Value, v) {
			t.Fatalf("value %s: got %v, want %v", name, e.Value, v)
		}
	}
}

func (s *suite) testLargeValue(t *testing.T) {
	b := s.open(t)
	v := bytes.Repeat([]byte{0xab, 0x00, 0x7f}, kv.MinValueSize/3+1)[:kv.MinValueSize]
	if _, err := b.Put(ctxOf(t), kv.PutRequest{Key: "big", Value: v}); err != nil {
		t.Fatalf("put 16 MiB: %v", err)
	}
	if e := get(t, b, "big"); !bytes.Equal(e.Value, v) {
		t.Fatalf("16 MiB value came back as %d bytes, not equal", len(e.Value))
	}
}

func (s *suite) testVersions(t *testing.T) {
	b := s.open(t)
	var last int64
	next := func(what string, v int64) {
		t.Helper()
		if v <= last {
			t.Fatalf("%s: version %d, not above the previous %d", what, v, last)
		}
		last = v
	}
	next("put a", put(t, b, "a", "1", 0).Version)
	next("put b", put(t, b, "b", "1", 0).Version)
	next("put a again", put(t, b, "a", "2", 0).Version)
	if e := get(t, b, "a"); e.Version != last {
		t.Fatalf("get a: version %d, want %d", e.Version, last)
	}
	c, err := b.Increment(ctxOf(t), "n", 1)
	if err != nil {
		t.Fatal(err)
	}
	next("increment", c.Version)
	res, err := b.Batch(ctxOf(t), []kv.Op{
		kv.PutOp("a", []byte("3"), 0, kv.Condition{}),
		kv.PutOp("c", []byte("1"), 0, kv.Condition{}),
	})
	if err != nil {
		t.Fatal(err)
	}
	next("batch op 0", res.Results[0].Version)
	next("batch op 1", res.Results[1].Version)
	if e := get(t, b, "c"); e.Version != res.Results[1].Version {
		t.Fatalf("get c: version %d, batch said %d", e.Version, res.Results[1].Version)
	}
	// A TTL refresh changes no version.
	e, err := b.RefreshTTL(ctxOf(t), kv.RefreshRequest{Key: "c", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if e.Entry.Version != res.Results[1].Version {
		t.Fatalf("refresh ttl changed the version from %d to %d", res.Results[1].Version, e.Entry.Version)
	}
}

func (s *suite) testNoABA(t *testing.T) {
	b := s.open(t)
	v1 := put(t, b, "lock", "owner-1", 0).Version
	if ok, err := b.Delete(ctxOf(t), "lock", kv.Condition{}); err != nil || !ok.Deleted {
		t.Fatalf("delete: %v %v", ok, err)
	}
	v2 := put(t, b, "lock", "owner-2", 0).Version
	if v2 <= v1 {
		t.Fatalf("recreated key got version %d, not above the deleted key's %d", v2, v1)
	}
	_, err := b.Put(ctxOf(t), kv.PutRequest{Key: "lock", Value: []byte("stale"), Cond: kv.IfVersion(v1)})
	wantConflict(t, "compare-and-set with the deleted key's version", err, v2, -1)
	// The same through expiry: an expired key's version is never reused.
	v3 := put(t, b, "ttl", "x", shortTTL).Version
	expire(shortTTL)
	v4 := put(t, b, "ttl", "y", 0).Version
	if v4 <= v3 {
		t.Fatalf("key recreated after expiry got version %d, not above %d", v4, v3)
	}
	// And through a batch delete.
	if _, err := b.Batch(ctxOf(t), []kv.Op{kv.DeleteOp("lock", kv.Condition{})}); err != nil {
		t.Fatal(err)
	}
	if v5 := put(t, b, "lock", "owner-3", 0).Version; v5 <= v4 {
		t.Fatalf("recreated key got version %d, not above %d", v5, v4)
	}
}

func (s *suite) testTTL(t *testing.T) {
	b := s.open(t)
	before := time.Now()
	e := put(t, b, "session:1", "x", time.Hour)
	after := time.Now()
	lo := before.Truncate(time.Millisecond).Add(time.Hour)
	hi := after.Add(time.Hour + time.Millisecond)
	if e.ExpiresAt.Before(lo) || e.ExpiresAt.After(hi) {
		t.Fatalf("put with 1h ttl: expires at %v, want within [%v, %v]", e.ExpiresAt, lo, hi)
	}
	if g := get(t, b, "session:1"); !g.ExpiresAt.Equal(e.ExpiresAt) {
		t.Fatalf("get: expires at %v, put said %v", g.ExpiresAt, e.ExpiresAt)
	}
	if e.ExpiresAt.UnixMilli()*int64(time.Millisecond) != e.ExpiresAt.UnixNano() {
		t.Fatalf("expiry %v is not at millisecond precision", e.ExpiresAt)
	}
	if e := put(t, b, "forever", "x", 0); !e.ExpiresAt.IsZero() {
		t.Fatalf("ttl 0: expires at %v, want never", e.ExpiresAt)
	}
	// Sub-millisecond TTLs round up, never to "no expiry".
	if e := put(t, b, "tiny", "x", time.Microsecond); e.ExpiresAt.IsZero() {
		t.Fatal("a 1µs ttl became no expiry")
	}
	put(t, b, "short", "x", shortTTL)
	expire(shortTTL)
	wantNotFound(t, b, "short")
	wantNotFound(t, b, "tiny")
	get(t, b, "forever")
	get(t, b, "session:1")
}

func (s *suite) testTTLInvisible(t *testing.T) {
	b := s.open(t)
	old := put(t, b, "p/dead", "5", shortTTL)
	put(t, b, "p/dead2", "x", shortTTL)
	put(t, b, "p/dead3", "x", shortTTL)
	put(t, b, "p/live", "x", 0)
	expire(shortTTL)
	ctx := ctxOf(t)
	wantNotFound(t, b, "p/dead")
	many, err := b.GetMany(ctx, []string{"p/dead", "p/live"})
	if err != nil || len(many.Entries) != 2 || many.Entries[0] != nil || many.Entries[1] == nil {
		t.Fatalf("get-many after expiry: %v %v", many, err)
	}
	if keys := listAll(t, b, "p/"); !equalStrings(keys, []string{"p/live"}) {
		t.Fatalf("list after expiry: %q", keys)
	}
	if n, err := b.Count(ctx, "p/"); err != nil || n.Count != 1 {
		t.Fatalf("count after expiry: %d %v, want 1", n, err)
	}
	if st, err := b.Stats(ctx); err != nil || st.Keys != 1 {
		t.Fatalf("stats after expiry: %+v %v, want 1 key", st, err)
	}
	_, err = b.Put(ctx, kv.PutRequest{Key: "p/dead", Value: []byte("x"), Cond: kv.IfVersion(old.Version)})
	wantConflict(t, "if-version on an expired key", err, 0, -1)
	_, err = b.RefreshTTL(ctx, kv.RefreshRequest{Key: "p/dead", TTL: time.Hour})
	wantErr(t, "refresh ttl of an expired key", err, kv.ErrNotFound)
	if ok, err := b.Delete(ctx, "p/dead2", kv.Condition{}); err != nil || ok.Deleted {
		t.Fatalf("delete of an expired key: deleted=%v err=%v, want false, nil", ok, err)
	}
	if n, err := b.DeletePrefix(ctx, "p/dead"); err != nil || n.Deleted != 0 {
		t.Fatalf("delete-prefix over expired keys: %d %v, want 0", n, err)
	}
	c, err := b.Increment(ctx, "p/dead", 2)
	if err != nil || c.Value != 2 {
		t.Fatalf("increment of an expired counter: %+v %v, want to start at 0", c, err)
	}
	if !c.ExpiresAt.IsZero() {
		t.Fatalf("increment of an expired counter kept the old ttl: %v", c.ExpiresAt)
	}
	if _, err := b.Put(ctx, kv.PutRequest{Key: "p/dead3", Value: []byte("new"), Cond: kv.IfAbsent()}); err != nil {
		t.Fatalf("if-absent on an expired key: %v", err)
	}
}

func (s *suite) testPutClearsTTL(t *testing.T) {
	b := s.open(t)
	put(t, b, "k", "1", shortTTL)
	if e := put(t, b, "k", "2", 0); !e.ExpiresAt.IsZero() {
		t.Fatalf("put without ttl kept expiry %v", e.ExpiresAt)
	}
	expire(shortTTL)
	if e := get(t, b, "k"); string(e.Value) != "2" || !e.ExpiresAt.IsZero() {
		t.Fatalf("after the old ttl: %+v", e)
	}
}

func (s *suite) testGetMany(t *testing.T) {
	b := s.open(t)
	put(t, b, "a", "1", 0)
	put(t, b, "c", "3", time.Hour)
	got, err := b.GetMany(ctxOf(t), []string{"c", "b", "a", "c"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Entries) != 4 || got.Entries[0] == nil || got.Entries[1] != nil || got.Entries[2] == nil || got.Entries[3] == nil {
		t.Fatalf("get-many: %v", got)
	}
	if got := got.Entries; got[0].Key != "c" || string(got[0].Value) != "3" || got[0].ExpiresAt.IsZero() || got[2].Key != "a" || string(got[2].Value) != "1" {
		t.Fatalf("get-many answers out of order or incomplete: %+v %+v", *got[0], *got[2])
	}
	if got, err := b.GetMany(ctxOf(t), nil); err != nil || len(got.Entries) != 0 {
		t.Fatalf("get-many of nothing: %v %v", got, err)
	}
	keys := make([]string, kv.MaxGetMany+1)
	for i := range keys {
		keys[i] = fmt.Sprint("k", i)
	}
	_, err = b.GetMany(ctxOf(t), keys)
	wantErr(t, "get-many over the limit", err, kv.ErrInvalidArgument)
	if got, err := b.GetMany(ctxOf(t), keys[:kv.MaxGetMany]); err != nil || len(got.Entries) != kv.MaxGetMany {
		t.Fatalf("get-many at the limit: %d results, %v", len(got.Entries), err)
	}
}

func (s *suite) testPutConditions(t *testing.T) {
	b := s.open(t)
	ctx := ctxOf(t)
	e1, err := b.Put(ctx, kv.PutRequest{Key: "k", Value: []byte("1"), Cond: kv.IfAbsent()})
	if err != nil {
		t.Fatalf("if-absent on a missing key: %v", err)
	}
	_, err = b.Put(ctx, kv.PutRequest{Key: "k", Value: []byte("2"), Cond: kv.IfAbsent()})
	wantConflict(t, "if-absent on a live key", err, e1.Version, -1)
	_, err = b.Put(ctx, kv.PutRequest{Key: "k", Value: []byte("2"), Cond: kv.IfVersion(e1.Version + 100)})
	wantConflict(t, "if-version with a wrong version", err, e1.Version, -1)
	_, err = b.Put(ctx, kv.PutRequest{Key: "missing", Value: []byte("2"), Cond: kv.IfVersion(e1.Version)})
	wantConflict(t, "if-version on a missing key", err, 0, -1)
	if g := get(t, b, "k"); string(g.Value) != "1" || g.Version != e1.Version {
		t.Fatalf("failed conditions changed the key: %+v", g)
	}
	wantNotFound(t, b, "missing")
	e2, err := b.Put(ctx, kv.PutRequest{Key: "k", Value: []byte("2"), Cond: kv.IfVersion(e1.Version)})
	if err != nil {
		t.Fatalf("if-version with the right version: %v", err)
	}
	if e2.Version <= e1.Version {
		t.Fatalf("compare-and-set version %d not above %d", e2.Version, e1.Version)
	}
	_, err = b.Put(ctx, kv.PutRequest{Key: "k", Value: []byte("3"), Cond: kv.IfVersion(0)})
	wantErr(t, "if-version 0", err, kv.ErrInvalidArgument)
}

func (s *suite) testDelete(t *testing.T) {
	b := s.open(t)
	ctx := ctxOf(t)
	if ok, err := b.Delete(ctx, "missing", kv.Condition{}); err != nil || ok.Deleted {
		t.Fatalf("delete missing: %v %v, want false, nil", ok, err)
	}
	e := put(t, b, "k", "v", 0)
	_, err := b.Delete(ctx, "k", kv.IfVersion(e.Version+1))
	wantConflict(t, "delete with a wrong version", err, e.Version, -1)
	get(t, b, "k")
	_, err = b.Delete(ctx, "k", kv.IfAbsent())
	wantErr(t, "delete if-absent", err, kv.ErrInvalidArgument)
	if ok, err := b.Delete(ctx, "k", kv.IfVersion(e.Version)); err != nil || !ok.Deleted {
		t.Fatalf("delete with the right version: %v %v", ok, err)
	}
	wantNotFound(t, b, "k")
	_, err = b.Delete(ctx, "k", kv.IfVersion(e.Version))
	wantConflict(t, "conditional delete of a missing key", err, 0, -1)
}

func (s *suite) testListOrder(t *testing.T) {
	b := s.open(t)
	keys := []string{"a", "a/b", "a/b/c", "a0", "aé", "a\x7f", "a~", "b", "ab", "A", "a-"}
	for _, k := range keys {
		put(t, b, k, "v-"+k, 0)
	}
	want := []string{"A", "a", "a-", "a/b", "a/b/c", "a0", "ab", "a~", "a\x7f", "aé", "b"}
	if got := listAll(t, b, ""); !equalStrings(got, want) {
		t.Fatalf("list all: %q, want byte order %q", got, want)
	}
	if got := listAll(t, b, "a/"); !equalStrings(got, []string{"a/b", "a/b/c"}) {
		t.Fatalf("list a/: %q", got)
	}
	res, err := b.List(ctxOf(t), kv.ListRequest{Prefix: "a", Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if !res.More || !equalStrings(keysOf(res.Entries), []string{"a", "a-", "a/b"}) {
		t.Fatalf("first page: %q more=%v", keysOf(res.Entries), res.More)
	}
	if e := res.Entries[1]; string(e.Value) != "v-a-" || e.Version == 0 {
		t.Fatalf("list entry without its value or version: %+v", e)
	}
	res, err = b.List(ctxOf(t), kv.ListRequest{Prefix: "a", StartAfter: "a~", Limit: 3, KeysOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.More || !equalStrings(keysOf(res.Entries), []string{"a\x7f", "aé"}) {
		t.Fatalf("last page: %q more=%v", keysOf(res.Entries), res.More)
	}
	for _, e := range res.Entries {
		if len(e.Value) != 0 || e.Version == 0 {
			t.Fatalf("keys-only entry %+v: want a version and no value", e)
		}
	}
	// Exactly a page's worth: More is false.
	res, err = b.List(ctxOf(t), kv.ListRequest{Prefix: "a/", Limit: 2})
	if err != nil || res.More || len(res.Entries) != 2 {
		t.Fatalf("exact page: %q more=%v %v", keysOf(res.Entries), res.More, err)
	}
	// StartAfter before the prefix starts at the prefix.
	res, err = b.List(ctxOf(t), kv.ListRequest{Prefix: "a/", StartAfter: "0"})
	if err != nil || !equalStrings(keysOf(res.Entries), []string{"a/b", "a/b/c"}) {
		t.Fatalf("start-after below prefix: %q %v", keysOf(res.Entries), err)
	}
	_, err = b.List(ctxOf(t), kv.ListRequest{Limit: -1})
	wantErr(t, "negative limit", err, kv.ErrInvalidArgument)
}

func (s *suite) testListLimits(t *testing.T) {
	b := s.open(t)
	const n = kv.MaxListLimit + 1
	ops := make([]kv.Op, 0, kv.MaxBatchOps)
	for i := range n {
		ops = append(ops, kv.PutOp(fmt.Sprintf("k/%06d", i), []byte("v"), 0, kv.Condition{}))
		if len(ops) == kv.MaxBatchOps || i == n-1 {
			if _, err := b.Batch(ctxOf(t), ops); err != nil {
				t.Fatal(err)
			}
			ops = ops[:0]
		}
	}
	res, err := b.List(ctxOf(t), kv.ListRequest{Prefix: "k/", KeysOnly: true})
	if err != nil || len(res.Entries) != kv.DefaultListLimit || !res.More {
		t.Fatalf("default limit: %d entries more=%v %v, want %d and more", len(res.Entries), res.More, err, kv.DefaultListLimit)
	}
	res, err = b.List(ctxOf(t), kv.ListRequest{Prefix: "k/", KeysOnly: true, Limit: 1 << 20})
	if err != nil || len(res.Entries) != kv.MaxListLimit || !res.More {
		t.Fatalf("limit above max: %d entries more=%v %v, want %d and more", len(res.Entries), res.More, err, kv.MaxListLimit)
	}
	if last := res.Entries[len(res.Entries)-1].Key; last != fmt.Sprintf("k/%06d", kv.MaxListLimit-1) {
		t.Fatalf("last key of the max page: %q", last)
	}
}

func (s *suite) testLiteralPrefixes(t *testing.T) {
	b := s.open(t)
	keys := []string{`a%b`, `a_b`, `axb`, `a*b`, `a?b`, `a[b`, `a\b`, `a.b`, `ab`, `a]`, `a^`}
	for _, k := range keys {
		put(t, b, k, "v", 0)
	}
	for _, p := range []string{`a%`, `a_`, `a*`, `a?`, `a[`, `a\`, `a.`, `a]`, `a^`} {
		got := listAll(t, b, p)
		var want []string
		for _, k := range keys {
			if strings.HasPrefix(k, p) {
				want = append(want, k)
			}
		}
		if !equalStrings(got, want) {
			t.Fatalf("list %q: %q, want only literal matches %q", p, got, want)
		}
		if n, err := b.Count(ctxOf(t), p); err != nil || n.Count != int64(len(want)) {
			t.Fatalf("count %q: %d %v, want %d", p, n, err, len(want))
		}
	}
	if n, err := b.DeletePrefix(ctxOf(t), `a_`); err != nil || n.Deleted != 1 {
		t.Fatalf("delete-prefix a_: %d %v, want 1", n, err)
	}
	if n, err := b.DeletePrefix(ctxOf(t), `a%`); err != nil || n.Deleted != 1 {
		t.Fatalf("delete-prefix a%%: %d %v, want 1", n, err)
	}
	if n, err := b.Count(ctxOf(t), "a"); err != nil || n.Count != int64(len(keys)-2) {
		t.Fatalf("count after literal deletes: %d %v, want %d", n, err, len(keys)-2)
	}
	get(t, b, "axb")
}

func (s *suite) testCountDeletePrefix(t *testing.T) {
	b := s.open(t)
	for i := range 5 {
		put(t, b, fmt.Sprint("actor/", i), "x", 0)
	}
	put(t, b, "actors", "x", 0)
	put(t, b, "node/1", "x", 0)
	ctx := ctxOf(t)
	if n, err := b.Count(ctx, "actor/"); err != nil || n.Count != 5 {
		t.Fatalf("count actor/: %d %v", n, err)
	}
	if n, err := b.Count(ctx, ""); err != nil || n.Count != 7 {
		t.Fatalf("count all: %d %v", n, err)
	}
	if n, err := b.Count(ctx, "zzz"); err != nil || n.Count != 0 {
		t.Fatalf("count none: %d %v", n, err)
	}
	_, err := b.DeletePrefix(ctx, "")
	wantErr(t, "delete-prefix with an empty prefix", err, kv.ErrInvalidArgument)
	if n, err := b.Count(ctx, ""); err != nil || n.Count != 7 {
		t.Fatalf("refused delete-prefix deleted something: count %d %v", n, err)
	}
	if n, err := b.DeletePrefix(ctx, "actor/"); err != nil || n.Deleted != 5 {
		t.Fatalf("delete-prefix actor/: %d %v", n, err)
	}
	if got := listAll(t, b, ""); !equalStrings(got, []string{"actors", "node/1"}) {
		t.Fatalf("after delete-prefix: %q", got)
	}
}

func (s *suite) testIncrement(t *testing.T) {
	b := s.open(t)
	ctx := ctxOf(t)
	c, err := b.Increment(ctx, "n", 5)
	if err != nil || c.Value != 5 {
		t.Fatalf("increment a missing key: %+v %v, want 5", c, err)
	}
	if c, err = b.Increment(ctx, "n", -7); err != nil || c.Value != -2 {
		t.Fatalf("increment by -7: %+v %v, want -2", c, err)
	}
	if e := get(t, b, "n"); string(e.Value) != "-2" || e.Version != c.Version {
		t.Fatalf("stored counter %q version %d, want \"-2\" version %d", e.Value, e.Version, c.Version)
	}
	put(t, b, "text", "3", 0)
	if c, err = b.Increment(ctx, "text", 1); err != nil || c.Value != 4 {
		t.Fatalf("increment a put counter: %+v %v", c, err)
	}
	for _, bad := range []string{"abc", "1.5", "", " 1", "99999999999999999999"} {
		e := put(t, b, "bad", bad, 0)
		_, err := b.Increment(ctx, "bad", 1)
		wantErr(t, fmt.Sprintf("increment of %q", bad), err, kv.ErrInvalidArgument)
		if g := get(t, b, "bad"); string(g.Value) != bad || g.Version != e.Version {
			t.Fatalf("failed increment changed the key: %+v", g)
		}
	}
	put(t, b, "max", "9223372036854775806", 0)
	if c, err = b.Increment(ctx, "max", 1); err != nil || c.Value != 1<<63-1 {
		t.Fatalf("increment to max int64: %+v %v", c, err)
	}
	_, err = b.Increment(ctx, "max", 1)
	wantErr(t, "increment past max int64", err, kv.ErrInvalidArgument)
	put(t, b, "min", "-9223372036854775808", 0)
	_, err = b.Increment(ctx, "min", -1)
	wantErr(t, "increment past min int64", err, kv.ErrInvalidArgument)
	if g := get(t, b, "max"); string(g.Value) != "9223372036854775807" {
		t.Fatalf("overflow changed the counter to %q", g.Value)
	}
	// A live key keeps its TTL.
	e := put(t, b, "ttl", "1", time.Hour)
	if c, err = b.Increment(ctx, "ttl", 1); err != nil || !c.ExpiresAt.Equal(e.ExpiresAt) {
		t.Fatalf("increment of a key with ttl: %+v %v, want expiry %v kept", c, err, e.ExpiresAt)
	}
	if g := get(t, b, "ttl"); !g.ExpiresAt.Equal(e.ExpiresAt) {
		t.Fatalf("increment lost the ttl: %v", g.ExpiresAt)
	}
}

func (s *suite) testRefreshTTL(t *testing.T) {
	b := s.open(t)
	ctx := ctxOf(t)
	_, err := b.RefreshTTL(ctx, kv.RefreshRequest{Key: "missing", TTL: time.Second})
	wantErr(t, "refresh ttl of a missing key", err, kv.ErrNotFound)
	e := put(t, b, "hb", "alive", shortTTL)
	rr, err := b.RefreshTTL(ctx, kv.RefreshRequest{Key: "hb", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	r := rr.Entry
	if r.Version != e.Version || !r.ExpiresAt.After(e.ExpiresAt) {
		t.Fatalf("refresh: %+v, want version %d and a later expiry than %v", r, e.Version, e.ExpiresAt)
	}
	expire(shortTTL)
	if g := get(t, b, "hb"); string(g.Value) != "alive" || g.Version != e.Version || !g.ExpiresAt.Equal(r.ExpiresAt) {
		t.Fatalf("after refresh: %+v", g)
	}
	_, err = b.RefreshTTL(ctx, kv.RefreshRequest{Key: "hb", TTL: time.Hour, Cond: kv.IfVersion(e.Version + 1)})
	wantConflict(t, "refresh with a wrong version", err, e.Version, -1)
	if rr, err = b.RefreshTTL(ctx, kv.RefreshRequest{Key: "hb", TTL: 0, Cond: kv.IfVersion(e.Version)}); err != nil || !rr.Entry.ExpiresAt.IsZero() {
		t.Fatalf("refresh to ttl 0: %+v %v, want no expiry", r, err)
	}
	if g := get(t, b, "hb"); !g.ExpiresAt.IsZero() {
		t.Fatalf("ttl 0 did not remove the expiry: %v", g.ExpiresAt)
	}
}

func (s *suite) testBatch(t *testing.T) {
	b := s.open(t)
	ctx := ctxOf(t)
	old := put(t, b, "old", "x", 0)
	res, err := b.Batch(ctx, []kv.Op{
		kv.PutOp("a", []byte("1"), 0, kv.IfAbsent()),
		kv.PutOp("a", []byte("2"), time.Hour, kv.Condition{}),
		kv.DeleteOp("old", kv.IfVersion(old.Version)),
		kv.DeleteOp("never", kv.Condition{}),
		kv.PutOp("b", nil, 0, kv.Condition{}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if res := res.Results; len(res) != 5 || res[1].Version <= res[0].Version || !res[2].Deleted || res[3].Deleted || res[1].ExpiresAt.IsZero() {
		t.Fatalf("batch results: %+v", res)
	}
	if g := get(t, b, "a"); string(g.Value) != "2" || g.Version != res.Results[1].Version {
		t.Fatalf("a after batch: %+v", g)
	}
	wantNotFound(t, b, "old")
	if g := get(t, b, "b"); len(g.Value) != 0 {
		t.Fatalf("b after batch: %+v", g)
	}
	// Ops apply in order: a later condition sees an earlier op.
	res, err = b.Batch(ctx, []kv.Op{
		kv.DeleteOp("a", kv.Condition{}),
		kv.PutOp("a", []byte("3"), 0, kv.IfAbsent()),
	})
	if err != nil {
		t.Fatalf("delete then if-absent put in one batch: %v", err)
	}
	if g := get(t, b, "a"); string(g.Value) != "3" || g.Version != res.Results[1].Version {
		t.Fatalf("a after the second batch: %+v", g)
	}
	if res, err := b.Batch(ctx, nil); err != nil || len(res.Results) != 0 {
		t.Fatalf("empty batch: %v %v", res, err)
	}
}

func (s *suite) testBatchAtomic(t *testing.T) {
	b := s.open(t)
	ctx := ctxOf(t)
	a := put(t, b, "a", "1", 0)
	c := put(t, b, "c", "1", 0)
	_, err := b.Batch(ctx, []kv.Op{
		kv.PutOp("a", []byte("2"), 0, kv.Condition{}),
		kv.PutOp("b", []byte("2"), 0, kv.Condition{}),
		kv.DeleteOp("c", kv.Condition{}),
		kv.PutOp("a", []byte("3"), 0, kv.IfVersion(a.Version)), // a is at a newer version by now
		kv.PutOp("d", []byte("2"), 0, kv.Condition{}),
	})
	var ce *kv.ConflictError
	if !errors.As(err, &ce) || ce.OpIndex != 3 || ce.Key != "a" {
		t.Fatalf("batch with a failing op 3: %v, want a *ConflictError naming op 3 and key a", err)
	}
	check := func(what string) {
		t.Helper()
		if g := get(t, b, "a"); string(g.Value) != "1" || g.Version != a.Version {
			t.Fatalf("%s: a is %+v: half a batch was applied", what, g)
		}
		if g := get(t, b, "c"); g.Version != c.Version {
			t.Fatalf("%s: c is %+v: half a batch was applied", what, g)
		}
		wantNotFound(t, b, "b")
		wantNotFound(t, b, "d")
	}
	check("failed condition")
	_, err = b.Batch(ctx, []kv.Op{
		kv.PutOp("b", []byte("2"), 0, kv.Condition{}),
		kv.PutOp("", []byte("2"), 0, kv.Condition{}),
	})
	wantErr(t, "batch with an invalid key", err, kv.ErrInvalidArgument)
	check("invalid op")
	ops := make([]kv.Op, kv.MaxBatchOps+1)
	for i := range ops {
		ops[i] = kv.PutOp(fmt.Sprint("b", i), nil, 0, kv.Condition{})
	}
	_, err = b.Batch(ctx, ops)
	wantErr(t, "batch over the limit", err, kv.ErrInvalidArgument)
	check("oversized batch")
	if _, err := b.Batch(ctx, ops[:kv.MaxBatchOps]); err != nil {
		t.Fatalf("batch at the limit: %v", err)
	}
}

func watcher(t *testing.T, b kv.Backend) (kv.Watcher, bool) {
	info, err := b.Info(ctxOf(t))
	if err != nil {
		t.Fatal(err)
	}
	w, ok := b.(kv.Watcher)
	return w, ok && info.Capabilities.Watch
}

func recv(t *testing.T, ws kv.WatchStream) kv.Event {
	t.Helper()
	type result struct {
		ev  kv.Event
		err error
	}
	ch := make(chan result, 1)
	go func() {
		ev, err := ws.Recv()
		ch <- result{ev, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("watch recv: %v", r.err)
		}
		return r.ev
	case <-time.After(10 * time.Second):
		t.Fatal("watch: no event within 10s")
	}
	panic("unreachable")
}

func wantEvent(t *testing.T, ev kv.Event, typ kv.EventType, key, value string, version int64) {
	t.Helper()
	if ev.Type != typ || ev.Key != key || string(ev.Value) != value || ev.Version != version {
		t.Fatalf("event %v %q %q v%d, want %v %q %q v%d", ev.Type, ev.Key, ev.Value, ev.Version, typ, key, value, version)
	}
}

func (s *suite) testWatch(t *testing.T) {
	b := s.open(t)
	w, ok := watcher(t, b)
	if !ok {
		t.Skip("backend does not claim watch (refusal is checked in Info)")
	}
	ctx := ctxOf(t)
	put(t, b, "cfg/before", "x", 0) // before the watch: never delivered
	ws, err := w.Watch(ctx, kv.WatchRequest{Prefix: "cfg/", ProgressInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	e1 := put(t, b, "cfg/a", "1", 0)
	put(t, b, "other/a", "x", 0) // outside the prefix
	e2 := put(t, b, "cfg/a", "2", time.Hour)
	c, err := b.Increment(ctx, "cfg/n", 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.RefreshTTL(ctx, kv.RefreshRequest{Key: "cfg/a", TTL: 2 * time.Hour}); err != nil {
		t.Fatal(err) // a refresh is not a change of value: no event
	}
	if _, err := b.Delete(ctx, "cfg/a", kv.Condition{}); err != nil {
		t.Fatal(err)
	}
	_, _ = b.Put(ctx, kv.PutRequest{Key: "cfg/n", Cond: kv.IfAbsent()}) // fails: no event
	res, err := b.Batch(ctx, []kv.Op{
		kv.PutOp("cfg/b", []byte("b"), 0, kv.Condition{}),
		kv.DeleteOp("cfg/n", kv.Condition{}),
	})
	if err != nil {
		t.Fatal(err)
	}
	put(t, b, "cfg/x/1", "p", 0)
	if _, err := b.DeletePrefix(ctx, "cfg/x/"); err != nil {
		t.Fatal(err)
	}
	wantEvent(t, recv(t, ws), kv.EventPut, "cfg/a", "1", e1.Version)
	wantEvent(t, recv(t, ws), kv.EventPut, "cfg/a", "2", e2.Version)
	wantEvent(t, recv(t, ws), kv.EventPut, "cfg/n", "3", c.Version)
	wantEvent(t, recv(t, ws), kv.EventDelete, "cfg/a", "", e2.Version)
	wantEvent(t, recv(t, ws), kv.EventPut, "cfg/b", "b", res.Results[0].Version)
	wantEvent(t, recv(t, ws), kv.EventDelete, "cfg/n", "", c.Version)
	ev := recv(t, ws)
	if ev.Type != kv.EventPut || ev.Key != "cfg/x/1" {
		t.Fatalf("event %+v, want PUT cfg/x/1", ev)
	}
	wantEvent(t, recv(t, ws), kv.EventDelete, "cfg/x/1", "", ev.Version)

	// A second watcher on everything sees the same later writes, and
	// cancelling a watch ends its stream.
	wctx, cancel := context.WithCancel(ctx)
	all, err := w.Watch(wctx, kv.WatchRequest{ProgressInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	e3 := put(t, b, "z", "z", 0)
	wantEvent(t, recv(t, all), kv.EventPut, "z", "z", e3.Version)
	cancel()
	done := make(chan error, 1)
	go func() {
		for {
			if _, err := all.Recv(); err != nil {
				done <- err
				return
			}
		}
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) && !errors.Is(err, kv.ErrClosed) {
			t.Fatalf("cancelled watch ended with %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancelled watch did not end")
	}
	_, err = w.Watch(ctx, kv.WatchRequest{Prefix: "a\x00"})
	wantErr(t, "watch with an invalid prefix", err, kv.ErrInvalidArgument)
}

func (s *suite) testWatchOverflow(t *testing.T) {
	b := s.open(t)
	w, ok := watcher(t, b)
	if !ok {
		t.Skip("backend does not claim watch")
	}
	ctx := ctxOf(t)
	ws, err := w.Watch(ctx, kv.WatchRequest{ProgressInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	// Nobody reads while writers go on: writers must not block, and the
	// watcher must end with ErrWatchOverflow rather than skip events. The
	// events must outgrow every buffer on the way, the backend's and a
	// wire's flow-control windows alike: 60 MB of them.
	const batches, per = 60, 1000
	value := bytes.Repeat([]byte("v"), 1000)
	var versions []int64
	done := make(chan error, 1)
	go func() {
		for range batches {
			ops := make([]kv.Op, per)
			for j := range ops {
				ops[j] = kv.PutOp(fmt.Sprintf("k/%04d", j), value, 0, kv.Condition{})
			}
			res, err := b.Batch(ctx, ops)
			if err != nil {
				done <- err
				return
			}
			for _, r := range res.Results {
				versions = append(versions, r.Version)
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(120 * time.Second):
		t.Fatal("writers blocked behind a watcher that does not read")
	}
	type result struct {
		n   int
		err error
	}
	drained := make(chan result, 1)
	go func() {
		n := 0
		for {
			ev, err := ws.Recv()
			if err != nil {
				drained <- result{n, err}
				return
			}
			if n >= len(versions) || ev.Version != versions[n] {
				drained <- result{n, fmt.Errorf("event %d has version %d, want %d: events were skipped or reordered", n, ev.Version, versions[min(n, len(versions)-1)])}
				return
			}
			n++
		}
	}()
	select {
	case r := <-drained:
		wantErr(t, fmt.Sprintf("watch after %d of %d events", r.n, len(versions)), r.err, kv.ErrWatchOverflow)
		if r.n == len(versions) {
			t.Fatalf("the watcher got all %d events and then overflowed: it should have buffered less", r.n)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("a watcher that fell %d events behind neither overflowed nor caught up", len(versions))
	}
}

func (s *suite) testCleanupExpired(t *testing.T) {
	b := s.open(t)
	info, err := b.Info(ctxOf(t))
	if err != nil {
		t.Fatal(err)
	}
	x, ok := b.(kv.Expirer)
	if !ok || !info.Capabilities.CleanupExpired {
		t.Skip("backend does not claim cleanup-expired")
	}
	ctx := ctxOf(t)
	var ws kv.WatchStream
	if w, ok := watcher(t, b); ok {
		if ws, err = w.Watch(ctx, kv.WatchRequest{Prefix: "s/", ProgressInterval: -1}); err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
	}
	expiring := map[string]int64{}
	for i := range 10 {
		k := fmt.Sprintf("s/%d", i)
		expiring[k] = put(t, b, k, "x", shortTTL).Version
	}
	keep := put(t, b, "s/keep", "x", time.Hour)
	expire(shortTTL)
	n1, err := x.CleanupExpired(ctx, 4)
	if err != nil || n1 != 4 {
		t.Fatalf("cleanup with limit 4: %d %v", n1, err)
	}
	n2, err := x.CleanupExpired(ctx, 0)
	if err != nil || n2 != 6 {
		t.Fatalf("cleanup of the rest: %d %v, want 6", n2, err)
	}
	if n, err := x.CleanupExpired(ctx, 0); err != nil || n != 0 {
		t.Fatalf("cleanup with nothing expired: %d %v", n, err)
	}
	get(t, b, "s/keep")
	if ws == nil {
		return
	}
	for i := range 11 {
		ev := recv(t, ws)
		if ev.Type != kv.EventPut || (i == 10 && (ev.Key != "s/keep" || ev.Version != keep.Version)) {
			t.Fatalf("event %d: %+v, want the 11 puts first", i, ev)
		}
	}
	for range 10 {
		ev := recv(t, ws)
		v, ok := expiring[ev.Key]
		if ev.Type != kv.EventExpire || !ok || ev.Version != v {
			t.Fatalf("event %+v, want EXPIRE of an expired key at its last version", ev)
		}
		delete(expiring, ev.Key)
	}
}

func (s *suite) testStats(t *testing.T) {
	b := s.open(t)
	st, err := b.Stats(ctxOf(t))
	if err != nil || st.Keys != 0 || st.Bytes != 0 || st.Backend == "" {
		t.Fatalf("stats of an empty backend: %+v %v", st, err)
	}
	put(t, b, "ab", "cde", 0)
	put(t, b, "f", "", 0)
	put(t, b, "gone", "xxxxxxxx", shortTTL)
	put(t, b, "deleted", "x", 0)
	if _, err := b.Delete(ctxOf(t), "deleted", kv.Condition{}); err != nil {
		t.Fatal(err)
	}
	expire(shortTTL)
	st, err = b.Stats(ctxOf(t))
	if err != nil || st.Keys != 2 || st.Bytes != 2+3+1 {
		t.Fatalf("stats: %+v %v, want 2 keys and 6 bytes", st, err)
	}
}

func (s *suite) testConcurrentIncrement(t *testing.T) {
	b := s.open(t)
	const workers, each = 16, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for range each {
				if _, err := b.Increment(ctxOf(t), "counter", 1); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if e := get(t, b, "counter"); string(e.Value) != fmt.Sprint(workers*each) {
		t.Fatalf("counter %q after %d increments: updates were lost", e.Value, workers*each)
	}
}

func (s *suite) testConcurrentPutIfAbsent(t *testing.T) {
	b := s.open(t)
	const workers = 16
	var wg sync.WaitGroup
	var mu sync.Mutex
	winners, conflicts := 0, 0
	var other []error
	for i := range workers {
		wg.Go(func() {
			_, err := b.Put(ctxOf(t), kv.PutRequest{Key: "leader", Value: []byte(fmt.Sprint(i)), Cond: kv.IfAbsent()})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				winners++
			case errors.Is(err, kv.ErrConflict):
				conflicts++
			default:
				other = append(other, err)
			}
		})
	}
	wg.Wait()
	if len(other) > 0 {
		t.Fatal(other[0])
	}
	if winners != 1 || conflicts != workers-1 {
		t.Fatalf("put-if-absent race: %d winners and %d conflicts, want 1 and %d", winners, conflicts, workers-1)
	}
}
