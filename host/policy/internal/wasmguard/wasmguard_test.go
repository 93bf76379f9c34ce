package wasmguard_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/kvhost/kvhost/host/policy/internal/wasmguard"
	wt "github.com/kvhost/kvhost/host/policy/internal/wasmtest"
	"github.com/kvhost/kvhost/policies/policytest"
)

var errDeadline = errors.New("deadline")

// guarded instantiates an instrumented module whose check aborts the call
// once deadline (unix nanos, 0: none) has passed, and counts checks and
// grows.
type guarded struct {
	mod      api.Module
	deadline atomic.Int64
	checks   atomic.Int64
	grows    atomic.Int64
}

// hostModule instantiates the imports Instrument adds: check calls check,
// grow counts into grows and grows the caller's memory as memory.grow
// would.
func hostModule(t testing.TB, r wazero.Runtime, check func(), grows *atomic.Int64) {
	t.Helper()
	_, err := r.NewHostModuleBuilder(wasmguard.ImportModule).
		NewFunctionBuilder().WithFunc(func(context.Context) { check() }).Export(wasmguard.ImportName).
		NewFunctionBuilder().WithFunc(func(_ context.Context, m api.Module, delta uint32) uint32 {
		grows.Add(1)
		prev, ok := m.Memory().Grow(delta)
		if !ok {
			return 0xffffffff
		}
		return prev
	}).Export(wasmguard.GrowName).
		NewFunctionBuilder().WithFunc(func(context.Context, int32, int32, int32) {}).Export("log").
		Instantiate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
}

func instantiate(t testing.TB, bin []byte) *guarded {
	t.Helper()
	out, _, err := wasmguard.Instrument(bin)
	if err != nil {
		t.Fatalf("Instrument: %v", err)
	}
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	t.Cleanup(func() { r.Close(ctx) })
	g := &guarded{}
	hostModule(t, r, func() {
		g.checks.Add(1)
		if d := g.deadline.Load(); d != 0 && time.Now().UnixNano() > d {
			panic(errDeadline)
		}
	}, &g.grows)
	wasi_snapshot_preview1.MustInstantiate(ctx, r)
	g.mod, err = r.InstantiateModule(ctx, mustCompile(t, r, out), wazero.NewModuleConfig().WithStartFunctions("_initialize"))
	if err != nil {
		t.Fatalf("Instantiate: %v", err)
	}
	return g
}

func mustCompile(t testing.TB, r wazero.Runtime, bin []byte) wazero.CompiledModule {
	t.Helper()
	cm, err := r.CompileModule(context.Background(), bin)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return cm
}

// callWithDeadline calls fn, which must be stopped by the deadline.
func (g *guarded) callWithDeadline(t *testing.T, d time.Duration, fn string, args ...uint64) error {
	t.Helper()
	g.deadline.Store(time.Now().Add(d).UnixNano())
	done := make(chan error, 1)
	go func() {
		_, err := g.mod.ExportedFunction(fn).Call(context.Background(), args...)
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("the deadline did not stop the function")
		return nil
	}
}

func TestDeadlineStopsLoop(t *testing.T) {
	g := instantiate(t, wt.Module{Funcs: []wt.Func{{
		Export: "spin", Results: []byte{wt.I32},
		Body: wt.Cat(wt.Loop(wt.Br(0)), wt.I32Const(0)),
	}}}.Encode())
	if err := g.callWithDeadline(t, 20*time.Millisecond, "spin"); !errors.Is(err, errDeadline) {
		t.Fatalf("err = %v, want the deadline", err)
	}
}

// Work per step is weighed: bulk memory instructions by their length, a
// loop iteration by the size of its body. Before, each of these loops paid
// one step per iteration, and ran 1-10 s past a 10 ms deadline.
func TestDeadlineStopsHeavyLoops(t *testing.T) {
	const mib = 1 << 20
	cases := []struct {
		name  string
		pages uint32
		body  []byte
	}{
		{"memory.fill", 64, wt.Loop(wt.I32Const(0), wt.I32Const(7), wt.I32Const(4*mib), wt.MemoryFill, wt.Br(0))},
		{"memory.copy", 64, wt.Loop(wt.I32Const(2*mib), wt.I32Const(0), wt.I32Const(2*mib), wt.MemoryCopy, wt.Br(0))},
		{"long body", 1, wt.Loop(wt.StraightLine(60000), wt.Br(0))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := instantiate(t, wt.Module{MemoryPages: c.pages, Funcs: []wt.Func{{
				Export: "spin", Results: []byte{wt.I32},
				Body: wt.Cat(c.body, wt.I32Const(0)),
			}}}.Encode())
			const deadline = 10 * time.Millisecond
			start := time.Now()
			err := g.callWithDeadline(t, deadline, "spin")
			took := time.Since(start)
			if !errors.Is(err, errDeadline) {
				t.Fatalf("err = %v, want the deadline", err)
			}
			t.Logf("stopped after %v, %d checks", took, g.checks.Load())
			// A regression guard, not a timing assertion: 20 times the
			// deadline for -race on a busy machine.
			if took > 20*deadline {
				t.Fatalf("a %v deadline stopped the loop only after %v", deadline, took)
			}
		})
	}
}

// memory.grow becomes a call of the grow import, and still grows: the host
// sees every grow, refused ones too.
func TestGrowIsAHostCall(t *testing.T) {
	m := wt.Module{MemoryPages: 1, MemoryMax: 4, Funcs: []wt.Func{{
		Export: "f", Results: []byte{wt.I32, wt.I32, wt.I32},
		Body: wt.Cat(
			wt.I32Const(2), wt.MemoryGrow, // 1: the old size
			wt.I32Const(5), wt.MemoryGrow, // -1: past the module's maximum
			[]byte{0x3f, 0x00}, // memory.size: 3
		),
	}}}
	if _, st, err := wasmguard.Instrument(m.Encode()); err != nil || st.Grows != 2 {
		t.Fatalf("stats %+v, err %v; want 2 grows", st, err)
	}
	g := instantiate(t, m.Encode())
	res, err := g.mod.ExportedFunction("f").Call(context.Background())
	if err != nil || res[0] != 1 || int32(res[1]) != -1 || res[2] != 3 {
		t.Fatalf("f() = %v, %v; want [1 -1 3]", res, err)
	}
	if n := g.grows.Load(); n != 2 {
		t.Fatalf("the host saw %d grows, want 2", n)
	}
}

// Bulk instructions still work, with their length, on the stack.
func TestBulkStillWorks(t *testing.T) {
	m := wt.Module{MemoryPages: 1, Funcs: []wt.Func{{
		Export: "f", Results: []byte{wt.I32},
		Body: wt.Cat(
			wt.I32Const(100), wt.I32Const(42), wt.I32Const(10), wt.MemoryFill, // mem[100:110] = 42
			wt.I32Const(200), wt.I32Const(105), wt.I32Const(3), wt.MemoryCopy, // mem[200:203] = mem[105:108]
			wt.I32Const(202), []byte{0x2d, 0x00, 0x00}, // i32.load8_u
		),
	}}}
	if _, st, err := wasmguard.Instrument(m.Encode()); err != nil || st.Bulk != 2 {
		t.Fatalf("stats %+v, err %v; want 2 bulk instructions", st, err)
	}
	g := instantiate(t, m.Encode())
	res, err := g.mod.ExportedFunction("f").Call(context.Background())
	if err != nil || res[0] != 42 {
		t.Fatalf("f() = %v, %v; want 42", res, err)
	}
}

// The charge of a loop grows with its body: as many iterations of a body
// of 20 000 instructions as make ten Intervals' worth of steps call the
// check about ten times (before, one step each, they did not reach it).
func TestLongBodyIsCharged(t *testing.T) {
	body := wt.Cat(
		wt.Loop(
			wt.StraightLine(20000),
			wt.LocalGet(0), wt.I32Const(1), []byte{0x6b}, []byte{0x22, 0x00}, // local.tee 0 (i-1)
			wt.BrIf(0),
		),
		wt.I32Const(0),
	)
	g := instantiate(t, wt.Module{MemoryPages: 1, Funcs: []wt.Func{{
		Export: "f", Params: []byte{wt.I32}, Results: []byte{wt.I32}, Body: body,
	}}}.Encode())
	before := g.checks.Load()
	if _, err := g.mod.ExportedFunction("f").Call(context.Background(), 10*wasmguard.Interval*wasmguard.InstrsPerStep/20000); err != nil {
		t.Fatal(err)
	}
	if n := g.checks.Load() - before; n < 8 || n > 12 {
		t.Fatalf("%d checks, want about 10", n)
	}
}

// fib without any loop: only the function-entry check can stop it.
func TestDeadlineStopsRecursionWithoutLoops(t *testing.T) {
	body := wt.Cat(
		wt.LocalGet(0), wt.I64Const(2), []byte{0x54}, // i64.lt_u
		[]byte{0x04, wt.I64}, // if (result i64)
		wt.LocalGet(0),
		[]byte{0x05},                                             // else
		wt.LocalGet(0), wt.I64Const(1), []byte{0x7d}, wt.Call(0), // fib(n-1)
		wt.LocalGet(0), wt.I64Const(2), []byte{0x7d}, wt.Call(0), // fib(n-2)
		[]byte{0x7c}, // i64.add
		[]byte{0x0b},
	)
	g := instantiate(t, wt.Module{Funcs: []wt.Func{{
		Export: "fib", Params: []byte{wt.I64}, Results: []byte{wt.I64}, Body: body,
	}}}.Encode())
	// The instrumented function still computes, through the renumbered call.
	res, err := g.mod.ExportedFunction("fib").Call(context.Background(), 20)
	if err != nil || res[0] != 6765 {
		t.Fatalf("fib(20) = %v, %v; want 6765", res, err)
	}
	if g.checks.Load() == 0 {
		t.Fatal("21891 calls made no check")
	}
	if err := g.callWithDeadline(t, 20*time.Millisecond, "fib", 90); !errors.Is(err, errDeadline) {
		t.Fatalf("err = %v, want the deadline", err)
	}
}

// Function indices shift by two: imports, calls, exports, tables and
// ref.func must all still reach the right functions.
func TestRenumbering(t *testing.T) {
	ctx := context.Background()
	m := wt.Module{
		Imports: []wt.Import{{Module: "env", Name: "seven", Results: []byte{wt.I32}}},
		Funcs: []wt.Func{
			{Export: "a", Results: []byte{wt.I32}, Body: wt.Cat(wt.Call(0), wt.Call(2), []byte{0x6a})}, // seven() + b()
			{Export: "b", Results: []byte{wt.I32}, Body: wt.I32Const(35)},
		},
	}
	out, st, err := wasmguard.Instrument(m.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if st.Functions != 2 {
		t.Fatalf("stats %+v", st)
	}
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	r.NewHostModuleBuilder("env").NewFunctionBuilder().WithFunc(func() int32 { return 7 }).Export("seven").Instantiate(ctx)
	hostModule(t, r, func() {}, new(atomic.Int64))
	mod, err := r.Instantiate(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	res, err := mod.ExportedFunction("a").Call(ctx)
	if err != nil || res[0] != 42 {
		t.Fatalf("a() = %v, %v; want 42", res, err)
	}
}

// A real Go module (runtime, tables, indirect calls, name section) keeps
// working, and a runaway Go loop is stopped.
func TestGoModule(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go policy")
	}
	path := policytest.Build(t, "host/policy/testdata/misbehave")
	bin, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	g := instantiate(t, bin)
	if v, err := g.mod.ExportedFunction("kvhost_abi_version").Call(context.Background()); err != nil || v[0] != 1 {
		t.Fatalf("abi version = %v, %v", v, err)
	}
	if g.checks.Load() == 0 {
		t.Fatal("the Go runtime's start made no check")
	}
}

func TestRefusals(t *testing.T) {
	withStart := wt.Module{Funcs: []wt.Func{{}}, HasStart: true}.Encode()
	if _, _, err := wasmguard.Instrument(withStart); err == nil || !strings.Contains(err.Error(), "start section") {
		t.Fatalf("start section: err = %v", err)
	}
	if _, _, err := wasmguard.Instrument([]byte("hello world")); err == nil {
		t.Fatal("garbage accepted")
	}
	// A module naming a global it does not have would reach ours.
	sneaky := wt.Module{Funcs: []wt.Func{{Body: wt.Cat(wt.I32Const(1), []byte{0x24, 0x00})}}}.Encode()
	if _, _, err := wasmguard.Instrument(sneaky); err == nil || !strings.Contains(err.Error(), "global 0 does not exist") {
		t.Fatalf("sneaky global.set: err = %v", err)
	}
	for _, name := range []string{wasmguard.ImportName, wasmguard.GrowName} {
		reserved := wt.Module{Imports: []wt.Import{{Module: wasmguard.ImportModule, Name: name}}}.Encode()
		if _, _, err := wasmguard.Instrument(reserved); err == nil || !strings.Contains(err.Error(), "reserved") {
			t.Fatalf("reserved import %s: err = %v", name, err)
		}
	}
	// A count beyond the section's bytes is refused before wazero
	// allocates for it (found by FuzzInstrument: the host ran out of
	// memory on 40 bytes).
	huge := []byte("\x00asm\x01\x00\x00\x00\x0b\x1b\xff\xff\xff\xff\x04000000\xff\x7f000000000\xff\x00\x00\x000")
	if _, _, err := wasmguard.Instrument(huge); err == nil || !strings.Contains(err.Error(), "entries claimed") {
		t.Fatalf("a data section claiming 2^32 segments: err = %v", err)
	}
	// Every truncation is refused or yields a module; none panics.
	bin := wt.Module{MemoryPages: 1, Funcs: wt.PolicyFuncs(wt.Cat(wt.Loop(wt.Loop()), wt.I64Const(0)))}.Encode()
	for i := 0; i < len(bin); i++ {
		_, _, _ = wasmguard.Instrument(bin[:i])
	}
	_, st, err := wasmguard.Instrument(bin)
	if err != nil || st.Functions != 4 || st.Loops != 2 || st.Bulk != 0 {
		t.Fatalf("stats %+v, err %v; want 4 functions, 2 loops", st, err)
	}
}

// FuzzInstrument: no input makes Instrument panic, and what it accepts
// and wazero compiles stays compilable.
func FuzzInstrument(f *testing.F) {
	f.Add(wt.Module{MemoryPages: 1, Funcs: wt.PolicyFuncs(wt.Cat(wt.Loop(wt.Br(0)), wt.I64Const(0)))}.Encode())
	f.Add(wt.Module{Imports: []wt.Import{{Module: "env", Name: "f"}}, Funcs: []wt.Func{{Export: "g", Body: wt.Call(0)}}}.Encode())
	f.Add(wt.Module{MemoryPages: 1, Funcs: []wt.Func{{Export: "g", Results: []byte{wt.I32}, Body: wt.Cat(wt.I32Const(1), wt.MemoryGrow)}}}.Encode())
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	f.Fuzz(func(t *testing.T, bin []byte) {
		out, _, err := wasmguard.Instrument(bin)
		if err != nil {
			return
		}
		if _, err := r.CompileModule(ctx, bin); err != nil {
			return // the original is invalid anyway
		}
		if _, err := r.CompileModule(ctx, out); err != nil {
			t.Fatalf("valid module became invalid: %v", err)
		}
	})
}
