package host_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kvhost/kvhost/host"
	"github.com/kvhost/kvhost/internal/testbin"
	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/kv/op"
	"github.com/kvhost/kvhost/plugins/memory"
)

// openStore returns a store over an in-process memory backend: the layers
// of the host without a plugin process, for tests of what the layers do.
func openStore(t testing.TB, mutate func(*host.Config)) *host.Store {
	t.Helper()
	cfg := host.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if mutate != nil {
		mutate(&cfg)
	}
	st, err := host.New(t.Context(), memory.New(), cfg)
	if err != nil {
		t.Fatalf("new store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// openPluginStore returns a store over the memory backend's plugin
// binary, for tests of supervision and the plugin boundary.
func openPluginStore(t testing.TB, mutate func(*host.Config)) *host.Store {
	t.Helper()
	cfg := host.Config{
		Plugin: host.PluginConfig{Path: testbin.Plugin(t, "memory")},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	st, err := host.Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func as(ctx context.Context, principal, tenant string) context.Context {
	return host.WithIdentity(ctx, host.Identity{Principal: principal, Tenant: tenant})
}

func TestTenantsNeverMeet(t *testing.T) {
	st := openStore(t, nil)
	a := as(t.Context(), "alice", "acme")
	b := as(t.Context(), "bob", "acme-eu")
	// The seed system joined tenant:namespace:key and collided; these would.
	if _, err := st.Put(a, kv.PutRequest{Key: "eu/x", Value: []byte("acme")}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(b, kv.PutRequest{Key: "x", Value: []byte("acme-eu")}); err != nil {
		t.Fatal(err)
	}
	if g, err := st.Get(b, "eu/x"); err != nil || g.Found {
		t.Fatalf("tenant acme-eu sees acme's key: %+v %v", g, err)
	}
	res, err := st.List(a, kv.ListRequest{})
	if err != nil || len(res.Entries) != 1 || res.Entries[0].Key != "eu/x" {
		t.Fatalf("acme lists %+v %v, want only its own key without the tenant prefix", res.Entries, err)
	}
	if n, _ := st.Count(b, ""); n.Count != 1 {
		t.Fatalf("acme-eu counts %d keys, want 1", n.Count)
	}
	if n, err := st.DeletePrefix(b, "e"); err != nil || n.Deleted != 0 {
		t.Fatalf("acme-eu deleted %d of acme's keys: %v", n.Deleted, err)
	}
	ws, err := st.Watch(b, kv.WatchRequest{})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if _, err := st.Put(a, kv.PutRequest{Key: "y", Value: []byte("acme")}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(b, kv.PutRequest{Key: "z", Value: []byte("mine")}); err != nil {
		t.Fatal(err)
	}
	ev, err := ws.Recv()
	if err != nil || ev.Key != "z" || string(ev.Value) != "mine" {
		t.Fatalf("acme-eu's watch got %+v %v, want only its own PUT z", ev, err)
	}
	_, err = st.Get(as(t.Context(), "eve", "a/b"), "x")
	if !errors.Is(err, kv.ErrInvalidArgument) {
		t.Fatalf("tenant with a slash: %v, want invalid argument", err)
	}
}

func TestLimits(t *testing.T) {
	st := openStore(t, func(c *host.Config) { c.Limits = host.Limits{MaxValueBytes: 1000, MaxBatchOps: 3} })
	ctx := t.Context()
	_, err := st.Put(ctx, kv.PutRequest{Key: strings.Repeat("k", 2000), Value: []byte("v")})
	if !errors.Is(err, kv.ErrInvalidArgument) || !strings.Contains(err.Error(), "2000 bytes") {
		t.Fatalf("2000-byte key: %v", err)
	}
	_, err = st.Put(ctx, kv.PutRequest{Key: "k", Value: make([]byte, 1001)})
	if !errors.Is(err, kv.ErrTooLarge) || !strings.Contains(err.Error(), "1001 bytes") {
		t.Fatalf("value over the limit: %v", err)
	}
	ops := []kv.Op{
		kv.PutOp("a", nil, 0, kv.Condition{}), kv.PutOp("b", nil, 0, kv.Condition{}),
		kv.PutOp("c", nil, 0, kv.Condition{}), kv.PutOp("d", nil, 0, kv.Condition{}),
	}
	if _, err := st.Batch(ctx, ops); !errors.Is(err, kv.ErrInvalidArgument) {
		t.Fatalf("batch over the limit: %v", err)
	}
	if _, err := st.Batch(ctx, []kv.Op{ops[0], kv.PutOp("big", make([]byte, 1001), 0, kv.Condition{})}); !errors.Is(err, kv.ErrTooLarge) {
		t.Fatalf("batch with a value over the limit: %v", err)
	}
	if n, _ := st.Count(ctx, ""); n.Count != 0 {
		t.Fatalf("refused writes stored %d keys", n.Count)
	}
	if _, err := host.Open(ctx, host.Config{Plugin: host.PluginConfig{Path: testbin.Plugin(t, "memory")}, Limits: host.Limits{MaxKeyBytes: 5000}}); !errors.Is(err, kv.ErrInvalidArgument) {
		t.Fatalf("impossible key limit accepted: %v", err)
	}
}

type denyGuard struct{ calls atomic.Int64 }

func (g *denyGuard) Check(_ context.Context, c *host.Check) error {
	g.calls.Add(1)
	if strings.HasPrefix(c.Key, "secret/") {
		return fmt.Errorf("%w: policy test denied %s %q", kv.ErrPermissionDenied, c.Op, c.Key)
	}
	if c.Op == op.Put && c.TTL == 0 {
		c.TTL = time.Hour // the guard may impose a TTL
	}
	return nil
}

func TestGuardSeesEveryOperation(t *testing.T) {
	g := &denyGuard{}
	st := openStore(t, func(c *host.Config) { c.Guard = g })
	ctx := t.Context()
	e, err := st.Put(ctx, kv.PutRequest{Key: "a", Value: []byte("1")})
	if err != nil || e.ExpiresAt.IsZero() {
		t.Fatalf("guard's TTL was not applied: %+v %v", e, err)
	}
	if g.calls.Load() != 1 {
		t.Fatalf("one put made %d guard calls", g.calls.Load())
	}
	ops := map[string]func() error{
		"get":           func() error { _, err := st.Get(ctx, "secret/x"); return err },
		"get-many":      func() error { _, err := st.GetMany(ctx, []string{"a", "secret/z"}); return err },
		"put":           func() error { _, err := st.Put(ctx, kv.PutRequest{Key: "secret/x"}); return err },
		"delete":        func() error { _, err := st.Delete(ctx, "secret/x", kv.Condition{}); return err },
		"list":          func() error { _, err := st.List(ctx, kv.ListRequest{Prefix: "secret/"}); return err },
		"count":         func() error { _, err := st.Count(ctx, "secret/"); return err },
		"delete-prefix": func() error { _, err := st.DeletePrefix(ctx, "secret/"); return err },
		"increment":     func() error { _, err := st.Increment(ctx, "secret/n", 1); return err },
		"refresh-ttl":   func() error { _, err := st.RefreshTTL(ctx, kv.RefreshRequest{Key: "secret/x"}); return err },
		"watch":         func() error { _, err := st.Watch(ctx, kv.WatchRequest{Prefix: "secret/"}); return err },
		"batch": func() error {
			_, err := st.Batch(ctx, []kv.Op{kv.PutOp("ok", nil, 0, kv.Condition{}), kv.DeleteOp("secret/y", kv.Condition{})})
			return err
		},
	}
	for name, op := range ops {
		before := g.calls.Load()
		if err := op(); !errors.Is(err, kv.ErrPermissionDenied) {
			t.Errorf("%s under secret/: %v, want the guard's denial", name, err)
		}
		if g.calls.Load() == before {
			t.Errorf("%s did not reach the guard", name)
		}
	}
	if g, err := st.Get(ctx, "ok"); err != nil || g.Found {
		t.Fatalf("a batch with a denied op applied its other op: %+v %v", g, err)
	}
	before := g.calls.Load()
	if _, err := st.Stats(ctx); err != nil {
		t.Fatal(err)
	}
	if g.calls.Load() != before+1 {
		t.Fatal("stats did not reach the guard")
	}
}

// A plugin killed with SIGKILL under load: the host notices, restarts it,
// fails calls fast meanwhile, loses no acknowledged write (the memory
// backend loses everything on death, so this test checks acknowledgement
// and recovery; the SQLite fault test checks durability), and needs no
// restart itself.
func TestPluginKilledUnderLoad(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := host.NewMetrics(reg)
	st := openPluginStore(t, func(c *host.Config) { c.Metrics = m; c.RestartBackoffMin = 20 * time.Millisecond })
	ctx := t.Context()
	pid := st.PluginPid()
	if pid == 0 {
		t.Fatal("no plugin pid")
	}
	var failed, ok atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				_, err := st.Put(ctx, kv.PutRequest{Key: fmt.Sprintf("w%d/%d", w, i), Value: []byte("v")})
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, kv.ErrUnavailable):
					failed.Add(1)
					if msg := err.Error(); strings.Contains(msg, "unix") || strings.Contains(msg, os.TempDir()) || strings.Contains(msg, "t/default/") {
						t.Errorf("a caller's error shows internals (socket, paths or stored keys): %q", msg)
						return
					}
				default:
					t.Errorf("put during a plugin death: %v, want success or ErrUnavailable", err)
					return
				}
			}
		})
	}
	// Kill it while the writers are busy: wait until they are.
	waitFor(t, "writers to make progress", func() bool { return ok.Load() >= 100 })
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := st.WaitRestart(wctx); err != nil {
		t.Fatalf("plugin was not restarted: %v", err)
	}
	// The writers carry on against the new process.
	restartedAt := ok.Load()
	waitFor(t, "writes to succeed after the restart", func() bool { return ok.Load() >= restartedAt+100 })
	close(stop)
	wg.Wait()
	if st.PluginPid() == pid || st.PluginPid() == 0 {
		t.Fatalf("plugin pid %d after restart (was %d)", st.PluginPid(), pid)
	}
	if _, err := st.Put(ctx, kv.PutRequest{Key: "after", Value: []byte("v")}); err != nil {
		t.Fatalf("put after restart: %v", err)
	}
	if got := testutil.ToFloat64(m.Restarts()); got != 1 {
		t.Fatalf("restart counter %v, want 1", got)
	}
	t.Logf("%d puts succeeded, %d failed fast with ErrUnavailable", ok.Load(), failed.Load())
}

// killPlugin kills the store's plugin with SIGKILL and waits until the
// supervisor has started another.
func killPlugin(t *testing.T, st *host.Store) {
	t.Helper()
	if err := syscall.Kill(st.PluginPid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second) // a restart on a loaded machine
	defer cancel()
	if err := st.WaitRestart(ctx); err != nil {
		t.Fatalf("plugin was not restarted: %v", err)
	}
}

// waitFor polls cond until it holds; the bound is generous because it is
// only there to end a test that would otherwise hang, on however loaded a
// machine.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s after 60s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestBadPlugins(t *testing.T) {
	ctx := t.Context()
	_, err := host.Open(ctx, host.Config{Plugin: host.PluginConfig{Path: "/nonexistent/kvhost-plugin-x"}})
	if !errors.Is(err, kv.ErrInvalidArgument) || !strings.Contains(err.Error(), "/nonexistent/kvhost-plugin-x") {
		t.Fatalf("missing plugin: %v", err)
	}
	_, err = host.Open(ctx, host.Config{Plugin: host.PluginConfig{Path: testbin.Plugin(t, "memory"), SHA256: strings.Repeat("ab", 32)}})
	if !errors.Is(err, kv.ErrInvalidArgument) || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("checksum mismatch: %v", err)
	}
	_, err = host.Open(ctx, host.Config{Plugin: host.PluginConfig{Path: testbin.Plugin(t, "memory"), Settings: map[string]string{"bogus": "1"}}})
	if !errors.Is(err, kv.ErrInvalidArgument) || !strings.Contains(err.Error(), "bogus") {
		t.Fatalf("unknown setting: %v", err)
	}
}

// Errors name the caller's key, never the key as stored under its tenant.
func TestErrorsNameTheCallersKey(t *testing.T) {
	st := openStore(t, nil)
	ctx := as(t.Context(), "alice", "acme")
	if _, err := st.Put(ctx, kv.PutRequest{Key: "word", Value: []byte("not a number")}); err != nil {
		t.Fatal(err)
	}
	cases := map[string]func() error{
		"increment of a non-counter": func() error { _, err := st.Increment(ctx, "word", 1); return err },
		"refresh of a missing key": func() error {
			_, err := st.RefreshTTL(ctx, kv.RefreshRequest{Key: "nope", TTL: time.Second})
			return err
		},
		"conflict": func() error { _, err := st.Put(ctx, kv.PutRequest{Key: "word", Cond: kv.IfAbsent()}); return err },
		"batch conflict": func() error {
			_, err := st.Batch(ctx, []kv.Op{kv.PutOp("a", nil, 0, kv.Condition{}), kv.DeleteOp("word", kv.IfVersion(99))})
			return err
		},
	}
	for name, call := range cases {
		err := call()
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		if strings.Contains(err.Error(), "t/acme/") {
			t.Errorf("%s: message %q shows the stored key", name, err)
		}
		var ce *kv.ConflictError
		if errors.As(err, &ce) && strings.HasPrefix(ce.Key, "t/") {
			t.Errorf("%s: conflict names stored key %q", name, ce.Key)
		}
	}
}

// A plugin that stops answering (SIGSTOP) makes the store not ready and
// calls fail fast with ErrUnavailable; after the hang timeout the host
// kills it and starts a new one, and the store serves again.
func TestFrozenPluginIsRestarted(t *testing.T) {
	st := openPluginStore(t, func(c *host.Config) {
		c.PingInterval, c.PingTimeout, c.HangTimeout = 50*time.Millisecond, 500*time.Millisecond, 2*time.Second
	})
	ctx := t.Context()
	if _, err := st.Put(ctx, kv.PutRequest{Key: "k", Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	pid := st.PluginPid()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
	waitFor(t, "the store to notice the frozen plugin", func() bool { return !st.Ready() })
	// A call now fails at once rather than waiting on the frozen process;
	// its generous deadline would show as DeadlineExceeded if it waited.
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	_, err := st.Get(cctx, "k")
	cancel()
	if !errors.Is(err, kv.ErrUnavailable) && st.PluginPid() == pid {
		t.Fatalf("get while the plugin is frozen: %v, want ErrUnavailable", err)
	}
	waitFor(t, "a new plugin process", func() bool { p := st.PluginPid(); return p != 0 && p != pid && st.Ready() })
	if _, err := st.Put(ctx, kv.PutRequest{Key: "after", Value: []byte("v")}); err != nil {
		t.Fatalf("put after the restart: %v", err)
	}
	waitFor(t, "the frozen process to be gone", func() bool { return syscall.Kill(pid, 0) != nil })
}

// The memory plugin forgets everything when its process dies. A watcher
// that resumes after the restart from the revision it had reached must
// learn that its history is gone (a compacted error: list again), never
// wait silently for revisions the new process numbers from scratch, and
// the new process's revisions must not run backwards.
func TestResumeAcrossAMemoryPluginRestartIsCompacted(t *testing.T) {
	st := openPluginStore(t, func(c *host.Config) { c.RestartBackoffMin = 20 * time.Millisecond })
	ctx := t.Context()
	revision := func() int64 {
		t.Helper()
		s, err := st.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return s.Revision
	}
	for i := range 20 {
		if _, err := st.Put(ctx, kv.PutRequest{Key: fmt.Sprintf("k/%d", i), Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	last := revision()
	killPlugin(t, st)
	if _, err := st.Put(ctx, kv.PutRequest{Key: "after", Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	if now := revision(); now <= last {
		t.Errorf("the first write after the restart made revision %d, the last before it was %d: revisions ran backwards", now, last)
	}
	ws, err := st.Watch(ctx, kv.WatchRequest{StartRevision: last + 1, ProgressInterval: -1})
	if err == nil {
		_ = ws.Close()
		t.Fatalf("a watch resuming at revision %d after the plugin lost its history started; want kv.ErrCompacted", last+1)
	}
	if !errors.Is(err, kv.ErrCompacted) {
		t.Fatalf("a watch resuming at revision %d after the restart: %v, want kv.ErrCompacted", last+1, err)
	}
}
