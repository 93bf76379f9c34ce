package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kvhost/kvhost/client"
	"github.com/kvhost/kvhost/host/server"
	"github.com/kvhost/kvhost/internal/testbin"
	"github.com/kvhost/kvhost/kv"
)

func TestGetPutDelete(t *testing.T) {
	c := anonymous(t)
	ctx := ctxOf(t)

	e, err := c.Put(ctx, "greeting", []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if e.Key != "greeting" || e.Version <= 0 || !e.ExpiresAt.IsZero() {
		t.Fatalf("Put = %+v, want key, a version and no expiry", e)
	}
	got, err := c.Get(ctx, "greeting")
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Value) != "hello" || got.Version != e.Version || got.Key != "greeting" {
		t.Fatalf("Get = %+v, want hello at version %d", got, e.Version)
	}

	// Values are bytes: empty, binary and a large one all round-trip.
	big := bytes.Repeat([]byte{0xff, 0x00, 'x'}, 300_000)
	for _, v := range [][]byte{{}, {0xff, 0xfe, 0}, big} {
		if _, err := c.Put(ctx, "bytes", v); err != nil {
			t.Fatal(err)
		}
		got, err := c.Get(ctx, "bytes")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Value, v) {
			t.Fatalf("value of %d bytes came back as %d bytes", len(v), len(got.Value))
		}
	}

	deleted, err := c.Delete(ctx, "greeting")
	if err != nil || !deleted {
		t.Fatalf("Delete = %v, %v; want true", deleted, err)
	}
	deleted, err = c.Delete(ctx, "greeting")
	if err != nil || deleted {
		t.Fatalf("second Delete = %v, %v; want false, nil", deleted, err)
	}
	if _, err := c.Get(ctx, "greeting"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("Get after Delete = %v, want ErrNotFound", err)
	}
}

func TestConditions(t *testing.T) {
	c := anonymous(t)
	ctx := ctxOf(t)

	first, err := c.Put(ctx, "lock", []byte("a"), client.IfAbsent())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func() error
		want int64 // the CurrentVersion the conflict reports
	}{
		{"put if-absent on a live key", func() error {
			_, err := c.Put(ctx, "lock", []byte("b"), client.IfAbsent())
			return err
		}, first.Version},
		{"put at a stale version", func() error {
			_, err := c.Put(ctx, "lock", []byte("b"), client.IfVersion(first.Version+100))
			return err
		}, first.Version},
		{"put if-version on a missing key", func() error {
			_, err := c.Put(ctx, "nothing", []byte("b"), client.IfVersion(1))
			return err
		}, 0},
		{"delete at a stale version", func() error {
			_, err := c.Delete(ctx, "lock", client.IfVersion(first.Version+100))
			return err
		}, first.Version},
		{"refresh at a stale version", func() error {
			_, err := c.RefreshTTL(ctx, "lock", time.Hour, client.IfVersion(first.Version+100))
			return err
		}, first.Version},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, client.ErrConflict) {
				t.Fatalf("got %v, want ErrConflict", err)
			}
			var ce *client.ConflictError
			if !errors.As(err, &ce) {
				t.Fatalf("%v (%T) is not a *ConflictError", err, err)
			}
			if ce.CurrentVersion != tt.want || ce.OpIndex != -1 {
				t.Fatalf("conflict %+v, want CurrentVersion %d and OpIndex -1", ce, tt.want)
			}
			// The tenant's prefix never leaks into the key the caller sees.
			if ce.Key != "lock" && ce.Key != "nothing" {
				t.Fatalf("conflict names key %q", ce.Key)
			}
		})
	}

	// A compare-and-set at the right version succeeds and the failed ones
	// changed nothing.
	second, err := c.Put(ctx, "lock", []byte("c"), client.IfVersion(first.Version))
	if err != nil {
		t.Fatal(err)
	}
	if second.Version <= first.Version {
		t.Fatalf("version went from %d to %d", first.Version, second.Version)
	}
	if ok, err := c.Delete(ctx, "lock", client.IfVersion(second.Version)); err != nil || !ok {
		t.Fatalf("Delete at the current version = %v, %v", ok, err)
	}
}

func TestErrorsOverTheWire(t *testing.T) {
	c := anonymous(t)
	ctx := ctxOf(t)
	if _, err := c.Put(ctx, "text", []byte("not a number")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"get missing", func() error { _, err := c.Get(ctx, "missing"); return err }, client.ErrNotFound},
		{"refresh missing", func() error { _, err := c.RefreshTTL(ctx, "missing", time.Second); return err }, client.ErrNotFound},
		// Valid by the contract (at most 1024 bytes), so the client sends
		// it; over the server's default limit, so the server refuses it.
		{"key over the server's limit", func() error {
			_, err := c.Put(ctx, strings.Repeat("k", 1000), nil)
			return err
		}, client.ErrInvalidArgument},
		{"increment a non-counter", func() error { _, err := c.Increment(ctx, "text", 1); return err }, client.ErrInvalidArgument},
		{"value over the server's limit", func() error {
			_, err := c.Put(ctx, "big", make([]byte, 2<<20))
			return err
		}, client.ErrTooLarge},
		{"deadline", func() error {
			ctx, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
			defer cancel()
			_, err := c.Get(ctx, "text")
			return err
		}, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestListCountDeletePrefix(t *testing.T) {
	c := anonymous(t)
	ctx := ctxOf(t)
	for i := range 5 {
		if _, err := c.Put(ctx, fmt.Sprintf("a/%d", i), []byte(fmt.Sprint("v", i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Put(ctx, "b/0", []byte("other")); err != nil {
		t.Fatal(err)
	}

	res, err := c.List(ctx, "a/", client.Limit(2))
	if err != nil {
		t.Fatal(err)
	}
	if keys(res.Entries) != "a/0 a/1" || !res.More || string(res.Entries[1].Value) != "v1" {
		t.Fatalf("first page = %q more=%v", keys(res.Entries), res.More)
	}
	res, err = c.List(ctx, "a/", client.StartAfter("a/1"), client.KeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	if keys(res.Entries) != "a/2 a/3 a/4" || res.More {
		t.Fatalf("rest = %q more=%v", keys(res.Entries), res.More)
	}
	for _, e := range res.Entries {
		if e.Value != nil || e.Version <= 0 {
			t.Fatalf("keys-only entry %+v: want a version and no value", e)
		}
	}
	res, err = c.List(ctx, "")
	if err != nil || len(res.Entries) != 6 {
		t.Fatalf("List of everything = %d entries, %v; want 6", len(res.Entries), err)
	}

	for prefix, want := range map[string]int64{"": 6, "a/": 5, "b/": 1, "c/": 0} {
		if n, err := c.Count(ctx, prefix); err != nil || n != want {
			t.Errorf("Count(%q) = %d, %v; want %d", prefix, n, err, want)
		}
	}

	n, err := c.DeletePrefix(ctx, "a/")
	if err != nil || n != 5 {
		t.Fatalf("DeletePrefix = %d, %v; want 5", n, err)
	}
	if n, err := c.Count(ctx, ""); err != nil || n != 1 {
		t.Fatalf("Count after DeletePrefix = %d, %v; want 1", n, err)
	}
}

func keys(es []kv.Entry) string {
	ks := make([]string, len(es))
	for i, e := range es {
		ks[i] = e.Key
	}
	return strings.Join(ks, " ")
}

func TestAllPages(t *testing.T) {
	c := anonymous(t)
	ctx := ctxOf(t)
	var want []string
	for i := range 23 {
		k := fmt.Sprintf("page/%02d", i)
		want = append(want, k)
		if _, err := c.Put(ctx, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Put(ctx, "pagf", nil); err != nil { // just past the prefix
		t.Fatal(err)
	}

	var got []string
	for e, err := range c.All(ctx, "page/", client.Limit(5)) {
		if err != nil {
			t.Fatal(err)
		}
		if string(e.Value) != e.Key {
			t.Fatalf("entry %q has value %q", e.Key, e.Value)
		}
		got = append(got, e.Key)
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("All = %v\nwant %v", got, want)
	}

	// The server's default page size, StartAfter and KeysOnly.
	got = got[:0]
	for e, err := range c.All(ctx, "page/", client.StartAfter("page/19"), client.KeysOnly()) {
		if err != nil {
			t.Fatal(err)
		}
		if e.Value != nil {
			t.Fatalf("keys-only entry %q has a value", e.Key)
		}
		got = append(got, e.Key)
	}
	if strings.Join(got, " ") != "page/20 page/21 page/22" {
		t.Fatalf("All after page/19 = %v", got)
	}

	// Stopping early stops fetching.
	n := 0
	for range c.All(ctx, "page/", client.Limit(2)) {
		if n++; n == 3 {
			break
		}
	}
	if n != 3 {
		t.Fatalf("early break after %d entries", n)
	}

	// An error is yielded once and ends the iteration.
	errs := 0
	for _, err := range c.All(ctx, "page/", client.Limit(-1)) {
		if !errors.Is(err, client.ErrInvalidArgument) {
			t.Fatalf("got %v, want ErrInvalidArgument", err)
		}
		errs++
	}
	if errs != 1 {
		t.Fatalf("%d errors yielded, want 1", errs)
	}
}

func TestGetMany(t *testing.T) {
	c := anonymous(t)
	ctx := ctxOf(t)
	for _, k := range []string{"x", "z"} {
		if _, err := c.Put(ctx, k, []byte("v"+k)); err != nil {
			t.Fatal(err)
		}
	}
	es, err := c.GetMany(ctx, []string{"z", "y", "x"})
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 3 || es[1] != nil || es[0] == nil || es[2] == nil ||
		es[0].Key != "z" || string(es[0].Value) != "vz" || string(es[2].Value) != "vx" {
		t.Fatalf("GetMany = %v", es)
	}
	if es, err := c.GetMany(ctx, nil); err != nil || len(es) != 0 {
		t.Fatalf("GetMany(nil) = %v, %v", es, err)
	}
}

func TestIncrement(t *testing.T) {
	c := anonymous(t)
	ctx := ctxOf(t)
	n, err := c.Increment(ctx, "hits", 5)
	if err != nil || n.Value != 5 || n.Version <= 0 {
		t.Fatalf("Increment = %+v, %v; want 5", n, err)
	}
	m, err := c.Increment(ctx, "hits", -7)
	if err != nil || m.Value != -2 || m.Version <= n.Version {
		t.Fatalf("Increment = %+v, %v; want -2 at a newer version", m, err)
	}
	e, err := c.Get(ctx, "hits")
	if err != nil || string(e.Value) != "-2" {
		t.Fatalf("Get = %q, %v", e.Value, err)
	}
}

func TestTTL(t *testing.T) {
	c := anonymous(t)
	ctx := ctxOf(t)

	before := time.Now()
	e, err := c.Put(ctx, "session", []byte("s"), client.WithTTL(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if d := e.ExpiresAt.Sub(before); d < 59*time.Minute || d > 61*time.Minute {
		t.Fatalf("expiry %v is %v away, want about an hour", e.ExpiresAt, d)
	}
	got, err := c.Get(ctx, "session")
	if err != nil || !got.ExpiresAt.Equal(e.ExpiresAt) {
		t.Fatalf("Get = %+v, %v; want expiry %v", got, err, e.ExpiresAt)
	}

	r, err := c.RefreshTTL(ctx, "session", 2*time.Hour, client.IfVersion(e.Version))
	if err != nil {
		t.Fatal(err)
	}
	if r.Version != e.Version || !r.ExpiresAt.After(e.ExpiresAt) {
		t.Fatalf("RefreshTTL = %+v, want version %d and a later expiry", r, e.Version)
	}
	r, err = c.RefreshTTL(ctx, "session", 0)
	if err != nil || !r.ExpiresAt.IsZero() {
		t.Fatalf("RefreshTTL(0) = %+v, %v; want no expiry", r, err)
	}

	// A short TTL: the key disappears.
	if _, err := c.Put(ctx, "brief", []byte("b"), client.WithTTL(50*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := c.Get(ctx, "brief")
		if errors.Is(err, client.ErrNotFound) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("a key with a 50ms TTL is still there after 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestBatch(t *testing.T) {
	c := anonymous(t)
	ctx := ctxOf(t)
	old, err := c.Put(ctx, "old", []byte("o"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Batch(ctx, []kv.Op{
		kv.PutOp("a", []byte("1"), 0, kv.IfAbsent()),
		kv.PutOp("b", []byte("2"), time.Hour, kv.Condition{}),
		kv.DeleteOp("old", kv.IfVersion(old.Version)),
		kv.DeleteOp("never", kv.Condition{}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 4 || res[0].Version <= 0 || res[1].ExpiresAt.IsZero() || !res[2].Deleted || res[3].Deleted {
		t.Fatalf("Batch = %+v", res)
	}

	// All or nothing: the failing op is named and the first op undone.
	_, err = c.Batch(ctx, []kv.Op{
		kv.PutOp("c", []byte("3"), 0, kv.Condition{}),
		kv.PutOp("a", []byte("x"), 0, kv.IfAbsent()),
	})
	var ce *client.ConflictError
	if !errors.As(err, &ce) || ce.OpIndex != 1 || ce.Key != "a" || ce.CurrentVersion != res[0].Version {
		t.Fatalf("Batch conflict = %v (%+v), want op 1 on key a at version %d", err, ce, res[0].Version)
	}
	if _, err := c.Get(ctx, "c"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("Get of the failed batch's first key = %v, want ErrNotFound", err)
	}
}

func TestStats(t *testing.T) {
	addr := startServer(t, server.Options{Tokens: []server.Token{
		{Token: "tok-a", Principal: "alice", Tenant: "a"},
		{Token: "tok-b", Principal: "bob", Tenant: "b"},
		{Token: "tok-ops", Principal: "ops", Tenant: "ops", Admin: true},
	}})
	a := dial(t, addr, client.WithToken("tok-a"))
	b := dial(t, addr, client.WithToken("tok-b"))
	ops := dial(t, addr, client.WithToken("tok-ops"))
	ctx := ctxOf(t)
	for _, k := range []string{"1", "2", "3"} {
		if _, err := a.Put(ctx, k, []byte("vvvv")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Put(ctx, "1", []byte("v")); err != nil {
		t.Fatal(err)
	}
	s, err := a.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Keys != 3 || s.BackendTotals || s.BackendKeys != 0 || s.BackendBytes != 0 || s.Backend != "memory" || s.BackendVersion == "" {
		t.Fatalf("Stats for tenant a = %+v, want its 3 keys and nothing of other tenants", s)
	}
	if s, err = b.Stats(ctx); err != nil || s.Keys != 1 || s.BackendTotals {
		t.Fatalf("Stats for tenant b = %+v %v, want its 1 key alone", s, err)
	}
	if s, err = ops.Stats(ctx); err != nil || s.Keys != 0 || !s.BackendTotals || s.BackendKeys != 4 || s.BackendBytes != int64(3*(len("t/a/1")+4)+len("t/b/1")+1) {
		t.Fatalf("Stats for an admin = %+v %v, want the backend's 4 keys and 33 bytes (keys as stored, with their tenant prefix)", s, err)
	}
}

func TestTokensAndTenants(t *testing.T) {
	addr := startServer(t, server.Options{Tokens: []server.Token{
		{Token: "tok-a", Principal: "alice", Tenant: "a"},
		{Token: "tok-b", Principal: "bob", Tenant: "b"},
	}})
	a := dial(t, addr, client.WithToken("tok-a"))
	b := dial(t, addr, client.WithToken("tok-b"))
	ctx := ctxOf(t)

	if _, err := a.Put(ctx, "shared", []byte("a's")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, "shared"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("b reads a's key: %v", err)
	}
	if _, err := b.Put(ctx, "shared", []byte("b's")); err != nil {
		t.Fatal(err)
	}
	if e, err := a.Get(ctx, "shared"); err != nil || string(e.Value) != "a's" {
		t.Fatalf("a's key = %q, %v", e.Value, err)
	}
	if res, err := b.List(ctx, ""); err != nil || keys(res.Entries) != "shared" {
		t.Fatalf("b lists %q, %v", keys(res.Entries), err)
	}

	for name, c := range map[string]*client.Client{
		"no token":    dial(t, addr),
		"wrong token": dial(t, addr, client.WithToken("tok-c")),
	} {
		if _, err := c.Get(ctx, "shared"); !errors.Is(err, client.ErrUnauthenticated) {
			t.Errorf("%s: Get = %v, want ErrUnauthenticated", name, err)
		}
		if _, err := c.Watch(ctx, ""); !errors.Is(err, client.ErrUnauthenticated) {
			t.Errorf("%s: Watch = %v, want ErrUnauthenticated", name, err)
		}
	}
}

func TestWatch(t *testing.T) {
	addr := startServer(t, server.Options{Anonymous: true})
	watcher, writer := dial(t, addr), dial(t, addr)
	ctx := ctxOf(t)

	w, err := watcher.Watch(ctx, "w/")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	// Watch returned, so the subscription is live: every write from the
	// other client after this point arrives, in order.
	p, err := writer.Put(ctx, "w/1", []byte("one"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := writer.Put(ctx, "elsewhere", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := writer.Delete(ctx, "w/1"); err != nil {
		t.Fatal(err)
	}
	if _, err := writer.Put(ctx, "w/2", []byte("two"), client.WithTTL(50*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	want := []kv.Event{
		{Type: kv.EventPut, Key: "w/1", Value: []byte("one"), Version: p.Version},
		{Type: kv.EventDelete, Key: "w/1", Version: p.Version},
		{Type: kv.EventPut, Key: "w/2", Value: []byte("two")},
		// The host's cleanup removes the expired key and says so.
		{Type: kv.EventExpire, Key: "w/2"},
	}
	for i, wantEv := range want {
		ev, err := w.Recv()
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if ev.Type != wantEv.Type || ev.Key != wantEv.Key || !bytes.Equal(ev.Value, wantEv.Value) ||
			(wantEv.Version != 0 && ev.Version != wantEv.Version) {
			t.Fatalf("event %d = %+v, want %+v", i, ev, wantEv)
		}
	}

	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Recv(); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Recv after Close = %v, want ErrClosed", err)
	}

	// Cancelling the watch's context ends it with the context's error.
	wctx, cancel := context.WithCancel(ctx)
	w2, err := watcher.Watch(wctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	cancel()
	if _, err := w2.Recv(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Recv after cancel = %v, want context.Canceled", err)
	}

	// Closing the client ends its watches with ErrClosed.
	w3, err := watcher.Watch(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer w3.Close()
	watcher.Close()
	if _, err := w3.Recv(); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Recv after the client's Close = %v, want ErrClosed", err)
	}
}

// A server going away is ErrUnavailable.
func TestServerGone(t *testing.T) {
	addr, stop, err := serve(testbin.Plugin(t, "memory"), server.Options{Anonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, addr)
	ctx := ctxOf(t)
	if _, err := c.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	stop()
	if _, err := c.Get(ctx, "k"); !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("Get with the server gone = %v, want ErrUnavailable", err)
	}
}
