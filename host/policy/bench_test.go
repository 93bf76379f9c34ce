package policy_test

import (
	"context"
	"encoding/binary"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/kvhost/kvhost/host/policy"
	"github.com/kvhost/kvhost/host/policy/internal/wasmguard"
)

// The benchmarks compare, on the acl policy and the request below (which
// every example policy allows, the common case):
//
//	BenchmarkBareCall       wazero calls of kvhost_evaluate on a record
//	                        written once, no engine, four deadline designs
//	                        interleaved;
//	BenchmarkEvaluate/*     Engine.Evaluate with no policy, acl alone, and
//	                        the chain of all three, deadlines on.
//
// They report medians of per-call timings (which include ~40-60ns of
// clock reads, the same in every variant).
//
// Deadlines are on, but generous (benchTimeout): the instrumentation
// checks the clock at the same points whatever the deadline, so its value
// does not change the cost measured, while a 10 ms deadline fails an
// evaluation whenever a loaded machine deschedules it for 10 ms, which is
// no bug of the code under measurement. An evaluation that fails anyway
// fails the benchmark.
const benchTimeout = time.Minute

// benchSpecs are the example policies with the benchmarks' deadline.
func benchSpecs(b *testing.B) []policy.Spec {
	specs := exampleSpecs(b)
	for i := range specs {
		specs[i].Timeout = benchTimeout
	}
	return specs
}

var benchReq = policy.Request{Op: policy.OpPut, Key: "app/users/42", Principal: "alice", Tenant: "acme", ValueLen: 100}

// record encodes benchReq by hand, per policies/ABI.md.
func record() []byte {
	r := benchReq
	b := make([]byte, 48)
	b[0], b[1] = 1, byte(r.Op)
	binary.LittleEndian.PutUint16(b[2:], 48)
	binary.LittleEndian.PutUint64(b[16:], uint64(time.Now().UnixMilli()))
	binary.LittleEndian.PutUint32(b[24:], uint32(r.ValueLen))
	binary.LittleEndian.PutUint32(b[28:], uint32(len(r.Key)))
	binary.LittleEndian.PutUint32(b[32:], uint32(len(r.Principal)))
	binary.LittleEndian.PutUint32(b[36:], uint32(len(r.Tenant)))
	return append(append(append(b, r.Key...), r.Principal...), r.Tenant...)
}

type timings []time.Duration

func (t timings) report(b *testing.B) {
	if len(t) == 0 {
		return
	}
	slices.Sort(t)
	b.ReportMetric(float64(t[len(t)/2].Nanoseconds()), "p50-ns")
}

// BenchmarkBareCall calls kvhost_evaluate of the acl policy directly on
// wazero, in four set-ups interleaved in one loop (so that all four see
// the same machine): plain (no deadline at all), closeOnDone (wazero's
// WithCloseOnContextDone with one long-lived context), perCallTimeout
// (the same plus a context.WithTimeout per call) and instrumented (our
// module rewrite with its deadline check). It reports each one's median.
func BenchmarkBareCall(b *testing.B) {
	aclCfg := []byte(`{"rules": [{"principals": ["alice"], "prefixes": ["app/"], "operations": ["read", "write"]}]}`)
	wasm, err := os.ReadFile(built(b, "policies/acl"))
	if err != nil {
		b.Fatal(err)
	}
	guarded, _, err := wasmguard.Instrument(wasm)
	if err != nil {
		b.Fatal(err)
	}
	type variant struct {
		name        string
		bin         []byte
		closeOnDone bool
		perCall     bool
		eval        api.Function
		lat         timings
	}
	variants := []*variant{
		{name: "plain", bin: wasm},
		{name: "closeOnDone", bin: wasm, closeOnDone: true},
		{name: "perCallTimeout", bin: wasm, closeOnDone: true, perCall: true},
		{name: "instrumented", bin: guarded},
	}
	ctx := context.Background()
	rec := record()
	var deadline int64
	cache, _ := wazero.NewCompilationCacheWithDir(cacheDir)
	for _, v := range variants {
		r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCompilationCache(cache).WithCloseOnContextDone(v.closeOnDone))
		defer r.Close(ctx)
		wasi_snapshot_preview1.MustInstantiate(ctx, r)
		_, err := r.NewHostModuleBuilder("kvhost").
			NewFunctionBuilder().WithFunc(func(context.Context, int32, int32, int32) {}).Export("log").
			NewFunctionBuilder().WithFunc(func(context.Context) {
			if deadline != 0 && time.Now().UnixNano() > deadline {
				panic("deadline")
			}
		}).Export(wasmguard.ImportName).
			NewFunctionBuilder().WithFunc(func(_ context.Context, m api.Module, pages uint32) uint32 {
			prev, ok := m.Memory().Grow(pages)
			if !ok {
				return 0xffffffff
			}
			return prev
		}).Export(wasmguard.GrowName).
			Instantiate(ctx)
		if err != nil {
			b.Fatal(err)
		}
		cm, err := r.CompileModule(ctx, v.bin)
		if err != nil {
			b.Fatal(err)
		}
		m, err := r.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithName("").WithStartFunctions("_initialize"))
		if err != nil {
			b.Fatal(err)
		}
		call := func(name string, args ...uint64) uint64 {
			res, err := m.ExportedFunction(name).Call(ctx, args...)
			if err != nil {
				b.Fatal(err)
			}
			return res[0]
		}
		ptr := uint32(call("kvhost_request_buffer", uint64(len(aclCfg))))
		m.Memory().Write(ptr, aclCfg)
		if call("kvhost_init", uint64(ptr), uint64(len(aclCfg))) != 0 {
			b.Fatal("init failed")
		}
		ptr = uint32(call("kvhost_request_buffer", uint64(len(rec))))
		m.Memory().Write(ptr, rec)
		v.eval = m.ExportedFunction("kvhost_evaluate")
		v.lat = make(timings, 0, b.N)
	}
	longLived, cancel := context.WithCancel(ctx)
	defer cancel()
	stack := make([]uint64, 1)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, v := range variants {
			start := time.Now()
			stack[0] = uint64(len(rec))
			var err error
			switch {
			case v.perCall:
				c, cancel := context.WithTimeout(ctx, time.Second)
				err = v.eval.CallWithStack(c, stack)
				cancel()
			case v.closeOnDone:
				err = v.eval.CallWithStack(longLived, stack)
			default:
				deadline = start.UnixNano() + int64(benchTimeout)
				err = v.eval.CallWithStack(ctx, stack)
				deadline = 0
			}
			v.lat = append(v.lat, time.Since(start))
			if err != nil || stack[0] != 0 {
				b.Fatalf("%s: evaluate: %v, answer %#x", v.name, err, stack[0])
			}
		}
	}
	b.StopTimer()
	for _, v := range variants {
		slices.Sort(v.lat)
		b.ReportMetric(float64(v.lat[len(v.lat)/2].Nanoseconds()), v.name+"-p50-ns")
	}
}

func BenchmarkEvaluate(b *testing.B) {
	all := benchSpecs(b)
	for _, v := range []struct {
		name  string
		specs []policy.Spec
	}{
		{"none", nil},
		{"acl", all[2:]},
		{"chain", all},
	} {
		b.Run(v.name, func(b *testing.B) {
			e := newEngine(b, nil)
			mustLoad(b, e, v.specs...)
			ctx := context.Background()
			for i := 0; i < 1000; i++ {
				if _, err := e.Evaluate(ctx, benchReq); err != nil {
					b.Fatal(err)
				}
			}
			lat := make(timings, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				d, err := e.Evaluate(ctx, benchReq)
				lat = append(lat, time.Since(start))
				if err != nil || !d.Allow {
					b.Fatal(describe(d, err))
				}
			}
			b.StopTimer()
			lat.report(b)
		})
	}
}

// BenchmarkChainAdds is the measure: the same operation with no
// policy and with the chain of all three, interleaved in one loop so that
// both see the same machine, and the difference of their medians.
func BenchmarkChainAdds(b *testing.B) {
	none, chain := newEngine(b, nil), newEngine(b, nil)
	mustLoad(b, chain, benchSpecs(b)...)
	ctx := context.Background()
	for i := 0; i < 1000; i++ {
		chain.Evaluate(ctx, benchReq)
	}
	without := make(timings, 0, b.N)
	with := make(timings, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		none.Evaluate(ctx, benchReq)
		mid := time.Now()
		d, err := chain.Evaluate(ctx, benchReq)
		end := time.Now()
		without = append(without, mid.Sub(start))
		with = append(with, end.Sub(mid))
		if err != nil || !d.Allow {
			b.Fatal(describe(d, err))
		}
	}
	b.StopTimer()
	slices.Sort(without)
	slices.Sort(with)
	p50 := func(t timings) float64 { return float64(t[len(t)/2].Nanoseconds()) }
	b.ReportMetric(p50(without), "p50-none-ns")
	b.ReportMetric(p50(with), "p50-chain-ns")
	b.ReportMetric(p50(with)-p50(without), "p50-added-ns")
	b.ReportMetric(float64(with[len(with)*99/100].Nanoseconds()), "p99-chain-ns")
}

func BenchmarkEvaluateParallel(b *testing.B) {
	e := newEngine(b, nil)
	mustLoad(b, e, benchSpecs(b)...)
	ctx := context.Background()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.Evaluate(ctx, benchReq); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkLoad measures loading the chain of three: compiling (cold, an
// empty compilation cache) or reading compiled code from the cache
// (warm), then starting and warming two instances of each policy.
func BenchmarkLoad(b *testing.B) {
	specs := exampleSpecs(b)
	for _, cold := range []bool{true, false} {
		name := "warm"
		if cold {
			name = "cold"
		}
		b.Run(name, func(b *testing.B) {
			dir := b.TempDir()
			if !cold {
				dir = cacheDir
			}
			for i := 0; i < b.N; i++ {
				if cold {
					dir = b.TempDir()
				}
				e, err := policy.NewEngine(context.Background(), policy.Options{CacheDir: dir, Logger: discardLogger()})
				if err != nil {
					b.Fatal(err)
				}
				mustLoad(b, e, specs...)
				e.Close(context.Background())
			}
		})
	}
}
