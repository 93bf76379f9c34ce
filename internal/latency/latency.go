// Package latency records per-operation latencies in benchmarks and
// reports their percentiles beside ns/op, so a benchmark states p50 and
// p99 and not only a mean.
package latency

import (
	"slices"
	"testing"
	"time"
)

// Recorder holds one benchmark's samples.
type Recorder struct{ samples []time.Duration }

// New returns a Recorder with room for n samples.
func New(n int) *Recorder { return &Recorder{samples: make([]time.Duration, 0, n)} }

// Time runs op and records how long it took.
func (r *Recorder) Time(op func() error) error {
	t0 := time.Now()
	err := op()
	r.samples = append(r.samples, time.Since(t0))
	return err
}

// Add records one sample.
func (r *Recorder) Add(d time.Duration) { r.samples = append(r.samples, d) }

// Report adds p50-ns and p99-ns metrics to b.
func (r *Recorder) Report(b *testing.B) {
	b.Helper()
	Report(b, r.samples)
}

// Report adds p50-ns and p99-ns metrics for samples to b (it sorts them).
func Report(b *testing.B, samples []time.Duration) {
	b.Helper()
	if len(samples) == 0 {
		return
	}
	slices.Sort(samples)
	b.ReportMetric(float64(samples[len(samples)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(samples[len(samples)*99/100].Nanoseconds()), "p99-ns")
}
