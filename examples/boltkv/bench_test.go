package boltkv_test

// BenchmarkSideBySide runs each operation on four backends in one loop,
// in rotating order, so that all of them see the same load on a shared
// machine (benchkit.Interleave): the hand-written memory backend (the
// base of the ratios), the kit on its MemStore, this example on bbolt
// with and without fsync, and SQLite as configured by default. All run
// in-process, without the plugin wire, which would add the same round trip
// to each. docs/PERFORMANCE.md ("The backend kit") records the figures:
//
//	go test -run '^$' -bench SideBySide -benchtime 2000x -count 3 ./
import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/kvhost/kvhost/examples/boltkv"
	"github.com/kvhost/kvhost/internal/benchkit"
	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi/kit"
	"github.com/kvhost/kvhost/plugins/memory"
	"github.com/kvhost/kvhost/plugins/sqlite"
)

type benchBackend struct {
	name string
	b    kv.Backend
}

// benchBackends opens the backends under comparison, each loaded with the
// 10K keys of benchkit.Keys10K.
func benchBackends(b *testing.B) []benchBackend {
	ctx := context.Background()
	dir := b.TempDir()
	kitMem, err := kit.New(ctx, kit.NewMemStore(), "kit-memory", "bench")
	must(b, err)
	bolt, err := boltkv.Open(ctx, map[string]string{"path": filepath.Join(dir, "bolt.db")})
	must(b, err)
	boltNoSync, err := boltkv.Open(ctx, map[string]string{"path": filepath.Join(dir, "bolt-nosync.db"), "sync": "false"})
	must(b, err)
	lite, err := sqlite.New(ctx, sqlite.Config{Path: filepath.Join(dir, "sqlite.db")})
	must(b, err)
	all := []benchBackend{{"memory", memory.New()}, {"kit-memory", kitMem}, {"boltkv", bolt}, {"boltkv-nosync", boltNoSync}, {"sqlite", lite}}
	keys := benchkit.Keys10K()
	for _, bb := range all {
		b.Cleanup(func() { _ = bb.b.Close() })
		for i := 0; i < len(keys); i += kv.MaxBatchOps {
			_, err := bb.b.Batch(ctx, benchkit.PutOps(keys[i:i+kv.MaxBatchOps]))
			must(b, err)
		}
	}
	return all
}

func BenchmarkSideBySide(b *testing.B) {
	ctx := context.Background()
	all := benchBackends(b)
	keys := benchkit.Keys10K()
	ops := []struct {
		name string
		op   func(be kv.Backend, i int) error
	}{
		{"get", func(be kv.Backend, i int) error { _, err := be.Get(ctx, benchkit.Spread(keys, i)); return err }},
		{"put", func(be kv.Backend, i int) error {
			_, err := be.Put(ctx, kv.PutRequest{Key: benchkit.Spread(keys, i), Value: benchkit.Value})
			return err
		}},
		{"put-ttl", func(be kv.Backend, i int) error {
			_, err := be.Put(ctx, kv.PutRequest{Key: benchkit.Spread(keys, i), Value: benchkit.Value, TTL: 1 << 40})
			return err
		}},
		{"increment", func(be kv.Backend, i int) error {
			_, err := be.Increment(ctx, fmt.Sprintf("n%d", i%100), 1)
			return err
		}},
		{"list-100", func(be kv.Backend, i int) error {
			_, err := be.List(ctx, kv.ListRequest{Prefix: fmt.Sprintf("p%02d/", i%100)})
			return err
		}},
		{"list-10K", func(be kv.Backend, _ int) error {
			_, err := be.List(ctx, kv.ListRequest{Limit: kv.MaxListLimit})
			return err
		}},
		{"count-10K", func(be kv.Backend, _ int) error { _, err := be.Count(ctx, "p"); return err }},
	}
	for _, o := range ops {
		b.Run(o.name, func(b *testing.B) { interleave(b, all, o.op) })
	}
	// Each batch inserts 1K keys that no backend holds yet.
	next := benchkit.BatchKeys()
	b.Run("batch-1K", func(b *testing.B) {
		interleave(b, all, func(be kv.Backend, _ int) error {
			_, err := be.Batch(ctx, benchkit.PutOps(next()))
			return err
		})
	})
}

// interleave is benchkit.Interleave over every backend, the i-th call of
// each with the same i.
func interleave(b *testing.B, all []benchBackend, op func(kv.Backend, int) error) {
	sides := make([]benchkit.Side, len(all))
	for j, bb := range all {
		i := 0
		sides[j] = benchkit.Side{Name: bb.name, Op: func() error { i++; return op(bb.b, i) }}
	}
	benchkit.Interleave(b, "memory", sides...)
}
