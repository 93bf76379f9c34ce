// Package benchkit is the harness the backends' benchmarks share, so that
// every backend's table in docs/PERFORMANCE.md is measured the same way:
// the same data, the same latency percentiles, and the same side-by-side
// runs (the plugin against its ping, the plugin and the store against raw
// driver calls) in one benchmark, so that their ratios hold on a machine
// whose load moves.
package benchkit

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/kvhost/kvhost/kv"
)

// Value is the 100-byte value every benchmark stores.
var Value = bytes.Repeat([]byte("v"), 100)

// Keys10K is 100 prefixes of 100 keys each: p00/k0000 .. p99/k9999.
func Keys10K() []string {
	keys := make([]string, 0, 10000)
	for p := range 100 {
		for k := range 100 {
			keys = append(keys, fmt.Sprintf("p%02d/k%04d", p, p*100+k))
		}
	}
	return keys
}

// Latencies records per-op durations.
type Latencies []time.Duration

// Time records the time since start.
func (l *Latencies) Time(start time.Time) { *l = append(*l, time.Since(start)) }

// Percentiles returns p50 and p99 in microseconds.
func (l Latencies) Percentiles() (p50, p99 float64) {
	if len(l) == 0 {
		return 0, 0
	}
	slices.Sort(l)
	pct := func(p float64) float64 {
		return float64(l[min(len(l)-1, int(float64(len(l))*p))].Nanoseconds()) / 1e3
	}
	return pct(0.50), pct(0.99)
}

// Report adds p50-us and p99-us to b.
func (l Latencies) Report(b *testing.B) {
	p50, p99 := l.Percentiles()
	b.ReportMetric(p50, "p50-us")
	b.ReportMetric(p99, "p99-us")
}

// Side is one way of doing an operation.
type Side struct {
	Name string
	Op   func() error
}

// Each runs every side as a sub-benchmark of its own, one call per
// iteration, reporting p50 and p99.
func Each(b *testing.B, sides ...Side) {
	for _, s := range sides {
		b.Run(s.Name, func(b *testing.B) {
			lat := make(Latencies, 0, b.N)
			for b.Loop() {
				start := time.Now()
				if err := s.Op(); err != nil {
					b.Fatal(err)
				}
				lat.Time(start)
			}
			lat.Report(b)
		})
	}
}

// Interleave runs one call of each side per iteration, in an order that
// rotates, so that all of them see the same load on a shared machine; it
// reports each side's p50 in ms and the ratio of each side's p50 to the
// p50 of the side named base, which no sequence of separate
// sub-benchmarks can measure while the machine's load moves under them.
func Interleave(b *testing.B, base string, sides ...Side) {
	lat := make([]Latencies, len(sides))
	i := 0
	for b.Loop() {
		for j := range sides {
			k := (i + j) % len(sides)
			start := time.Now()
			if err := sides[k].Op(); err != nil {
				b.Fatalf("%s: %v", sides[k].Name, err)
			}
			lat[k].Time(start)
		}
		i++
	}
	p50 := map[string]float64{}
	for j, s := range sides {
		p50[s.Name], _ = lat[j].Percentiles()
		b.ReportMetric(p50[s.Name]/1e3, s.Name+"-ms")
	}
	for _, s := range sides {
		if s.Name != base {
			b.ReportMetric(p50[s.Name]/p50[base], s.Name+"/"+base)
		}
	}
}

// VersusPing alternates a ping and a get in one loop, so that both see the
// same load, and reports both and their ratio (p50-ratio, p99-ratio): the
// point get's bar is stated against the plugin's ping.
func VersusPing(b *testing.B, ping func() error, get func(i int) error) {
	b.Run("plugin-vs-ping", func(b *testing.B) {
		pings := make(Latencies, 0, b.N)
		gets := make(Latencies, 0, b.N)
		i := 0
		for b.Loop() {
			start := time.Now()
			if err := ping(); err != nil {
				b.Fatal(err)
			}
			pings.Time(start)
			start = time.Now()
			if err := get(i); err != nil {
				b.Fatal(err)
			}
			gets.Time(start)
			i++
		}
		pp50, pp99 := pings.Percentiles()
		gp50, gp99 := gets.Percentiles()
		b.ReportMetric(pp50, "ping-p50-us")
		b.ReportMetric(pp99, "ping-p99-us")
		b.ReportMetric(gp50, "get-p50-us")
		b.ReportMetric(gp99, "get-p99-us")
		b.ReportMetric(gp50/pp50, "p50-ratio")
		b.ReportMetric(gp99/pp99, "p99-ratio")
	})
}

// Spread is the i-th key of keys in an order that visits them all without
// walking them in sequence.
func Spread(keys []string, i int) string { return keys[(i*7919)%len(keys)] }

// BatchKeys returns a source of fresh key sets of kv.MaxBatchOps keys each
// (batch/000001/0000 ...), so that every batch inserts new keys.
func BatchKeys() func() []string {
	round := 0
	return func() []string {
		round++
		keys := make([]string, kv.MaxBatchOps)
		for i := range keys {
			keys[i] = fmt.Sprintf("batch/%06d/%04d", round, i)
		}
		return keys
	}
}

// PutOps are unconditional puts of Value under keys.
func PutOps(keys []string) []kv.Op {
	ops := make([]kv.Op, len(keys))
	for i, k := range keys {
		ops[i] = kv.PutOp(k, Value, 0, kv.Condition{})
	}
	return ops
}
