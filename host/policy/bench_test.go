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
//	BenchmarkBareCall/*     wazero calls of kvhost_evaluate on a record
//	                        written once: no engine, no deadline (plain),
//	                        wazero's WithCloseOnContextDone with one
//	                        long-lived context (closeOnDone) or with a
//	                        context.WithTimeout per call (perCallTimeout),
//	                        and our instrumented module (instrumented);
//	BenchmarkEvaluate/*     Engine.Evaluate with no policy, acl alone, and
//	                        the chain of all three, deadlines on.
//
// Each reports ns/op and p50-ns, the median of per-call timings (which
// include ~40ns of timing overhead, the same in every variant).

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
	for _, v := range []struct {
		name        string
		bin         []byte
		closeOnDone bool
		perCall     bool
	}{
		{"plain", wasm, false, false},
		{"closeOnDone", wasm, true, false},
		{"perCallTimeout", wasm, true, true},
		{"instrumented", guarded, false, false},
	} {
		b.Run(v.name, func(b *testing.B) {
			ctx := context.Background()
			cache, _ := wazero.NewCompilationCacheWithDir(cacheDir)
			r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCompilationCache(cache).WithCloseOnContextDone(v.closeOnDone))
			defer r.Close(ctx)
			wasi_snapshot_preview1.MustInstantiate(ctx, r)
			deadline := int64(0)
			r.NewHostModuleBuilder("kvhost").
				NewFunctionBuilder().WithFunc(func(context.Context, int32, int32, int32) {}).Export("log").
				NewFunctionBuilder().WithFunc(func(context.Context) {
				if deadline != 0 && time.Now().UnixNano() > deadline {
					panic("deadline")
				}
			}).Export(wasmguard.ImportName).
				Instantiate(ctx)
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
				if len(res) == 0 {
					return 0
				}
				return res[0]
			}
			ptr := uint32(call("kvhost_request_buffer", uint64(len(aclCfg))))
			m.Memory().Write(ptr, aclCfg)
			if call("kvhost_init", uint64(ptr), uint64(len(aclCfg))) != 0 {
				b.Fatal("init failed")
			}
			rec := record()
			ptr = uint32(call("kvhost_request_buffer", uint64(len(rec))))
			m.Memory().Write(ptr, rec)
			eval := m.ExportedFunction("kvhost_evaluate")
			longLived, cancel := context.WithCancel(ctx)
			defer cancel()
			stack := make([]uint64, 1)
			lat := make(timings, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				stack[0] = uint64(len(rec))
				var err error
				switch {
				case v.perCall:
					c, cancel := context.WithTimeout(ctx, time.Second)
					err = eval.CallWithStack(c, stack)
					cancel()
				case v.closeOnDone:
					err = eval.CallWithStack(longLived, stack)
				default:
					deadline = start.UnixNano() + int64(10*time.Millisecond)
					err = eval.CallWithStack(ctx, stack)
					deadline = 0
				}
				lat = append(lat, time.Since(start))
				if err != nil || stack[0] != 0 {
					b.Fatalf("evaluate: %v, answer %#x", err, stack[0])
				}
			}
			b.StopTimer()
			lat.report(b)
		})
	}
}

func BenchmarkEvaluate(b *testing.B) {
	all := exampleSpecs(b)
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
	mustLoad(b, chain, exampleSpecs(b)...)
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
	mustLoad(b, e, exampleSpecs(b)...)
	ctx := context.Background()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.Evaluate(ctx, benchReq); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// The instance is reachable from the check through the call's context;
// keep api imported for readers who look for the signature used.
var _ api.GoModuleFunc
