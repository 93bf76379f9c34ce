package policy_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kvhost/kvhost/host/policy"
)

func versioned(v string) []byte { return handModule(nil, denyRecord("version", v)) }

// replace writes a file the way deploy tools do: a temporary file renamed
// over the old one.
func replace(tb testing.TB, path string, data []byte) {
	tb.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		tb.Fatal(err)
	}
}

func reasonOf(tb testing.TB, e *policy.Engine) string {
	tb.Helper()
	d, _ := eval(tb, e, policy.Request{Op: policy.OpGet, Key: "k"})
	return d.Reason
}

func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestReloadSwapsAndRefusesBrokenVersions(t *testing.T) {
	reg := prometheus.NewRegistry()
	e, err := policy.NewEngine(context.Background(), policy.Options{CacheDir: cacheDir, Metrics: reg, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	path := filepath.Join(t.TempDir(), "p.wasm")
	replace(t, path, versioned("v1"))
	mustLoad(t, e, policy.Spec{Name: "p", Path: path})
	if r := reasonOf(t, e); r != "v1" {
		t.Fatalf("reason %q", r)
	}
	// Unchanged: nothing is rebuilt.
	if err := e.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	replace(t, path, versioned("v2"))
	if err := e.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := reasonOf(t, e); r != "v2" {
		t.Fatalf("after reload: reason %q", r)
	}
	for _, broken := range [][]byte{[]byte("not wasm"), versioned("v3")[:40], handModule(nil, nil)[:0]} {
		replace(t, path, broken)
		if err := e.Reload(context.Background()); !errors.Is(err, policy.ErrInvalidPolicy) {
			t.Fatalf("broken module: err = %v", err)
		}
		if r := reasonOf(t, e); r != "v2" {
			t.Fatalf("after a refused reload: reason %q, want v2 still running", r)
		}
	}
	for result, want := range map[string]float64{"ok": 2, "unchanged": 1, "refused": 3} {
		if got := testutil.ToFloat64(mustCounter(t, reg, "kvhost_policy_reloads_total", "result", result)); got != want {
			t.Errorf("reloads{%s} = %v, want %v", result, got, want)
		}
	}
}

func mustCounter(tb testing.TB, reg *prometheus.Registry, name, label, value string) prometheus.Collector {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "x"}, func() float64 { return m.GetCounter().GetValue() })
				}
			}
		}
	}
	return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "x"}, func() float64 { return 0 })
}

func TestWatchFollowsFiles(t *testing.T) {
	logs := &syncBuffer{}
	e := newEngine(t, logs)
	dir := t.TempDir()
	path := filepath.Join(dir, "p.wasm")
	replace(t, path, versioned("v1"))
	ttlCfg := filepath.Join(dir, "ttl.yaml")
	if err := os.WriteFile(ttlCfg, []byte("rules:\n  - {prefix: 'n:', max: 60s}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustLoad(t, e,
		policy.Spec{Name: "ttl", Path: built(t, "policies/ttlrules"), ConfigPath: ttlCfg, PoolSize: 1},
		policy.Spec{Name: "p", Path: path, PoolSize: 1},
	)
	ctx, cancel := context.WithCancel(context.Background())
	watched := make(chan error, 1)
	go func() { watched <- e.Watch(ctx) }()
	defer func() {
		cancel()
		if err := <-watched; err != nil {
			t.Errorf("Watch: %v", err)
		}
	}()
	waitFor(t, "the watcher to start", func() bool { return strings.Contains(logs.String(), "watching files for changes") })

	replace(t, path, versioned("v2"))
	waitFor(t, "v2 to load", func() bool { return reasonOf(t, e) == "v2" })

	// A broken file is refused; the next good one loads.
	replace(t, path, []byte("garbage"))
	waitFor(t, "the broken file to be refused", func() bool {
		return strings.Contains(logs.String(), "reload after a file change refused")
	})
	if r := reasonOf(t, e); r != "v2" {
		t.Fatalf("after a broken file: reason %q", r)
	}
	replace(t, path, versioned("v3"))
	waitFor(t, "v3 to load", func() bool { return reasonOf(t, e) == "v3" })

	// A configuration file change reconfigures without recompiling.
	long := policy.Request{Op: policy.OpPut, Key: "n:1", TTL: 2 * time.Minute}
	if d, _ := eval(t, e, long); d.Policy != "ttl" {
		t.Fatalf("2m TTL with max 60s: %+v", d)
	}
	if err := os.WriteFile(ttlCfg, []byte("rules:\n  - {prefix: 'n:', max: 5m}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new TTL configuration", func() bool { d, _ := eval(t, e, long); return d.Policy == "p" })
}

// Evaluations in flight during swaps finish on the version they started
// with; none fails.
func TestSwapUnderLoad(t *testing.T) {
	e := newEngine(t, nil)
	path := filepath.Join(t.TempDir(), "p.wasm")
	replace(t, path, versioned("v0"))
	mustLoad(t, e, policy.Spec{Name: "p", Path: path, PoolSize: 2})
	var stop atomic.Bool
	var wg sync.WaitGroup
	var bad atomic.Value
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				d, err := e.Evaluate(context.Background(), policy.Request{Op: policy.OpGet, Key: "k"})
				if !errors.Is(err, policy.ErrDenied) || !strings.HasPrefix(d.Reason, "v") {
					bad.Store(describe(d, err))
					return
				}
			}
		}()
	}
	for i := 1; i <= 10; i++ {
		replace(t, path, versioned("v"+string(rune('0'+i%10))))
		if err := e.Reload(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if b := bad.Load(); b != nil {
		t.Fatalf("an evaluation during swaps: %v", b)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	e, err := policy.NewEngine(context.Background(), policy.Options{CacheDir: cacheDir, Metrics: reg, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	dir := t.TempDir()
	mustLoad(t, e,
		policy.Spec{Name: "spin", Path: writeWasm(t, dir, "s.wasm", handModule(onKey('l', spin), nil))},
		policy.Spec{Name: "gate", Path: writeWasm(t, dir, "g.wasm", handModule(nil, denyRecord("closed", "closed"))), Mode: policy.Audit},
	)
	eval(t, e, policy.Request{Op: policy.OpGet, Key: "loop"})
	eval(t, e, policy.Request{Op: policy.OpGet, Key: "ok"})
	out, err := testutil.GatherAndCount(reg)
	if err != nil || out == 0 {
		t.Fatalf("gather: %d, %v", out, err)
	}
	if n, _ := testutil.GatherAndCount(reg, "kvhost_policy_failures_total"); n != 1 {
		t.Fatalf("failure series: %d", n)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP kvhost_policy_failures_total Policy failures by kind: timeout, trap, out_of_memory, crash, bad_answer, unavailable.
# TYPE kvhost_policy_failures_total counter
kvhost_policy_failures_total{kind="timeout",policy="spin"} 1
# HELP kvhost_policy_denials_total Policy denials by policy, code and mode (audit denials are not enforced).
# TYPE kvhost_policy_denials_total counter
kvhost_policy_denials_total{code="closed",mode="audit",policy="gate"} 1
`), "kvhost_policy_failures_total", "kvhost_policy_denials_total"); err != nil {
		t.Fatal(err)
	}
	if n, _ := testutil.GatherAndCount(reg, "kvhost_policy_evaluation_seconds"); n != 2 {
		t.Fatalf("latency series: %d", n)
	}
	// A second engine on the same registry is refused with a clear error.
	if _, err := policy.NewEngine(context.Background(), policy.Options{Metrics: reg}); err == nil || !strings.Contains(err.Error(), "already registered") {
		t.Fatalf("second engine: %v", err)
	}
}

// Log lines say which policy loaded and which were rebuilt, and only a
// refused load that leaves a chain running says the running policies
// stay: the offline tools (policy test, bench) load into an empty engine.
func TestLoadLogsNameThePolicies(t *testing.T) {
	logs := &syncBuffer{}
	e := newEngine(t, logs)
	dir := t.TempDir()
	bad := writeWasm(t, dir, "bad.wasm", []byte("not wasm"))
	good := writeWasm(t, dir, "good.wasm", handModule(nil, nil))
	if err := e.Load(context.Background(), []policy.Spec{{Name: "broken", Path: bad}}); err == nil {
		t.Fatal("a broken module loaded")
	}
	if strings.Contains(logs.String(), "running policies stay") {
		t.Fatalf("with nothing running, the log says:\n%s", logs)
	}
	mustLoad(t, e, policy.Spec{Name: "good", Path: good})
	if !strings.Contains(logs.String(), `msg="policy: chain loaded" policies=[good] rebuilt=[good]`) {
		t.Fatalf("the load's line does not name the policy:\n%s", logs)
	}
	if err := e.Load(context.Background(), []policy.Spec{{Name: "good", Path: good}, {Name: "broken", Path: bad}}); err == nil {
		t.Fatal("a broken module loaded")
	}
	if !strings.Contains(logs.String(), `running policies stay" policy=broken path=`+bad) {
		t.Fatalf("a refused load beside a running chain is not logged by name:\n%s", logs)
	}
}
