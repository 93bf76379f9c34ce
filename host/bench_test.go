package host_test

import (
	"testing"

	"github.com/kvhost/kvhost/internal/latency"
	"github.com/kvhost/kvhost/kv"
)

// BenchmarkStoreGet is the host library's cost over the bare plugin call:
// identity, limits, tenancy, metrics and supervision around a Get on the
// memory plugin.
func BenchmarkStoreGet(b *testing.B) {
	st := openStore(b, nil)
	ctx := b.Context()
	if _, err := st.Put(ctx, kv.PutRequest{Key: "actor/1", Value: []byte("node-1")}); err != nil {
		b.Fatal(err)
	}
	lat := latency.New(b.N)
	for b.Loop() {
		if err := lat.Time(func() error { _, err := st.Get(ctx, "actor/1"); return err }); err != nil {
			b.Fatal(err)
		}
	}
	lat.Report(b)
}
