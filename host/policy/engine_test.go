package policy_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvhost/kvhost/host/policy"
	wt "github.com/kvhost/kvhost/host/policy/internal/wasmtest"
	"github.com/kvhost/kvhost/kv"
)

func TestEmptyChainAllows(t *testing.T) {
	e := newEngine(t, nil)
	d, err := eval(t, e, policy.Request{Op: policy.OpPut, Key: "k", TTL: time.Second})
	if err != nil || !d.Allow || d.TTL != time.Second {
		t.Fatal(describe(d, err))
	}
}

func TestDenialNamesPolicyAndReason(t *testing.T) {
	e := newEngine(t, nil)
	dir := t.TempDir()
	mustLoad(t, e, policy.Spec{Name: "gate", Path: writeWasm(t, dir, "gate.wasm", handModule(nil, denyRecord("closed", "the gate is closed")))})
	d, err := eval(t, e, policy.Request{Op: policy.OpGet, Key: "a"})
	if d.Allow || d.Policy != "gate" || d.Reason != "the gate is closed" || d.Code != "closed" {
		t.Fatal(describe(d, err))
	}
	if !errors.Is(err, policy.ErrDenied) || !errors.Is(err, kv.ErrPermissionDenied) {
		t.Fatalf("err %v does not wrap ErrDenied and ErrPermissionDenied", err)
	}
	if want := `kvhost: permission denied: policy "gate": the gate is closed`; err.Error() != want {
		t.Fatalf("err = %q, want %q", err, want)
	}
	var de *policy.DeniedError
	if !errors.As(err, &de) || de.Policy != "gate" {
		t.Fatalf("err %v is not a *DeniedError for gate", err)
	}
}

func TestTTLRewriteFeedsTheNextPolicy(t *testing.T) {
	e := newEngine(t, nil)
	dir := t.TempDir()
	mustLoad(t, e,
		policy.Spec{Name: "rewrite", Path: writeWasm(t, dir, "r.wasm", handModule(nil, ttlRecord(90*time.Second)))},
		policy.Spec{Name: "echo", Path: built(t, "host/policy/testdata/misbehave")},
	)
	d, err := eval(t, e, policy.Request{Op: policy.OpPut, Key: "echo/x", TTL: time.Hour})
	if err == nil || !strings.Contains(d.Reason, "ttl=1m30s") {
		t.Fatalf("the second policy did not see the rewritten TTL: %s", describe(d, err))
	}
	d, err = eval(t, e, policy.Request{Op: policy.OpPut, Key: "other", TTL: time.Hour})
	if err != nil || !d.Allow || d.TTL != 90*time.Second || !d.TTLRewritten || d.Policy != "rewrite" {
		t.Fatal(describe(d, err))
	}
}

func TestRequestReachesThePolicy(t *testing.T) {
	e := newEngine(t, nil)
	mustLoad(t, e, policy.Spec{Name: "echo", Path: built(t, "host/policy/testdata/misbehave"), Timeout: generousTimeout})
	now := time.UnixMilli(1_700_000_000_123)
	d, _ := eval(t, e, policy.Request{Op: policy.OpDeletePrefix, Key: "echo/p", Principal: "alice", Tenant: "t1",
		TTL: 1500 * time.Millisecond, ValueLen: 7, Now: now, InBatch: true})
	want := "op=delete_prefix key=echo/p principal=alice tenant=t1 ttl=1.5s len=7 now=1700000000123 batch=true"
	if d.Reason != want {
		t.Fatalf("reason = %q, want %q", d.Reason, want)
	}
	// Value bytes reach a policy that declared it needs them.
	d, err := eval(t, e, policy.Request{Op: policy.OpPut, Key: "value/x", Value: []byte("this is forbidden")})
	if d.Allow || d.Code != "bad_value" {
		t.Fatal(describe(d, err))
	}
}

// failClosed checks that a misbehaving module fails closed with a clear
// error, then that the engine still serves.
func failClosed(t *testing.T, e *policy.Engine, key string, kind policy.FailureKind, mention string) {
	t.Helper()
	start := time.Now()
	d, err := eval(t, e, policy.Request{Op: policy.OpGet, Key: key})
	var fe *policy.FailureError
	if d.Allow || !errors.As(err, &fe) || fe.Kind != kind || !errors.Is(err, policy.ErrPolicyFailed) {
		t.Fatalf("%s: want a %v failure, got %s", key, kind, describe(d, err))
	}
	if !strings.Contains(err.Error(), mention) {
		t.Fatalf("%s: error %q does not mention %q", key, err, mention)
	}
	t.Logf("%s: %v after %v", key, err, time.Since(start).Round(time.Millisecond))
	for i := 0; i < 3; i++ {
		if d, err := eval(t, e, policy.Request{Op: policy.OpGet, Key: "fine"}); err != nil || !d.Allow {
			t.Fatalf("after %s the engine does not serve: %s", key, describe(d, err))
		}
	}
}

func TestMisbehavingModulesFailClosed(t *testing.T) {
	e := newEngine(t, nil)
	dir := t.TempDir()
	bin := handModule(wt.Cat(
		onKey('l', spin),
		onKey('t', wt.Unreachable),
		onKey('m', growForever),
	), nil)
	// 1 page + 4 x 16 reaches the limit exactly. Growing is slow on a busy
	// machine, hence a long deadline for this module.
	mustLoad(t, e, policy.Spec{Name: "hand", Path: writeWasm(t, dir, "hand.wasm", bin), PoolSize: 2, MemoryLimitPages: 65, Timeout: 5 * time.Second})
	failClosed(t, e, "trap", policy.FailTrap, "unreachable")
	failClosed(t, e, "memory", policy.FailOutOfMemory, "memory limit of 65 pages")
	mustLoad(t, e, policy.Spec{Name: "hand", Path: writeWasm(t, dir, "hand.wasm", bin), PoolSize: 2})
	failClosed(t, e, "loop", policy.FailTimeout, "10ms deadline")
}

func TestMisbehavingGoPolicyFailsClosed(t *testing.T) {
	e := newEngine(t, nil)
	mustLoad(t, e, policy.Spec{Name: "gopolicy", Path: built(t, "host/policy/testdata/misbehave"), MemoryLimitPages: 256, Timeout: 50 * time.Millisecond})
	failClosed(t, e, "loop/1", policy.FailTimeout, "50ms deadline")
	failClosed(t, e, "panic/1", policy.FailCrash, "panic: policy bug on panic/1")
	mustLoad(t, e, policy.Spec{Name: "gopolicy", Path: built(t, "host/policy/testdata/misbehave"), MemoryLimitPages: 256, Timeout: 5 * time.Second})
	failClosed(t, e, "alloc/1", policy.FailOutOfMemory, "memory limit")
}

func TestDeadlineIsPrompt(t *testing.T) {
	e := newEngine(t, nil)
	dir := t.TempDir()
	mustLoad(t, e, policy.Spec{Name: "spin", Timeout: 20 * time.Millisecond, Path: writeWasm(t, dir, "s.wasm", handModule(onKey('l', spin), nil))})
	start := time.Now()
	_, err := eval(t, e, policy.Request{Op: policy.OpGet, Key: "loop"})
	took := time.Since(start)
	if err == nil {
		t.Fatal("the loop was allowed")
	}
	// 20ms deadline; a generous bound for -race and a busy machine.
	if took > 500*time.Millisecond {
		t.Fatalf("the loop ran for %v", took)
	}
}

// Work per step is weighed (docs/RATIONALE.md, "Policy deadlines"): loops
// of bulk memory instructions over megabytes, or with a long straight-line
// body, are stopped close to the deadline. Each paid one step per
// iteration before, and ran for 0.5-10 s past a 10 ms deadline.
func TestHeavyLoopsMeetTheDeadline(t *testing.T) {
	const mib = 1 << 20
	e := newEngine(t, nil)
	dir := t.TempDir()
	bin := wt.Module{MemoryPages: 64, Funcs: wt.PolicyFuncs(wt.Cat(
		onKey('b', wt.Loop(wt.I32Const(0), wt.I32Const(7), wt.I32Const(4*mib), wt.MemoryFill, wt.Br(0))),
		onKey('c', wt.Loop(wt.I32Const(2*mib), wt.I32Const(0), wt.I32Const(2*mib), wt.MemoryCopy, wt.Br(0))),
		onKey('s', wt.Loop(wt.StraightLine(60000), wt.Br(0))),
		wt.I64Const(0),
	))}.Encode()
	const deadline = 10 * time.Millisecond
	mustLoad(t, e, policy.Spec{Name: "heavy", Path: writeWasm(t, dir, "heavy.wasm", bin), Timeout: deadline})
	for _, key := range []string{"blank", "copy", "straight"} {
		start := time.Now()
		failClosed(t, e, key, policy.FailTimeout, "10ms deadline")
		// A regression guard, not a timing assertion: 20 times the
		// deadline leaves room for -race and a busy machine.
		if took := time.Since(start); took > 20*deadline {
			t.Errorf("%s: a %v deadline stopped the policy only after %v", key, deadline, took)
		}
	}
}

func TestFailOpen(t *testing.T) {
	e := newEngine(t, nil)
	dir := t.TempDir()
	mustLoad(t, e, policy.Spec{Name: "buggy", FailOpen: true, Path: writeWasm(t, dir, "b.wasm", handModule(onKey('t', wt.Unreachable), nil))})
	d, err := eval(t, e, policy.Request{Op: policy.OpGet, Key: "trap"})
	if err != nil || !d.Allow {
		t.Fatalf("fail-open policy refused: %s", describe(d, err))
	}
}

func TestMissingExportRefused(t *testing.T) {
	e := newEngine(t, nil)
	dir := t.TempDir()
	funcs := wt.PolicyFuncs(wt.I64Const(0))
	bin := wt.Module{MemoryPages: 1, Funcs: funcs[:3]}.Encode()
	err := e.Load(context.Background(), []policy.Spec{{Name: "partial", Path: writeWasm(t, dir, "p.wasm", bin)}})
	if !errors.Is(err, policy.ErrInvalidPolicy) || !strings.Contains(err.Error(), "missing export kvhost_evaluate (i32) -> (i64)") {
		t.Fatalf("err = %v", err)
	}
	// A wrong signature and a foreign import are named too.
	funcs[3].Results = []byte{wt.I32}
	funcs[3].Body = wt.I32Const(0)
	bin = wt.Module{MemoryPages: 1, Funcs: funcs, Imports: []wt.Import{{Module: "env", Name: "open"}}}.Encode()
	err = e.Load(context.Background(), []policy.Spec{{Name: "wrong", Path: writeWasm(t, dir, "w.wasm", bin)}})
	for _, want := range []string{"export kvhost_evaluate is (i32) -> (i32)", "imports env.open"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("err = %v, want mention of %q", err, want)
		}
	}
	if d, err := eval(t, e, policy.Request{Op: policy.OpGet, Key: "a"}); err != nil || !d.Allow {
		t.Fatalf("the engine stopped serving: %s", describe(d, err))
	}
}

func TestInitFailureRefused(t *testing.T) {
	e := newEngine(t, nil)
	err := e.Load(context.Background(), []policy.Spec{{Name: "cfg", Path: built(t, "host/policy/testdata/misbehave"), Config: []byte(`{"fail_init":"rule 3 is nonsense"}`)}})
	if !errors.Is(err, policy.ErrInvalidPolicy) || !strings.Contains(err.Error(), "rule 3 is nonsense") {
		t.Fatalf("err = %v", err)
	}
}

func TestAuditModeLogsButAllows(t *testing.T) {
	logs := &syncBuffer{}
	e := newEngine(t, logs)
	dir := t.TempDir()
	mustLoad(t, e,
		policy.Spec{Name: "strict", Mode: policy.Audit, Path: writeWasm(t, dir, "s.wasm", handModule(nil, denyRecord("nope", "strict says no")))},
		policy.Spec{Name: "shorten", Mode: policy.Audit, Path: writeWasm(t, dir, "t.wasm", handModule(nil, ttlRecord(time.Second)))},
		policy.Spec{Name: "broken", Mode: policy.Audit, Path: writeWasm(t, dir, "b.wasm", handModule(onKey('t', wt.Unreachable), nil))},
	)
	d, err := eval(t, e, policy.Request{Op: policy.OpPut, Key: "trap", TTL: time.Hour})
	if err != nil || !d.Allow || d.TTL != time.Hour || d.TTLRewritten {
		t.Fatalf("audit mode enforced: %s", describe(d, err))
	}
	out := logs.String()
	for _, want := range []string{"audit: would deny", "strict says no", "audit: would rewrite TTL", "evaluation failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

// generousTimeout is the policy deadline of tests that check what a
// policy decides, not its deadline: a loaded machine may deschedule an
// evaluation for longer than the 10 ms default, which is no bug.
const generousTimeout = 10 * time.Second

func TestGuestLogIsRateLimited(t *testing.T) {
	logs := &syncBuffer{}
	e := newEngine(t, logs)
	mustLoad(t, e, policy.Spec{Name: "chatty", Path: built(t, "host/policy/testdata/misbehave"), Timeout: generousTimeout})
	if _, err := eval(t, e, policy.Request{Op: policy.OpGet, Key: "log/1"}); err != nil {
		t.Fatal(err)
	}
	n := strings.Count(logs.String(), "log line")
	if n == 0 || n > 60 {
		t.Fatalf("%d of 100 log lines got through; want some, at most the burst", n)
	}
}

func TestConcurrentEvaluationsWithFailures(t *testing.T) {
	e := newEngine(t, nil)
	dir := t.TempDir()
	mustLoad(t, e, policy.Spec{Name: "mix", PoolSize: 2, Timeout: 5 * time.Millisecond,
		Path: writeWasm(t, dir, "m.wasm", handModule(wt.Cat(onKey('l', spin), onKey('t', wt.Unreachable)), nil))})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				key := "ok"
				switch (g + i) % 10 {
				case 0:
					key = "loop"
				case 5:
					key = "trap"
				}
				d, err := eval(t, e, policy.Request{Op: policy.OpGet, Key: key})
				if key == "ok" && (err != nil || !d.Allow) {
					errs <- err
					return
				}
				if key != "ok" && d.Allow {
					errs <- errors.New(key + " was allowed")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// Host functions check the deadline themselves (docs/RATIONALE.md,
// "Policy deadlines"): the instrumentation charges a call to one a single
// step, so a loop of random_get on 1 MiB, or fd_write of many megabytes,
// ran for seconds between two of its checks.
func TestHostCallsMeetTheDeadline(t *testing.T) {
	const (
		mib   = 1 << 20
		buf   = 64 << 10 // 1 MiB at 64 KiB
		iovs  = 512      // fd_write vectors, each the whole buffer
		nIovs = 1000
	)
	var vecs []byte
	for i := 0; i < nIovs; i++ {
		vecs = binary.LittleEndian.AppendUint32(vecs, buf)
		vecs = binary.LittleEndian.AppendUint32(vecs, mib)
	}
	const randomGet, fdWrite, log = 0, 1, 2
	bin := wt.Module{
		Imports: []wt.Import{
			{Module: "wasi_snapshot_preview1", Name: "random_get", Params: []byte{wt.I32, wt.I32}, Results: []byte{wt.I32}},
			{Module: "wasi_snapshot_preview1", Name: "fd_write", Params: []byte{wt.I32, wt.I32, wt.I32, wt.I32}, Results: []byte{wt.I32}},
			{Module: "kvhost", Name: "log", Params: []byte{wt.I32, wt.I32, wt.I32}},
		},
		MemoryPages: 32,
		Data:        []wt.Data{{Offset: iovs, Bytes: vecs}},
		Funcs: wt.PolicyFuncs(wt.Cat(
			onKey('r', wt.Loop(wt.I32Const(buf), wt.I32Const(mib), wt.Call(randomGet), wt.Drop, wt.Br(0))),
			onKey('w', wt.Loop(wt.I32Const(1), wt.I32Const(iovs), wt.I32Const(1), wt.I32Const(0), wt.Call(fdWrite), wt.Drop, wt.Br(0))),
			onKey('v', wt.Loop(wt.I32Const(2), wt.I32Const(iovs), wt.I32Const(nIovs), wt.I32Const(0), wt.Call(fdWrite), wt.Drop, wt.Br(0))),
			onKey('l', wt.Loop(wt.I32Const(3), wt.I32Const(buf), wt.I32Const(mib), wt.Call(log), wt.Br(0))),
			wt.I64Const(0),
		)),
	}.Encode()
	e := newEngine(t, nil)
	const deadline = 10 * time.Millisecond
	mustLoad(t, e, policy.Spec{Name: "hostcalls", Path: writeWasm(t, t.TempDir(), "h.wasm", bin), Timeout: deadline, MemoryLimitPages: 64})
	for _, key := range []string{"random_get", "write", "vectors", "log"} {
		start := time.Now()
		failClosed(t, e, key, policy.FailTimeout, "10ms deadline")
		// 20 times the deadline leaves room for -race and a busy machine.
		if took := time.Since(start); took > 20*deadline {
			t.Errorf("%s: a %v deadline stopped the policy only after %v", key, deadline, took)
		}
	}
}

// Reaching the memory cap fails the evaluation closed, whatever the module
// does next: here it allows. Before, growing to the cap (or asking for more
// and getting -1) and then answering allow was allowed.
func TestMemoryCapFailsClosed(t *testing.T) {
	grow := func(pages int32) []byte { return wt.Cat(wt.I32Const(pages), wt.MemoryGrow, wt.Drop) }
	bin := handModule(wt.Cat(
		onKey('c', grow(64)),  // 1 + 64: the cap exactly
		onKey('p', grow(100)), // past the cap
		onKey('u', grow(16)),  // well under it
	), nil)
	e := newEngine(t, nil)
	mustLoad(t, e, policy.Spec{Name: "greedy", Path: writeWasm(t, t.TempDir(), "g.wasm", bin), MemoryLimitPages: 65, PoolSize: 1})
	failClosed(t, e, "cap", policy.FailOutOfMemory, "reached its memory limit of 65 pages")
	failClosed(t, e, "past", policy.FailOutOfMemory, "reached its memory limit of 65 pages")
	if d, err := eval(t, e, policy.Request{Op: policy.OpGet, Key: "under"}); err != nil || !d.Allow {
		t.Fatalf("growing under the cap: %s", describe(d, err))
	}
	// A module that would start at its cap, or a cap WebAssembly cannot
	// have, is refused at load.
	for _, tc := range []struct {
		pages uint32
		want  string
	}{
		{1, "initial memory of 1 pages reaches the memory limit of 1 pages"},
		{65537, "memory limit of 65537 pages is over WebAssembly's 65536"},
	} {
		err := e.Load(context.Background(), []policy.Spec{{Name: "tight", Path: writeWasm(t, t.TempDir(), "g.wasm", bin), MemoryLimitPages: tc.pages}})
		if !errors.Is(err, policy.ErrInvalidPolicy) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("limit of %d pages: err = %v, want %q", tc.pages, err, tc.want)
		}
	}
}

// Time in memory.grow counts against the deadline: a policy that grows its
// memory a page at a time, under a cap it cannot reach in time, is stopped
// near its deadline. Before, memory.grow was one step however long it
// took, and each grow past the buffer's capacity copied the whole memory:
// the same loop ran 0.7 s past a 10 ms deadline under the default cap of
// 512 pages, 8 s under 4096 (-race).
func TestGrowingMemoryMeetsTheDeadline(t *testing.T) {
	bin := handModule(onKey('g', wt.Loop(wt.I32Const(1), wt.MemoryGrow, wt.Drop, wt.Br(0))), nil)
	e := newEngine(t, nil)
	const deadline = 10 * time.Millisecond
	mustLoad(t, e, policy.Spec{Name: "grower", Path: writeWasm(t, t.TempDir(), "g.wasm", bin), MemoryLimitPages: 65536, Timeout: deadline, PoolSize: 1})
	start := time.Now()
	failClosed(t, e, "grow", policy.FailTimeout, "10ms deadline")
	// A regression guard, not a timing assertion: 10 times the deadline
	// leaves room for -race and a busy machine.
	if took := time.Since(start); took > 10*deadline {
		t.Errorf("a %v deadline stopped the policy only after %v", deadline, took)
	}
}

// Compile fills the compilation cache ahead of a Load, without running
// the module, and refuses what Load would not compile.
func TestCompileFillsTheCache(t *testing.T) {
	dir, cache := t.TempDir(), t.TempDir()
	e, err := policy.NewEngine(context.Background(), policy.Options{CacheDir: cache, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	// This one would trap at its first call: Compile does not run it.
	good := writeWasm(t, dir, "g.wasm", handModule(wt.Unreachable, nil))
	if err := e.Compile(context.Background(), good); err != nil {
		t.Fatal(err)
	}
	var files int
	filepath.WalkDir(cache, func(_ string, d fs.DirEntry, _ error) error {
		if d != nil && !d.IsDir() {
			files++
		}
		return nil
	})
	if files == 0 {
		t.Fatal("Compile left the cache empty")
	}
	for _, path := range []string{filepath.Join(dir, "missing.wasm"), writeWasm(t, dir, "bad.wasm", []byte("\x00asm\x01\x00\x00\x00garbage"))} {
		if err := e.Compile(context.Background(), path); !errors.Is(err, policy.ErrInvalidPolicy) {
			t.Errorf("%s: err = %v, want ErrInvalidPolicy", path, err)
		}
	}
}
