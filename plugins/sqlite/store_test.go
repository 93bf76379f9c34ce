package sqlite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvhost/kvhost/kv"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newClock() *clock { return &clock{t: time.UnixMilli(1_700_000_000_000)} }

// openStore opens a store on a fresh file in t.TempDir and closes it when
// the test ends.
func openStore(t testing.TB, cfg Config) *Store {
	t.Helper()
	if cfg.Path == "" {
		cfg.Path = filepath.Join(t.TempDir(), "kv.db")
	}
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// revision is the store revision, from Stats.
func revision(t testing.TB, s *Store) int64 {
	t.Helper()
	st, err := s.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st.Revision
}

func mustPut(t testing.TB, s kv.Backend, key, value string, ttl time.Duration) kv.Entry {
	t.Helper()
	e, err := s.Put(context.Background(), kv.PutRequest{Key: key, Value: []byte(value), TTL: ttl})
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return e
}

func TestBasicSemantics(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	s := openStore(t, Config{now: clk.now})

	e1 := mustPut(t, s, "a/1", "one", 0)
	if e1.Version <= 0 || e1.Value != nil || e1.Key != "a/1" {
		t.Fatalf("put entry = %+v", e1)
	}
	got, err := s.Get(ctx, "a/1")
	if err != nil || !got.Found || string(got.Entry.Value) != "one" || got.Entry.Version != e1.Version ||
		!got.Entry.ExpiresAt.IsZero() || got.Revision != e1.Version {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	if g, err := s.Get(ctx, "nope"); err != nil || g.Found || g.Revision != e1.Version {
		t.Fatalf("Get missing = %+v, %v; want not found at revision %d", g, err, e1.Version)
	}

	// if-absent on a live key conflicts and reports its version.
	_, err = s.Put(ctx, kv.PutRequest{Key: "a/1", Value: []byte("x"), Cond: kv.IfAbsent()})
	var ce *kv.ConflictError
	if !errors.As(err, &ce) || ce.CurrentVersion != e1.Version || ce.OpIndex != -1 {
		t.Fatalf("if-absent on live key: %v", err)
	}
	// compare-and-set.
	if _, err := s.Put(ctx, kv.PutRequest{Key: "a/1", Value: []byte("y"), Cond: kv.IfVersion(e1.Version + 100)}); !errors.Is(err, kv.ErrConflict) {
		t.Fatalf("if-version wrong: %v", err)
	}
	e2, err := s.Put(ctx, kv.PutRequest{Key: "a/1", Value: []byte("two"), Cond: kv.IfVersion(e1.Version)})
	if err != nil || e2.Version <= e1.Version {
		t.Fatalf("if-version right: %+v %v", e2, err)
	}
	if _, err := s.Put(ctx, kv.PutRequest{Key: "zz", Value: []byte("y"), Cond: kv.IfVersion(3)}); !errors.As(err, &ce) || ce.CurrentVersion != 0 {
		t.Fatalf("if-version on missing: %v", err)
	}

	// TTL: invisible at its instant, if-absent treats it as absent.
	e3 := mustPut(t, s, "ttl", "v", 1500*time.Millisecond)
	if want := clk.now().Add(1500 * time.Millisecond); !e3.ExpiresAt.Equal(want) {
		t.Fatalf("expiry %v, want %v", e3.ExpiresAt, want)
	}
	clk.advance(1500 * time.Millisecond)
	if g, err := s.Get(ctx, "ttl"); err != nil || g.Found {
		t.Fatalf("expired key visible: %+v %v", g, err)
	}
	if n, _ := s.Count(ctx, ""); n.Count != 1 {
		t.Fatalf("count with expired = %d", n.Count)
	}
	if _, err := s.Put(ctx, kv.PutRequest{Key: "ttl", Value: []byte("w"), Cond: kv.IfAbsent()}); err != nil {
		t.Fatalf("if-absent on expired: %v", err)
	}
	// Put without TTL clears it.
	mustPut(t, s, "ttl2", "v", time.Second)
	mustPut(t, s, "ttl2", "v", 0)
	if g, _ := s.Get(ctx, "ttl2"); !g.Entry.ExpiresAt.IsZero() {
		t.Fatalf("put without ttl kept expiry %v", g.Entry.ExpiresAt)
	}

	// Delete: a removal takes a revision, nothing else does.
	before := revision(t, s)
	if r, err := s.Delete(ctx, "a/1", kv.IfVersion(e1.Version)); !errors.Is(err, kv.ErrConflict) || r.Deleted {
		t.Fatalf("delete stale version: %+v %v", r, err)
	}
	if r, err := s.Delete(ctx, "a/1", kv.IfVersion(e2.Version)); err != nil || !r.Deleted || r.Revision != before+1 {
		t.Fatalf("delete = %+v %v, want deleted at revision %d", r, err, before+1)
	}
	if r, err := s.Delete(ctx, "a/1", kv.Condition{}); err != nil || r.Deleted || r.Revision != before+1 {
		t.Fatalf("delete missing = %+v %v, want nothing at revision %d", r, err, before+1)
	}
	// Versions never go back after delete and recreate.
	if e := mustPut(t, s, "a/1", "again", 0); e.Version != before+2 {
		t.Fatalf("recreated version %d, want %d", e.Version, before+2)
	}
}

func TestIncrementAndRefresh(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	s := openStore(t, Config{now: clk.now})
	c, err := s.Increment(ctx, "n", 5)
	if err != nil || c.Value != 5 || !c.ExpiresAt.IsZero() {
		t.Fatalf("increment missing: %+v %v", c, err)
	}
	r, err := s.RefreshTTL(ctx, kv.RefreshRequest{Key: "n", TTL: time.Minute})
	if err != nil || r.Entry.Version != c.Version || r.Revision != c.Version+1 {
		t.Fatalf("refresh = %+v %v: want version %d kept, revision %d taken", r, err, c.Version, c.Version+1)
	}
	c2, err := s.Increment(ctx, "n", -7)
	if err != nil || c2.Value != -2 || c2.Version != r.Revision+1 || c2.ExpiresAt.IsZero() {
		t.Fatalf("increment keeps ttl: %+v %v", c2, err)
	}
	clk.advance(time.Minute)
	if c3, err := s.Increment(ctx, "n", 1); err != nil || c3.Value != 1 || !c3.ExpiresAt.IsZero() {
		t.Fatalf("increment expired: %+v %v", c3, err)
	}
	mustPut(t, s, "s", "abc", 0)
	if _, err := s.Increment(ctx, "s", 1); !errors.Is(err, kv.ErrInvalidArgument) {
		t.Fatalf("increment non-counter: %v", err)
	}
	mustPut(t, s, "big", "9223372036854775807", 0)
	if _, err := s.Increment(ctx, "big", 1); !errors.Is(err, kv.ErrInvalidArgument) {
		t.Fatalf("increment overflow: %v", err)
	}
	if _, err := s.RefreshTTL(ctx, kv.RefreshRequest{Key: "missing", TTL: time.Minute}); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("refresh missing: %v", err)
	}
	e := mustPut(t, s, "r", "v", time.Second)
	r, err = s.RefreshTTL(ctx, kv.RefreshRequest{Key: "r", TTL: 0, Cond: kv.IfVersion(e.Version)})
	if err != nil || r.Entry.Version != e.Version || !r.Entry.ExpiresAt.IsZero() || r.Revision != e.Version+1 {
		t.Fatalf("refresh: %+v %v", r, err)
	}
	if _, err := s.RefreshTTL(ctx, kv.RefreshRequest{Key: "r", TTL: time.Second, Cond: kv.IfVersion(e.Version + 1)}); !errors.Is(err, kv.ErrConflict) {
		t.Fatalf("refresh wrong version: %v", err)
	}
	if rev := revision(t, s); rev != r.Revision {
		t.Fatalf("failed refresh moved the revision from %d to %d", r.Revision, rev)
	}
}

func TestListPaginationAndPrefixes(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, Config{})
	keys := []string{"a", "a/", "a/1", "a/2", "a/3", "a0", "b", "é", "é/x", "\u007f", "\u0080"}
	for _, k := range keys {
		mustPut(t, s, k, "v:"+k, 0)
	}
	var got []string
	after := ""
	for {
		res, err := s.List(ctx, kv.ListRequest{Prefix: "a/", StartAfter: after, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range res.Entries {
			got = append(got, e.Key)
			if string(e.Value) != "v:"+e.Key {
				t.Fatalf("value of %q = %q", e.Key, e.Value)
			}
		}
		if !res.More {
			break
		}
		after = res.Entries[len(res.Entries)-1].Key
	}
	if fmt.Sprint(got) != "[a/ a/1 a/2 a/3]" {
		t.Fatalf("paged list = %v", got)
	}
	all, err := s.List(ctx, kv.ListRequest{KeysOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var allKeys []string
	for _, e := range all.Entries {
		if e.Value != nil {
			t.Fatalf("keys-only list returned a value for %q", e.Key)
		}
		allKeys = append(allKeys, e.Key)
	}
	if fmt.Sprint(allKeys) != "[a a/ a/1 a/2 a/3 a0 b \u007f \u0080 é é/x]" || all.More {
		t.Fatalf("byte order: %q more=%v", allKeys, all.More)
	}
	if n, _ := s.Count(ctx, "é"); n.Count != 2 || n.Revision != all.Revision {
		t.Fatalf("count é = %+v", n)
	}
	if n, _ := s.Count(ctx, "\u007f"); n.Count != 1 {
		t.Fatalf("count DEL = %+v", n)
	}
	res, _ := s.List(ctx, kv.ListRequest{Prefix: "a/", StartAfter: "zzz"})
	if len(res.Entries) != 0 || res.More || res.Revision != int64(len(keys)) {
		t.Fatalf("start-after past prefix: %+v", res)
	}
	if _, err := s.DeletePrefix(ctx, ""); !errors.Is(err, kv.ErrInvalidArgument) {
		t.Fatalf("delete empty prefix: %v", err)
	}
	if n, err := s.DeletePrefix(ctx, "a/"); err != nil || n.Deleted != 4 || n.Revision != int64(len(keys)+4) {
		t.Fatalf("delete-prefix = %+v, %v", n, err)
	}
	st, err := s.Stats(ctx)
	if err != nil || st.Keys != int64(len(keys)-4) || st.Backend != Name || st.Revision != int64(len(keys)+4) || st.OldestRevision != 1 {
		t.Fatalf("stats = %+v %v", st, err)
	}
	var want int64
	for _, k := range []string{"a", "a0", "b", "é", "é/x", "\u007f", "\u0080"} {
		want += int64(2*len(k) + 2)
	}
	if st.Bytes != want {
		t.Fatalf("stats bytes %d, want %d (bytes, not characters)", st.Bytes, want)
	}
}

func TestGetMany(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, Config{})
	mustPut(t, s, "x", "1", 0)
	mustPut(t, s, "y", "", 0)
	res, err := s.GetMany(ctx, []string{"y", "missing", "x", "x"})
	got := res.Entries
	if err != nil || len(got) != 4 || res.Revision != 2 {
		t.Fatalf("GetMany: %+v %v", res, err)
	}
	if got[0] == nil || got[0].Value == nil || len(got[0].Value) != 0 || got[1] != nil || got[2] == nil || string(got[3].Value) != "1" || got[2] == got[3] {
		t.Fatalf("GetMany = %+v", got)
	}
	if none, err := s.GetMany(ctx, nil); err != nil || len(none.Entries) != 0 || none.Revision != 2 {
		t.Fatalf("GetMany of nothing: %+v %v", none, err)
	}
}

func TestBatchAtomic(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, Config{})
	e := mustPut(t, s, "k", "v", 0)
	w, err := s.Watch(ctx, kv.WatchRequest{ProgressInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	_, err = s.Batch(ctx, []kv.Op{
		kv.PutOp("n1", []byte("a"), 0, kv.Condition{}),
		kv.DeleteOp("k", kv.Condition{}),
		kv.PutOp("k", []byte("b"), 0, kv.IfVersion(e.Version)), // k is gone now
	})
	var ce *kv.ConflictError
	if !errors.As(err, &ce) || ce.OpIndex != 2 || ce.Key != "k" || ce.CurrentVersion != 0 {
		t.Fatalf("batch conflict: %v", err)
	}
	if g, err := s.Get(ctx, "n1"); err != nil || g.Found || g.Revision != e.Version {
		t.Fatalf("half a batch applied: %+v %v", g, err)
	}
	res, err := s.Batch(ctx, []kv.Op{
		kv.PutOp("n1", []byte("a"), time.Hour, kv.IfAbsent()),
		kv.PutOp("n1", []byte("b"), 0, kv.Condition{}),
		kv.DeleteOp("gone", kv.Condition{}),
		kv.DeleteOp("k", kv.IfVersion(e.Version)),
	})
	r := res.Results
	if err != nil || len(r) != 4 || r[0].ExpiresAt.IsZero() || r[0].Revision != e.Version+1 || r[1].Version != e.Version+2 ||
		r[2].Deleted || r[2].Revision != 0 || !r[3].Deleted || r[3].Revision != e.Version+3 || res.Revision != e.Version+3 {
		t.Fatalf("batch: %+v %v", res, err)
	}
	want := []string{"PUT n1 a 2", "PUT n1 b 3", "DELETE k  4"}
	for i, w2 := range want {
		ev, err := w.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprintf("%s %s %s %d", ev.Type, ev.Key, ev.Value, ev.Revision); got != w2 {
			t.Fatalf("event %d = %q, want %q", i, got, w2)
		}
	}
	if empty, err := s.Batch(ctx, nil); err != nil || len(empty.Results) != 0 || empty.Revision != e.Version+3 {
		t.Fatalf("empty batch: %+v %v", empty, err)
	}
}

func TestWatchAndCleanup(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	s := openStore(t, Config{now: clk.now})
	w, err := s.Watch(ctx, kv.WatchRequest{Prefix: "p/", ProgressInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := range 2500 {
		mustPut(t, s, fmt.Sprintf("p/%04d", i), "v", time.Second)
	}
	mustPut(t, s, "q", "v", time.Second)
	e := mustPut(t, s, "p/keep", "v", 0)
	if _, err := s.RefreshTTL(ctx, kv.RefreshRequest{Key: "p/keep", TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	versions := map[string]int64{}
	for range 2501 {
		ev, err := w.Recv()
		if err != nil {
			t.Fatal(err)
		}
		versions[ev.Key] = ev.Version
	}
	if versions["p/keep"] != e.Version {
		t.Fatal("missed p/keep")
	}
	clk.advance(time.Second)
	before := revision(t, s)
	if n, err := s.CleanupExpired(ctx, 0); err != nil || n != 1000 {
		t.Fatalf("cleanup default = %d, %v", n, err)
	}
	if n, err := s.CleanupExpired(ctx, 5000); err != nil || n != 1501 {
		t.Fatalf("cleanup rest = %d, %v", n, err)
	}
	if after := revision(t, s); after != before+2501 {
		t.Fatalf("cleanup of 2501 keys took revisions %d to %d", before, after)
	}
	prev := kv.Event{Revision: before}
	for i := range 2500 {
		ev, err := w.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if ev.Type != kv.EventExpire || ev.Version != versions[ev.Key] || ev.Value != nil {
			t.Fatalf("event %+v", ev)
		}
		// Key order within one cleanup transaction (of up to 1000 keys),
		// revisions in order throughout.
		if ev.Revision <= prev.Revision || (i%DefaultCleanupBatch != 0 && ev.Key <= prev.Key) {
			t.Fatalf("event %d %+v after %+v", i, ev, prev)
		}
		prev = ev
		delete(versions, ev.Key)
	}
	if len(versions) != 1 { // p/keep is left
		t.Fatalf("no EXPIRE for %v", versions)
	}
	if n, _ := s.Count(ctx, ""); n.Count != 1 {
		t.Fatalf("count after cleanup = %+v", n)
	}
	s.Close()
	if _, err := w.Recv(); !errors.Is(err, kv.ErrClosed) {
		t.Fatalf("watch after close: %v", err)
	}
	if _, err := s.Get(ctx, "p/keep"); !errors.Is(err, kv.ErrClosed) {
		t.Fatalf("get after close: %v", err)
	}
}

func TestLargeValue(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, Config{})
	big := bytes.Repeat([]byte{0, 1, 2, 0xff}, kv.MinValueSize/4)
	if _, err := s.Put(ctx, kv.PutRequest{Key: "big", Value: big}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "big")
	if err != nil || !bytes.Equal(got.Entry.Value, big) {
		t.Fatalf("big value round trip: %v", err)
	}
}

// TestBatchRuns covers the multi-row path of a batch: a long run of
// unconditional puts where keys repeat, with a conditional op in the
// middle, must act exactly as the ops one by one.
func TestBatchRuns(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	s := openStore(t, Config{now: clk.now})
	mustPut(t, s, "k03", "old", time.Millisecond)
	clk.advance(time.Second) // k03 is expired: created anew by the batch
	w, err := s.Watch(ctx, kv.WatchRequest{ProgressInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var ops []kv.Op
	for i := range 150 {
		ttl := time.Duration(0)
		if i%3 == 0 {
			ttl = time.Hour
		}
		ops = append(ops, kv.PutOp(fmt.Sprintf("k%02d", i%20), []byte(fmt.Sprint(i)), ttl, kv.Condition{}))
		if i == 100 {
			ops = append(ops, kv.PutOp("new", nil, 0, kv.IfAbsent()))
		}
	}
	batch, err := s.Batch(ctx, ops)
	if err != nil {
		t.Fatal(err)
	}
	res := batch.Results
	last := map[string]int{}
	for i, op := range ops {
		if res[i].Revision != res[i].Version || (i > 0 && res[i].Version != res[i-1].Version+1) {
			t.Fatalf("op %d version %d after %d", i, res[i].Version, res[i-1].Version)
		}
		if (op.TTL > 0) != !res[i].ExpiresAt.IsZero() {
			t.Fatalf("op %d expiry %v for ttl %v", i, res[i].ExpiresAt, op.TTL)
		}
		last[op.Key] = i
		ev, err := w.Recv()
		if err != nil || ev.Key != op.Key || string(ev.Value) != string(op.Value) || ev.Version != res[i].Version ||
			ev.Revision != res[i].Revision || !ev.ExpiresAt.Equal(res[i].ExpiresAt) {
			t.Fatalf("event %d = %+v, %v", i, ev, err)
		}
	}
	for k, i := range last {
		g, err := s.Get(ctx, k)
		e := g.Entry
		if err != nil || string(e.Value) != string(ops[i].Value) || e.Version != res[i].Version || e.ExpiresAt != res[i].ExpiresAt {
			t.Fatalf("%s = %+v %v, want op %d", k, e, err, i)
		}
	}
}

// TestCloseWhileBusy closes the store under concurrent reads and writes:
// every call fails cleanly with ErrClosed or succeeds, none panics or
// reports an internal error.
func TestCloseWhileBusy(t *testing.T) {
	s := openStore(t, Config{})
	ctx := context.Background()
	mustPut(t, s, "k", "v", 0)
	var (
		wg    sync.WaitGroup
		calls atomic.Int64
	)
	errs := make(chan error, 1000)
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				var err error
				switch (g + i) % 4 {
				case 0:
					_, err = s.Get(ctx, "k")
				case 1:
					_, err = s.Put(ctx, kv.PutRequest{Key: fmt.Sprintf("k%d", i), Value: []byte("v")})
				case 2:
					_, err = s.List(ctx, kv.ListRequest{})
				case 3:
					_, err = s.Stats(ctx)
				}
				if err != nil {
					if !errors.Is(err, kv.ErrClosed) {
						errs <- err
					}
					return
				}
				calls.Add(1)
			}
		})
	}
	// Close once every kind of call is under way.
	waitFor(t, "100 calls", func() bool { return calls.Load() >= 100 })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("call racing with Close: %v", err)
	}
}

// waitFor polls cond until it holds, failing the test after a bound
// generous enough for a loaded machine.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestStatsBytesFollowWrites: stats reads sizes that the writes keep in
// the size column (schema 3) instead of measuring the rows; after every
// kind of write they must add up to what a list measures.
func TestStatsBytesFollowWrites(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, Config{})
	check := func(when string) {
		t.Helper()
		st, err := s.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var keys, size int64
		page, err := s.List(ctx, kv.ListRequest{Limit: kv.MaxListLimit})
		if err != nil || page.More {
			t.Fatalf("list: %v (more: %v)", err, page.More)
		}
		for _, e := range page.Entries {
			keys++
			size += int64(len(e.Key) + len(e.Value))
		}
		if st.Keys != keys || st.Bytes != size {
			t.Fatalf("%s: stats say %d keys of %d bytes; list sees %d keys of %d bytes", when, st.Keys, st.Bytes, keys, size)
		}
	}
	// 75 puts in a batch: one 64-row upsert, one of 8, three single rows.
	var ops []kv.Op
	for i := range 75 {
		ops = append(ops, kv.PutOp(fmt.Sprintf("k/%03d", i), bytes.Repeat([]byte("é"), i), 0, kv.Condition{}))
	}
	if _, err := s.Batch(ctx, ops); err != nil {
		t.Fatal(err)
	}
	check("batch insert")
	for i := range ops {
		ops[i] = kv.PutOp(fmt.Sprintf("k/%03d", i), []byte("x"), 0, kv.Condition{})
	}
	if _, err := s.Batch(ctx, ops); err != nil {
		t.Fatal(err)
	}
	check("batch overwrite")
	e, err := s.Put(ctx, kv.PutRequest{Key: "k/000", Value: []byte("longer value"), Cond: kv.Condition{}})
	if err != nil {
		t.Fatal(err)
	}
	check("put")
	if _, err := s.Put(ctx, kv.PutRequest{Key: "k/000", Value: []byte("v"), Cond: kv.IfVersion(e.Version)}); err != nil {
		t.Fatal(err)
	}
	check("put if version")
	if _, err := s.Put(ctx, kv.PutRequest{Key: "new", Value: []byte("value"), Cond: kv.IfAbsent()}); err != nil {
		t.Fatal(err)
	}
	check("put if absent")
	if _, err := s.Delete(ctx, "k/001", kv.Condition{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeletePrefix(ctx, "k/05"); err != nil {
		t.Fatal(err)
	}
	check("deletes")
}
