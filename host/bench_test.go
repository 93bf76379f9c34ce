package host_test

import (
	"sort"
	"testing"
	"time"

	"github.com/kvhost/kvhost/pluginapi"
)

// BenchmarkStoreGet is the host library's cost over the bare plugin call:
// identity, limits, tenancy, metrics and supervision around a Get on the
// memory plugin.
func BenchmarkStoreGet(b *testing.B) {
	st := openStore(b, nil)
	ctx := b.Context()
	if _, err := st.Put(ctx, pluginapi.PutRequest{Key: "actor/1", Value: []byte("node-1")}); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	for b.Loop() {
		t0 := time.Now()
		if _, err := st.Get(ctx, "actor/1"); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}
