package redis

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kvhost/kvhost/kv"
)

func TestParseSettings(t *testing.T) {
	t.Setenv("KVHOST_TEST_REDIS_PASSWORD", "s3cret")
	tests := []struct {
		name     string
		settings map[string]string
		check    func(Config) bool
		bad      string // a part of the error, empty when the settings are good
	}{
		{"defaults", nil, func(c Config) bool {
			return c.withDefaults().Addr == DefaultAddr && c.withDefaults().KeyPrefix == DefaultKeyPrefix
		}, ""},
		{"password from the environment", map[string]string{"password_env": "KVHOST_TEST_REDIS_PASSWORD"}, func(c Config) bool { return c.Password == "s3cret" }, ""},
		{"password variable not set", map[string]string{"password_env": "KVHOST_TEST_NO_SUCH_VARIABLE"}, nil, "KVHOST_TEST_NO_SUCH_VARIABLE, which is not set"},
		{"password in the url", map[string]string{"url": "redis://u:pw@localhost:6379/0"}, nil, "url holds a password"},
		{"url", map[string]string{"url": "redis://localhost:6380/2"}, func(c Config) bool { return c.URL != "" }, ""},
		{"prefix without a hash tag", map[string]string{"key_prefix": "kvhost:"}, nil, "hash tag"},
		{"prefix with an empty hash tag", map[string]string{"key_prefix": "{}kvhost:"}, nil, "hash tag"},
		{"prefix with a hash tag", map[string]string{"key_prefix": "app:{sessions}:"}, func(c Config) bool { return c.KeyPrefix == "app:{sessions}:" }, ""},
		{"sentinel", map[string]string{"sentinel_master": "mymaster", "sentinel_addrs": "10.0.0.1:26379, 10.0.0.2:26379"},
			func(c Config) bool { return len(c.SentinelAddrs) == 2 && c.SentinelAddrs[1] == "10.0.0.2:26379" }, ""},
		{"history", map[string]string{"history": "500"}, func(c Config) bool { return c.History == 500 }, ""},
		{"bad history", map[string]string{"history": "0"}, nil, "history"},
		{"bad db", map[string]string{"db": "-1"}, nil, "db"},
		{"bad addr", map[string]string{"addr": "localhost"}, nil, "host:port"},
		{"bad timeout", map[string]string{"timeout_ms": "soon"}, nil, "timeout_ms"},
		{"ca file without tls", map[string]string{"tls_ca_file": "/nowhere"}, nil, "need tls=true"},
		{"unknown", map[string]string{"path": "x"}, nil, `unknown setting "path"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := ParseSettings(tt.settings)
			if tt.bad != "" {
				if !errors.Is(err, kv.ErrInvalidArgument) || !strings.Contains(err.Error(), tt.bad) {
					t.Fatalf("error %v, want one wrapping ErrInvalidArgument that says %q", err, tt.bad)
				}
				if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), ":pw@") {
					t.Fatalf("the error shows a password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(cfg) {
				t.Fatalf("config %+v", cfg)
			}
		})
	}
	// Settings that parse but contradict each other are refused by New.
	for _, cfg := range []Config{
		{Addr: "a:1", URL: "redis://b"},
		{SentinelMaster: "m"},
		{SentinelAddrs: []string{"a:1"}},
		{KeyPrefix: "nohashtag:"},
	} {
		if _, err := New(t.Context(), cfg); !errors.Is(err, kv.ErrInvalidArgument) {
			t.Errorf("New(%+v): %v, want ErrInvalidArgument", cfg, err)
		}
	}
}

// A server that does not answer is ErrUnavailable at Open, and the error
// says where it looked.
func TestOpenUnreachable(t *testing.T) {
	_, err := Open(t.Context(), map[string]string{"addr": "127.0.0.1:1", "dial_timeout_ms": "500"})
	if !errors.Is(err, kv.ErrUnavailable) || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("open of a port nobody listens on: %v, want ErrUnavailable naming the address", err)
	}
}

// Increment parses what strconv.ParseInt parses and adds exactly, over
// the whole int64 range, where Lua's numbers (doubles) would not.
func TestIncrementText(t *testing.T) {
	s := newTestStore(t, testAddr(t), Config{})
	ctx := t.Context()
	tests := []struct {
		stored string
		delta  int64
		want   int64
		bad    bool
	}{
		{"5", 1, 6, false},
		{"+5", 1, 6, false},
		{"007", 1, 8, false},
		{"-0", -1, -1, false},
		{"0000000000000000000000042", 0, 42, false},
		{"9007199254740993", 1, 9007199254740994, false},
		{strconv.FormatInt(math.MaxInt64-1, 10), 1, math.MaxInt64, false},
		{strconv.FormatInt(math.MinInt64+1, 10), -1, math.MinInt64, false},
		{strconv.FormatInt(math.MaxInt64, 10), 1, 0, true},
		{strconv.FormatInt(math.MinInt64, 10), -1, 0, true},
		{"9223372036854775808", 0, 0, true},
		{" 5", 1, 0, true},
		{"5 ", 1, 0, true},
		{"0x10", 1, 0, true},
		{"1_000", 1, 0, true},
		{"", 1, 0, true},
		{"1e3", 1, 0, true},
		{strings.Repeat("9", 100), 1, 0, true},
	}
	for i, tt := range tests {
		key := fmt.Sprint("n/", i)
		e, err := s.Put(ctx, kv.PutRequest{Key: key, Value: []byte(tt.stored)})
		if err != nil {
			t.Fatal(err)
		}
		c, err := s.Increment(ctx, key, tt.delta)
		if tt.bad {
			if !errors.Is(err, kv.ErrInvalidArgument) {
				t.Errorf("increment of %q by %d: %+v %v, want ErrInvalidArgument", tt.stored, tt.delta, c, err)
			}
			if g, _ := s.Get(ctx, key); string(g.Entry.Value) != tt.stored || g.Entry.Version != e.Version {
				t.Errorf("a refused increment of %q changed the key to %q at version %d", tt.stored, g.Entry.Value, g.Entry.Version)
			}
			continue
		}
		if err != nil || c.Value != tt.want {
			t.Errorf("increment of %q by %d: %+v %v, want %d", tt.stored, tt.delta, c, err, tt.want)
			continue
		}
		if g, _ := s.Get(ctx, key); string(g.Entry.Value) != strconv.FormatInt(tt.want, 10) {
			t.Errorf("after incrementing %q the key holds %q, want %d in decimal", tt.stored, g.Entry.Value, tt.want)
		}
	}
	// The scratch hash is empty between calls.
	if n, err := s.rdb.Exists(ctx, s.keys[keyScratch]).Result(); err != nil || n != 0 {
		t.Errorf("the scratch hash is left behind: exists=%d %v", n, err)
	}
}

// Stats and Count come from the index and the running byte total; they
// must agree with what List sees through every kind of write, expired
// keys excluded before cleanup runs.
func TestStatsFollowTheIndex(t *testing.T) {
	s := newTestStore(t, testAddr(t), Config{})
	ctx := t.Context()
	check := func(when string) {
		t.Helper()
		var keys, size int64
		after := ""
		for {
			page, err := s.List(ctx, kv.ListRequest{StartAfter: after, Limit: 3})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range page.Entries {
				keys++
				size += int64(len(e.Key) + len(e.Value))
				after = e.Key
			}
			if !page.More {
				break
			}
		}
		st, err := s.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n, err := s.Count(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if st.Keys != keys || st.Bytes != size || n.Count != keys {
			t.Fatalf("%s: stats say %d keys of %d bytes, count %d; list sees %d keys of %d bytes", when, st.Keys, st.Bytes, n.Count, keys, size)
		}
	}
	put := func(k, v string, ttl time.Duration) kv.Entry {
		t.Helper()
		e, err := s.Put(ctx, kv.PutRequest{Key: k, Value: []byte(v), TTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	check("empty")
	put("a", "1", 0)
	put("b", "22", 0)
	put("a", "333", 0)
	check("after puts and an overwrite")
	if _, err := s.Increment(ctx, "n", 99); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Increment(ctx, "n", 1); err != nil { // "99" -> "100": one byte more
		t.Fatal(err)
	}
	check("after increments")
	if _, err := s.Batch(ctx, []kv.Op{
		kv.PutOp("c", []byte("cc"), 0, kv.Condition{}),
		kv.DeleteOp("b", kv.Condition{}),
		kv.PutOp("b", []byte("bbbb"), 0, kv.Condition{}),
		kv.PutOp("d", []byte("d"), 0, kv.Condition{}),
		kv.DeleteOp("d", kv.Condition{}),
	}); err != nil {
		t.Fatal(err)
	}
	check("after a batch")
	x := put("x/1", "expiring", 30*time.Millisecond)
	put("x/2", "expiring too", 30*time.Millisecond)
	put("x/3", "stays", 0)
	waitPast(t, x.ExpiresAt.Add(30*time.Millisecond))
	check("after two keys expired, before cleanup")
	if n, err := s.Count(ctx, "x/"); err != nil || n.Count != 1 {
		t.Fatalf("count under x/ with two of three expired: %d %v", n.Count, err)
	}
	put("x/1", "again", 0) // over an expired key
	check("after a put over an expired key")
	if n, err := s.CleanupExpired(ctx, 0); err != nil || n != 1 {
		t.Fatalf("cleanup: %d %v, want 1 (x/2; x/1 was put again)", n, err)
	}
	check("after cleanup")
	if _, err := s.DeletePrefix(ctx, "x/"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(ctx, "a", kv.Condition{}); err != nil {
		t.Fatal(err)
	}
	check("after deletes")
}

// waitPast waits until the clock is past an expiry: waiting for time
// itself, not for another goroutine.
func waitPast(t testing.TB, at time.Time) {
	t.Helper()
	if d := time.Until(at); d > 0 {
		time.Sleep(d)
	}
}

// recvN receives n change events, skipping progress, each within a
// generous bound.
func recvN(t testing.TB, ws kv.WatchStream, n int) []kv.Event {
	t.Helper()
	out := make([]kv.Event, 0, n)
	for len(out) < n {
		ev, err := recvWithin(ws, 30*time.Second)
		if err != nil {
			t.Fatalf("after %d of %d events: %v", len(out), n, err)
		}
		if ev.Type != kv.EventProgress {
			out = append(out, ev)
		}
	}
	return out
}

var errNoEvent = errors.New("no event within the bound")

// recvWithin is Recv with a bound, for a test that must not hang.
func recvWithin(ws kv.WatchStream, d time.Duration) (kv.Event, error) {
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
		return r.ev, r.err
	case <-time.After(d):
		return kv.Event{}, errNoEvent
	}
}

// Two Stores on one prefix are two hosts of one store: a write on one
// reaches a watcher on the other, in the one order of the stream.
func TestWatchAcrossHosts(t *testing.T) {
	addr := testAddr(t)
	a := newTestStore(t, addr, Config{})
	b := newTestStore(t, addr, Config{KeyPrefix: a.KeyPrefix()})
	ctx := t.Context()
	wa, err := a.Watch(ctx, kv.WatchRequest{Prefix: "w/", ProgressInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer wa.Close()
	wb, err := b.Watch(ctx, kv.WatchRequest{Prefix: "w/", ProgressInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer wb.Close()
	var revs []int64
	for i := range 20 {
		store := a
		if i%2 == 1 {
			store = b
		}
		e, err := store.Put(ctx, kv.PutRequest{Key: fmt.Sprint("w/", i), Value: []byte{byte(i)}})
		if err != nil {
			t.Fatal(err)
		}
		revs = append(revs, e.Version)
	}
	for name, ws := range map[string]kv.WatchStream{"a": wa, "b": wb} {
		for i, ev := range recvN(t, ws, 20) {
			if ev.Revision != revs[i] || ev.Key != fmt.Sprint("w/", i) || !bytes.Equal(ev.Value, []byte{byte(i)}) {
				t.Fatalf("watcher on host %s: event %d is %v %q at %d, want the put of w/%d at %d", name, i, ev.Type, ev.Key, ev.Revision, i, revs[i])
			}
		}
	}
}

// Hosts that run cleanup at once remove each expired key once, and every
// watcher, on either host, gets exactly one EXPIRE per key.
func TestConcurrentCleanupExpiresOnce(t *testing.T) {
	addr := testAddr(t)
	a := newTestStore(t, addr, Config{})
	b := newTestStore(t, addr, Config{KeyPrefix: a.KeyPrefix()})
	ctx := t.Context()
	const n = 2000
	ops := make([]kv.Op, 0, kv.MaxBatchOps)
	var last kv.BatchResult
	for i := range n {
		ops = append(ops, kv.PutOp(fmt.Sprintf("e/%05d", i), []byte("x"), 20*time.Millisecond, kv.Condition{}))
		if len(ops) == kv.MaxBatchOps {
			var err error
			if last, err = a.Batch(ctx, ops); err != nil {
				t.Fatal(err)
			}
			ops = ops[:0]
		}
	}
	var watches []kv.WatchStream
	for _, s := range []*Store{a, b} {
		ws, err := s.Watch(ctx, kv.WatchRequest{Prefix: "e/", ProgressInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		watches = append(watches, ws)
	}
	waitPast(t, last.Results[len(last.Results)-1].ExpiresAt.Add(5*time.Millisecond))
	var wg sync.WaitGroup
	removed := make([]int64, 4)
	for i := range removed {
		s := []*Store{a, b}[i%2]
		wg.Go(func() {
			for {
				m, err := s.CleanupExpired(ctx, 100)
				if err != nil {
					t.Error(err)
					return
				}
				if m == 0 {
					return
				}
				removed[i] += m
			}
		})
	}
	wg.Wait()
	if total := removed[0] + removed[1] + removed[2] + removed[3]; total != n {
		t.Fatalf("four cleanups on two hosts removed %v, %d in all; want %d", removed, total, n)
	}
	for h, ws := range watches {
		seen := map[string]bool{}
		lastRev := int64(0)
		for _, ev := range recvN(t, ws, n) {
			if ev.Type != kv.EventExpire || seen[ev.Key] || ev.Revision <= lastRev {
				t.Fatalf("watcher on host %d: %v %q at %d after %d (seen before: %v)", h, ev.Type, ev.Key, ev.Revision, lastRev, seen[ev.Key])
			}
			seen[ev.Key], lastRev = true, ev.Revision
		}
	}
}

// When the stream is trimmed past where a host's follower stands (it
// fell further behind than the history), open watches end with the
// compacted error, and a new watch from the oldest revision works.
func TestFollowerBehindRetentionEndsWatches(t *testing.T) {
	addr := testAddr(t)
	const history = 100
	hold := make(chan struct{})
	var held sync.Once
	holding := make(chan struct{})
	blocked := false
	var mu sync.Mutex
	s := newTestStore(t, addr, Config{History: history, beforeRead: func() {
		mu.Lock()
		b := blocked
		mu.Unlock()
		if b {
			held.Do(func() { close(holding) })
			<-hold
		}
	}})
	ctx := t.Context()
	ws, err := s.Watch(ctx, kv.WatchRequest{Prefix: "g/", ProgressInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	first, err := s.Put(ctx, kv.PutRequest{Key: "g/first", Value: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	if ev := recvN(t, ws, 1)[0]; ev.Revision != first.Version {
		t.Fatalf("first event at %d, want %d", ev.Revision, first.Version)
	}
	mu.Lock()
	blocked = true
	mu.Unlock()
	// The follower is blocked in XREAD; it comes back to beforeRead
	// after the next entry, and stays there.
	if _, err := s.Put(ctx, kv.PutRequest{Key: "g/second", Value: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	<-holding
	// Three batches far past the history of 100: each is one stream
	// entry of 1000 changes, and the first two go when the third trims.
	for b := range 3 {
		ops := make([]kv.Op, 1000)
		for i := range ops {
			ops[i] = kv.PutOp(fmt.Sprintf("g/%d/%04d", b, i), []byte("x"), 0, kv.Condition{})
		}
		if _, err := s.Batch(ctx, ops); err != nil {
			t.Fatal(err)
		}
	}
	close(hold)
	var ce *kv.CompactedError
	for {
		ev, err := recvWithin(ws, 30*time.Second)
		if err == nil {
			if ev.Key != "g/second" {
				t.Fatalf("a watch whose follower fell past the history got %v %q at %d", ev.Type, ev.Key, ev.Revision)
			}
			continue
		}
		if !errors.As(err, &ce) {
			t.Fatalf("a watch whose follower fell past the history ended with %v, want a *kv.CompactedError", err)
		}
		break
	}
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ce.Oldest <= ce.Requested {
		t.Fatalf("compacted error %+v: the oldest kept should be past the one requested", *ce)
	}
	again, err := s.Watch(ctx, kv.WatchRequest{Prefix: "g/", StartRevision: st.OldestRevision, ProgressInterval: -1})
	if err != nil {
		t.Fatalf("watch again from the oldest revision %d: %v", st.OldestRevision, err)
	}
	defer again.Close()
	if got := recvN(t, again, int(st.Revision-st.OldestRevision+1)); got[len(got)-1].Revision != st.Revision {
		t.Fatalf("the new watch replayed up to %d, want %d", got[len(got)-1].Revision, st.Revision)
	}
}

// A store whose data Redis lost (its keys gone, as after a restart
// without persistence) gets a new epoch on the next call, keeps its
// revisions going forward, and its open watches end with the compacted
// error.
func TestLostDataEndsWatchesAndRevisionsGoOn(t *testing.T) {
	addr := testAddr(t)
	a := newTestStore(t, addr, Config{})
	b := newTestStore(t, addr, Config{KeyPrefix: a.KeyPrefix()})
	ctx := t.Context()
	var high int64
	for i := range 5 {
		e, err := a.Put(ctx, kv.PutRequest{Key: fmt.Sprint("l/", i), Value: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		high = e.Version
	}
	ws, err := b.Watch(ctx, kv.WatchRequest{Prefix: "l/", StartRevision: 1, ProgressInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	recvN(t, ws, 5)
	dropStore(t, addr, a.KeyPrefix())
	e, err := a.Put(ctx, kv.PutRequest{Key: "l/after", Value: []byte("x")})
	if err != nil {
		t.Fatalf("a put after the store lost its data: %v", err)
	}
	if e.Version <= high {
		t.Fatalf("after the store lost its data a put took revision %d; revisions went back (the last was %d)", e.Version, high)
	}
	for {
		ev, err := recvWithin(ws, 30*time.Second)
		if err == nil {
			t.Fatalf("after the store lost its data, a watch got %v %q at %d as if nothing happened", ev.Type, ev.Key, ev.Revision)
		}
		if _, ok := errors.AsType[*kv.CompactedError](err); !ok {
			t.Fatalf("after the store lost its data, a watch ended with %v, want a *kv.CompactedError", err)
		}
		break
	}
	if g, err := b.Get(ctx, "l/0"); err != nil || g.Found {
		t.Fatalf("get of a key the store lost: %+v %v", g, err)
	}
}

// A follower whose connection is killed reconnects and goes on from the
// last revision it published: the watch misses nothing and does not end.
func TestFollowerResumesAfterLostConnection(t *testing.T) {
	srv := startPrivateServer(t)
	s := newTestStore(t, srv.Addr(), Config{})
	ctx := t.Context()
	ws, err := s.Watch(ctx, kv.WatchRequest{Prefix: "r/", ProgressInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	admin := goredis.NewClient(&goredis.Options{Addr: srv.Addr(), MaxRetries: -1})
	defer admin.Close()
	var revs []int64
	for round := range 3 {
		for i := range 10 {
			e, err := s.Put(ctx, kv.PutRequest{Key: fmt.Sprintf("r/%d/%d", round, i), Value: []byte("x")})
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			revs = append(revs, e.Version)
		}
		// Kill every client connection but this one: the follower's
		// blocked XREAD among them.
		if err := admin.ClientKillByFilter(ctx, "TYPE", "normal", "SKIPME", "yes").Err(); err != nil {
			t.Fatal(err)
		}
	}
	for i, ev := range recvN(t, ws, len(revs)) {
		if ev.Revision != revs[i] {
			t.Fatalf("event %d at revision %d, want %d: the follower lost or repeated a change across a lost connection", i, ev.Revision, revs[i])
		}
	}
}

// Redis out of memory refuses a write whole (ErrStorageFull), before
// the script runs; the store is intact and writes succeed once there is
// room.
func TestOutOfMemoryIsStorageFull(t *testing.T) {
	srv := startPrivateServer(t)
	s := newTestStore(t, srv.Addr(), Config{})
	ctx := t.Context()
	admin := goredis.NewClient(&goredis.Options{Addr: srv.Addr(), MaxRetries: -1})
	defer admin.Close()
	used, err := admin.Info(ctx, "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	var usedBytes int64
	for line := range strings.SplitSeq(used, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			usedBytes, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	if err := admin.ConfigSet(ctx, "maxmemory", strconv.FormatInt(usedBytes+4<<20, 10)).Err(); err != nil {
		t.Fatal(err)
	}
	value := bytes.Repeat([]byte("v"), 256<<10)
	var stored []kv.Entry
	var full error
	for i := 0; i < 100 && full == nil; i++ {
		e, err := s.Put(ctx, kv.PutRequest{Key: fmt.Sprint("big/", i), Value: value})
		if err != nil {
			full = err
			break
		}
		stored = append(stored, e)
	}
	if !errors.Is(full, kv.ErrStorageFull) {
		t.Fatalf("writes of 256 KiB values under a maxmemory 4 MiB above use: %d stored, then %v; want ErrStorageFull", len(stored), full)
	}
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatalf("stats of a full store: %v", err)
	}
	if st.Keys != int64(len(stored)) || st.Revision != stored[len(stored)-1].Version {
		t.Fatalf("a full store has %d keys at revision %d; %d writes were acknowledged, the last at %d", st.Keys, st.Revision, len(stored), stored[len(stored)-1].Version)
	}
	if err := admin.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, kv.PutRequest{Key: "big/after", Value: value}); err != nil {
		t.Fatalf("a write once there is room: %v", err)
	}
}

// Redis restarted under a running Store: calls fail with ErrUnavailable
// while it is down and succeed again once it is back, on the same Store.
// It lost its data (no persistence): revisions still go forward, and an
// open watch ends with the compacted error.
func TestRedisRestart(t *testing.T) {
	srv := startPrivateServer(t)
	s := newTestStore(t, srv.Addr(), Config{Timeout: 2 * time.Second, DialTimeout: time.Second})
	ctx := t.Context()
	var high int64
	for i := range 10 {
		e, err := s.Put(ctx, kv.PutRequest{Key: fmt.Sprint("k/", i), Value: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		high = e.Version
	}
	ws, err := s.Watch(ctx, kv.WatchRequest{Prefix: "k/", ProgressInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	srv.shutdown()
	_, err = s.Put(ctx, kv.PutRequest{Key: "k/down", Value: []byte("x")})
	if !errors.Is(err, kv.ErrUnavailable) {
		t.Fatalf("a put while Redis is down: %v, want ErrUnavailable", err)
	}
	if _, err := s.Get(ctx, "k/0"); !errors.Is(err, kv.ErrUnavailable) {
		t.Fatalf("a get while Redis is down: %v, want ErrUnavailable", err)
	}
	srv.start()
	e, err := s.Put(ctx, kv.PutRequest{Key: "k/up", Value: []byte("x")})
	if err != nil {
		t.Fatalf("a put once Redis is back: %v", err)
	}
	if e.Version <= high {
		t.Fatalf("after the restart a put took revision %d; the last before it was %d", e.Version, high)
	}
	for {
		ev, err := recvWithin(ws, 30*time.Second)
		if err == nil {
			t.Fatalf("after Redis lost the store, a watch got %v %q at %d", ev.Type, ev.Key, ev.Revision)
		}
		if _, ok := errors.AsType[*kv.CompactedError](err); !ok {
			t.Fatalf("after Redis lost the store, a watch ended with %v, want a *kv.CompactedError", err)
		}
		break
	}
	again, err := s.Watch(ctx, kv.WatchRequest{Prefix: "k/", ProgressInterval: -1})
	if err != nil {
		t.Fatalf("watch after the restart: %v", err)
	}
	defer again.Close()
	e2, err := s.Put(ctx, kv.PutRequest{Key: "k/later", Value: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	if ev := recvN(t, again, 1)[0]; ev.Revision != e2.Version {
		t.Fatalf("a watch after the restart got revision %d, want %d", ev.Revision, e2.Version)
	}
}

// Pages read while writers change the listed keys are each the store at
// their revision: every key there, no version after the revision, and
// with writes so frequent that watched reads abort, the script reads it.
func TestListUnderWrites(t *testing.T) {
	addr := testAddr(t)
	for _, scripted := range []bool{false, true} {
		t.Run(fmt.Sprint("scripted=", scripted), func(t *testing.T) {
			s := newTestStore(t, addr, Config{scriptedLists: scripted})
			ctx := t.Context()
			const n = 3000
			ops := make([]kv.Op, 0, kv.MaxBatchOps)
			for i := range n {
				ops = append(ops, kv.PutOp(fmt.Sprintf("c/%04d", i), []byte("0"), 0, kv.Condition{}))
				if len(ops) == kv.MaxBatchOps {
					if _, err := s.Batch(ctx, ops); err != nil {
						t.Fatal(err)
					}
					ops = ops[:0]
				}
			}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := s.Put(ctx, kv.PutRequest{Key: fmt.Sprintf("c/%04d", (i*7)%n), Value: []byte(strconv.Itoa(i))}); err != nil {
						t.Error(err)
						return
					}
				}
			})
			defer func() { close(stop); wg.Wait() }()
			for range 10 {
				seen := 0
				after := ""
				for {
					page, err := s.List(ctx, kv.ListRequest{Prefix: "c/", StartAfter: after, Limit: 700})
					if err != nil {
						t.Fatal(err)
					}
					for _, e := range page.Entries {
						if e.Key != fmt.Sprintf("c/%04d", seen) {
							t.Fatalf("entry %d of the listing is %q", seen, e.Key)
						}
						if e.Version > page.Revision {
							t.Fatalf("a page at revision %d holds %q at version %d", page.Revision, e.Key, e.Version)
						}
						seen++
					}
					if !page.More {
						break
					}
					after = page.Entries[len(page.Entries)-1].Key
				}
				if seen != n {
					t.Fatalf("listed %d keys, want %d", seen, n)
				}
			}
		})
	}
}

// With nobody watching the follower stops reading the stream; a watch
// that comes later starts it again from the store's revision, and gets
// exactly the changes after it.
func TestFollowerIdlesWithoutWatchers(t *testing.T) {
	s := newTestStore(t, testAddr(t), Config{})
	ctx := t.Context()
	following := func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.following
	}
	for round := range 2 {
		for i := range 50 {
			if _, err := s.Put(ctx, kv.PutRequest{Key: fmt.Sprint("idle/", i), Value: []byte("x")}); err != nil {
				t.Fatal(err)
			}
		}
		ws, err := s.Watch(ctx, kv.WatchRequest{Prefix: "idle/", ProgressInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		e, err := s.Put(ctx, kv.PutRequest{Key: "idle/now", Value: []byte(fmt.Sprint(round))})
		if err != nil {
			t.Fatal(err)
		}
		if ev := recvN(t, ws, 1)[0]; ev.Revision != e.Version || ev.Key != "idle/now" {
			t.Fatalf("round %d: a watch from now got %v %q at %d first, want the put at %d", round, ev.Type, ev.Key, ev.Revision, e.Version)
		}
		_ = ws.Close()
		deadline := time.Now().Add(60 * time.Second) // the follower notices within a read's wait (2s)
		for following() {
			if time.Now().After(deadline) {
				t.Fatal("the follower still reads the stream a minute after the last watch closed")
			}
			time.Sleep(10 * time.Millisecond) // polling the follower's state
		}
	}
}

// A history read stops after pluginapi.HistoryPageBytes of values and
// answers its last event's revision; read on from there, the pages add
// up to every change, and a watch from the first replays them all.
func TestHistoryPagesByBytes(t *testing.T) {
	s := newTestStore(t, testAddr(t), Config{})
	ctx := t.Context()
	value := bytes.Repeat([]byte("v"), 1<<20)
	var revs []int64
	for i := range 10 {
		e, err := s.Put(ctx, kv.PutRequest{Key: fmt.Sprint("big/", i), Value: value})
		if err != nil {
			t.Fatal(err)
		}
		revs = append(revs, e.Version)
	}
	var got []kv.Event
	for from, pages := revs[0], 0; ; pages++ {
		evs, through, err := s.ReadHistory(ctx, "big/", from, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) > 5 {
			t.Fatalf("one history page holds %d values of 1 MiB; pages stop after 4 MiB", len(evs))
		}
		got = append(got, evs...)
		if len(evs) > 0 && through != evs[len(evs)-1].Revision && through != revs[len(revs)-1] {
			t.Fatalf("a page ending at revision %d answered through %d", evs[len(evs)-1].Revision, through)
		}
		if through >= revs[len(revs)-1] || pages > 20 {
			break
		}
		from = through + 1
	}
	if len(got) != len(revs) {
		t.Fatalf("history pages held %d events, want %d", len(got), len(revs))
	}
	ws, err := s.Watch(ctx, kv.WatchRequest{Prefix: "big/", StartRevision: revs[0], ProgressInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	for i, ev := range recvN(t, ws, len(revs)) {
		if ev.Revision != revs[i] || len(ev.Value) != len(value) {
			t.Fatalf("replayed event %d: revision %d with %d bytes, want %d with %d", i, ev.Revision, len(ev.Value), revs[i], len(value))
		}
	}
}
