package redis

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kvhost/kvhost/kv"
)

// The watched batch (plain commands under WATCH) and the script apply the
// same batches with the same results: two stores, one that always takes
// the script, run the same sequence, including batches the watched path
// hands to the script (a TTL, a key with an expiry, a failed condition, a
// batch that changes nothing), and must agree on every reply, on the
// data, on the byte total and on the events.
func TestWatchedBatchMatchesScript(t *testing.T) {
	addr := testAddr(t)
	watched := newTestStore(t, addr, Config{})
	scripted := newTestStore(t, addr, Config{scriptedBatches: true})
	ctx := t.Context()
	put := func(k, v string) kv.Op { return kv.PutOp(k, []byte(v), 0, kv.Condition{}) }
	del := func(k string) kv.Op { return kv.DeleteOp(k, kv.Condition{}) }
	batches := [][]kv.Op{
		{put("a", "1"), put("b", "22"), put("c", "")},
		{put("a", "111"), del("b"), put("b", "back"), del("nothing"), put("d", "4")},
		{del("a"), del("a"), put("e", "5")},
		{kv.PutOp("a", []byte("new"), 0, kv.Condition{Kind: kv.CondAbsent}), kv.PutOp("d", []byte("4'"), 0, kv.Condition{Kind: kv.CondVersion, Version: 6})},
		{kv.PutOp("e", []byte("x"), 0, kv.Condition{Kind: kv.CondAbsent})}, // conflict
		{del("nothing"), del("still nothing")}, // no change
		{kv.PutOp("t", []byte("ttl"), time.Hour, kv.Condition{}), put("f", "6")},
		{put("t", "over a key with an expiry"), del("c")},
		{put("g", "7"), put("g", "77"), del("g"), put("g", "777")},
	}
	for _, s := range []*Store{watched, scripted} {
		if _, err := s.Put(ctx, kv.PutRequest{Key: "before", Value: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	ws, err := watched.Watch(ctx, kv.WatchRequest{StartRevision: 1, ProgressInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	wsScripted, err := scripted.Watch(ctx, kv.WatchRequest{StartRevision: 1, ProgressInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer wsScripted.Close()
	var last kv.BatchResult
	for i, ops := range batches {
		a, errA := watched.Batch(ctx, ops)
		b, errB := scripted.Batch(ctx, ops)
		if fmt.Sprint(errA) != fmt.Sprint(errB) || !sameBatch(a, b) {
			t.Fatalf("batch %d: watched %+v %v, script %+v %v", i, a, errA, b, errB)
		}
		if errA == nil {
			last = a
		}
	}
	for _, s := range []*Store{watched, scripted} {
		if st, err := s.Stats(ctx); err != nil || st.Revision != last.Revision {
			t.Fatalf("stats %+v %v, want revision %d", st, err, last.Revision)
		}
	}
	sa, _ := watched.Stats(ctx)
	sb, _ := scripted.Stats(ctx)
	la, _ := watched.List(ctx, kv.ListRequest{})
	lb, _ := scripted.List(ctx, kv.ListRequest{})
	if sa.Keys != sb.Keys || sa.Bytes != sb.Bytes || !reflect.DeepEqual(stripExpiry(la.Entries), stripExpiry(lb.Entries)) {
		t.Fatalf("watched store %+v %+v\nscripted store %+v %+v", sa, la.Entries, sb, lb.Entries)
	}
	n := int(last.Revision)
	ea, eb := recvN(t, ws, n), recvN(t, wsScripted, n)
	for i := range ea {
		a, b := ea[i], eb[i]
		if a.Type != b.Type || a.Key != b.Key || string(a.Value) != string(b.Value) || a.Version != b.Version || a.Revision != b.Revision || a.ExpiresAt.IsZero() != b.ExpiresAt.IsZero() {
			t.Fatalf("event %d: watched %+v, script %+v", i, a, b)
		}
	}
}

func sameBatch(a, b kv.BatchResult) bool {
	if a.Revision != b.Revision || len(a.Results) != len(b.Results) {
		return false
	}
	for i := range a.Results {
		x, y := a.Results[i], b.Results[i]
		if x.Revision != y.Revision || x.Version != y.Version || x.Deleted != y.Deleted || x.ExpiresAt.IsZero() != y.ExpiresAt.IsZero() {
			return false
		}
	}
	return true
}

// stripExpiry leaves out expiries, which the two stores set at their own
// instants.
func stripExpiry(es []kv.Entry) []kv.Entry {
	out := make([]kv.Entry, len(es))
	for i, e := range es {
		e.ExpiresAt = time.Time{}
		out[i] = e
	}
	return out
}

// A write between the watched batch's read and its EXEC makes it start
// over (and, as the write comes again on every try, give way to the
// script): the batch still applies exactly once, after the writes.
func TestWatchedBatchStartsOverAfterAWrite(t *testing.T) {
	addr := testAddr(t)
	s := newTestStore(t, addr, Config{})
	ctx := t.Context()
	keys, at := distinctKeys([]kv.Op{kv.PutOp("k", []byte("v"), 0, kv.Condition{})})
	if len(keys) != 1 || at[0] != 0 {
		t.Fatalf("distinct keys %v %v", keys, at)
	}
	other := newTestStore(t, addr, Config{KeyPrefix: s.KeyPrefix()})
	s.beforeBatchWrite = func() {
		if _, err := other.Put(ctx, kv.PutRequest{Key: "k", Value: []byte("other")}); err != nil {
			t.Error(err)
		}
	}
	res, err := s.Batch(ctx, []kv.Op{kv.PutOp("k", []byte("mine"), 0, kv.Condition{})})
	if err != nil {
		t.Fatal(err)
	}
	g, err := s.Get(ctx, "k")
	if err != nil || string(g.Entry.Value) != "mine" || g.Entry.Version != res.Revision {
		t.Fatalf("after the batch: %+v %v; batch at %d", g, err, res.Revision)
	}
	if res.Revision <= 1 {
		t.Fatalf("the batch took revision %d, before the other write", res.Revision)
	}
}

// A watched batch on a Redis out of memory is refused whole, as the
// script is: ErrStorageFull, and the store as it was.
func TestWatchedBatchOutOfMemory(t *testing.T) {
	srv := startPrivateServer(t)
	s := newTestStore(t, srv.Addr(), Config{})
	ctx := t.Context()
	before, err := s.Put(ctx, kv.PutRequest{Key: "before", Value: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	admin := goredis.NewClient(&goredis.Options{Addr: srv.Addr(), MaxRetries: -1})
	defer admin.Close()
	if err := admin.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	defer admin.ConfigSet(context.Background(), "maxmemory", "0")
	ops := make([]kv.Op, 100)
	for i := range ops {
		ops[i] = kv.PutOp(fmt.Sprint("k/", i), []byte("value"), 0, kv.Condition{})
	}
	if _, err := s.batchWatched(ctx, ops); !errors.Is(s.mapErr(err), kv.ErrStorageFull) {
		t.Fatalf("a watched batch on a full Redis: %v, want ErrStorageFull", err)
	}
	if _, err := s.Batch(ctx, ops); !errors.Is(err, kv.ErrStorageFull) {
		t.Fatalf("a batch on a full Redis: %v, want ErrStorageFull", err)
	}
	if err := admin.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	st, err := s.Stats(ctx)
	if err != nil || st.Keys != 1 || st.Revision != before.Version {
		t.Fatalf("after refused batches: %+v %v; want 1 key at revision %d", st, err, before.Version)
	}
}
