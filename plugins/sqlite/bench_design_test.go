package sqlite

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/kvhost/kvhost/internal/benchkit"
	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi"
)

// Benchmarks behind the design choices docs/PERFORMANCE.md records: the
// table layout, and what history and always-built watch events cost a
// write.

// BenchmarkLayout compares the kv table as an ordinary rowid table plus
// its primary key index (what the schema uses) with WITHOUT ROWID, on the
// in-process Store.
func BenchmarkLayout(b *testing.B) {
	ctx := context.Background()
	keys := make([]string, 100_000)
	for i := range keys {
		keys[i] = fmt.Sprintf("p%02d/k%06d", i%100, i)
	}
	slices.Sort(keys)
	for _, layout := range []string{"rowid", "without-rowid"} {
		s, err := New(ctx, Config{Path: filepath.Join(b.TempDir(), "kv.db"), withoutRowID: layout == "without-rowid"})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		// Insert in a shuffled order, as real keys arrive.
		shuffled := slices.Clone(keys)
		for i := range shuffled {
			j := (i * 7919) % len(shuffled)
			shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
		}
		for chunk := range slices.Chunk(shuffled, kv.MaxBatchOps) {
			ops := make([]kv.Op, len(chunk))
			for i, k := range chunk {
				ops[i] = kv.PutOp(k, benchkit.Value, 0, kv.Condition{})
			}
			if _, err := s.Batch(ctx, ops); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(layout+"/get", func(b *testing.B) {
			i := 0
			for b.Loop() {
				if _, err := s.Get(ctx, keys[(i*7919)%len(keys)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
		b.Run(layout+"/list-1000", func(b *testing.B) {
			for b.Loop() {
				if r, err := s.List(ctx, kv.ListRequest{Prefix: "p42/"}); err != nil || len(r.Entries) != 1000 {
					b.Fatal(err, len(r.Entries))
				}
			}
		})
		b.Run(layout+"/stats-100K", func(b *testing.B) {
			for b.Loop() {
				if _, err := s.Stats(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
		round := 0
		b.Run(layout+"/batch-1K-random", func(b *testing.B) {
			for b.Loop() {
				round++
				ops := make([]kv.Op, kv.MaxBatchOps)
				for i := range ops {
					ops[i] = kv.PutOp(fmt.Sprintf("p%02d/n%04d-%06d", i%100, i, round), benchkit.Value, 0, kv.Condition{})
				}
				if _, err := s.Batch(ctx, ops); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkHistoryCost measures what history costs a write, on three
// in-process stores written alternately in one loop so that all see the
// same load on the machine: "history" as configured by default (rows
// written and pruned past DefaultHistory), "unpruned" (rows written,
// retention too large to prune) and "none" (Config.noHistory, for this
// benchmark only: no rows).
func BenchmarkHistoryCost(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	stores := []struct {
		name string
		cfg  Config
	}{
		{"history", Config{}},
		{"unpruned", Config{History: math.MaxInt32}},
		{"none", Config{noHistory: true}},
	}
	open := make([]*Store, len(stores))
	for i, st := range stores {
		cfg := st.cfg
		cfg.Path = filepath.Join(dir, st.name+".db")
		s, err := New(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		open[i] = s
	}
	sideBySide := func(name string, op func(s *Store, i int) error) {
		b.Run(name, func(b *testing.B) {
			lat := make([]benchkit.Latencies, len(open))
			i := 0
			for b.Loop() {
				for j, s := range open {
					start := time.Now()
					if err := op(s, i); err != nil {
						b.Fatal(err)
					}
					lat[j].Time(start)
				}
				i++
			}
			p50 := make([]float64, len(open))
			for j := range open {
				p50[j], _ = lat[j].Percentiles()
				b.ReportMetric(p50[j], stores[j].name+"-p50-us")
			}
			b.ReportMetric(p50[0]-p50[2], "cost-p50-us")
		})
	}
	// Puts cycle through 10K keys, replacing values as real traffic does.
	sideBySide("put", func(s *Store, i int) error {
		_, err := s.Put(ctx, kv.PutRequest{Key: fmt.Sprintf("put/%05d", (i*7919)%10000), Value: benchkit.Value})
		return err
	})
	sideBySide("batch-1K", func(s *Store, i int) error {
		ops := make([]kv.Op, kv.MaxBatchOps)
		for j := range ops {
			ops[j] = kv.PutOp(fmt.Sprintf("batch/%06d/%04d", i, j), benchkit.Value, 0, kv.Condition{})
		}
		_, err := s.Batch(ctx, ops)
		return err
	})
}

// BenchmarkPublishUnwatched measures what every commit now pays for
// building its events and publishing them when nobody watches, which the
// store used to skip: an event with a cloned 100-byte value, and
// WatchHub.Publish to no subscriber.
func BenchmarkPublishUnwatched(b *testing.B) {
	hub := pluginapi.NewWatchHub(0)
	var rev int64
	for b.Loop() {
		rev++
		hub.Publish(kv.Event{Type: kv.EventPut, Key: "put/00042", Value: bytes.Clone(benchkit.Value), Version: rev, Revision: rev})
	}
}
