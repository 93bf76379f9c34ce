package pluginapi_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/kvhost/kvhost/internal/latency"
	"github.com/kvhost/kvhost/internal/testbin"
	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi"
	"github.com/kvhost/kvhost/plugins/memory"
)

// BenchmarkWire measures the plugin wire itself: a no-op Ping and a point
// Get on the memory backend, in-process gRPC versus a real go-plugin
// subprocess with and without AutoMTLS. p50/p99 are per call.
func BenchmarkWire(b *testing.B) {
	type target struct {
		name string
		open func(b *testing.B) *pluginapi.Client
	}
	start := func(mtls bool) func(b *testing.B) *pluginapi.Client {
		return func(b *testing.B) *pluginapi.Client {
			p, err := pluginapi.Start(b.Context(), pluginapi.StartConfig{
				Path: testbin.Plugin(b, "memory"), DisableMTLS: !mtls,
				Logger: hclog.NewNullLogger(),
			})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(p.Kill)
			return p.Client
		}
	}
	targets := []target{
		{"inprocess", func(b *testing.B) *pluginapi.Client {
			c, err := pluginapi.ServeInProcess(b.Context(), memory.Open)
			if err != nil {
				b.Fatal(err)
			}
			if err := c.Open(b.Context(), nil); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = c.Close() })
			return c
		}},
		{"plugin-mtls", start(true)},
		{"plugin-plaintext", start(false)},
	}
	for _, tg := range targets {
		b.Run(tg.name+"/ping", func(b *testing.B) {
			c := tg.open(b)
			measure(b, func() error { return c.Ping(b.Context()) })
		})
		b.Run(tg.name+"/get", func(b *testing.B) {
			c := tg.open(b)
			if _, err := c.Put(b.Context(), kv.PutRequest{Key: "actor/1", Value: []byte("node-1:pid-4242")}); err != nil {
				b.Fatal(err)
			}
			measure(b, func() error { _, err := c.Get(b.Context(), "actor/1"); return err })
		})
		// A page of 10K entries of 100-byte values (about 1.1 MB): on the
		// memory backend, whose list is a slice of its sorted keys, this is
		// what the wire costs a large page.
		b.Run(tg.name+"/list10K", func(b *testing.B) {
			c := tg.open(b)
			ops := make([]kv.Op, 0, kv.MaxBatchOps)
			for i := range 10_000 {
				ops = append(ops, kv.PutOp(fmt.Sprintf("p%02d/k%04d", i/100, i), bytes.Repeat([]byte{'v'}, 100), 0, kv.Condition{}))
				if len(ops) == cap(ops) {
					if _, err := c.Batch(b.Context(), ops); err != nil {
						b.Fatal(err)
					}
					ops = ops[:0]
				}
			}
			req := kv.ListRequest{Limit: kv.MaxListLimit}
			measure(b, func() error {
				r, err := c.List(b.Context(), req)
				if err == nil && len(r.Entries) != 10_000 {
					err = fmt.Errorf("listed %d entries, want 10000", len(r.Entries))
				}
				return err
			})
		})
	}
}

func measure(b *testing.B, op func() error) {
	b.Helper()
	lat := latency.New(b.N)
	b.ResetTimer()
	for b.Loop() {
		if err := lat.Time(op); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	lat.Report(b)
}
