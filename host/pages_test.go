package host_test

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/kvhost/kvhost/host"
	"github.com/kvhost/kvhost/kv"
	"github.com/prometheus/client_golang/prometheus"
)

// /metrics says how the plugin's list pages crossed, and the counts carry
// on over a plugin restart: an operator sees a plugin that stopped using
// shared memory, or pages reclaimed because calls were slow.
func TestListPagesAreCounted(t *testing.T) {
	// The shared page area is Linux's (memfd); elsewhere every page is
	// counted on the connection.
	large := "shared_memory"
	if runtime.GOOS != "linux" {
		large = "connection"
	}
	reg := prometheus.NewRegistry()
	st := openPluginStore(t, func(c *host.Config) {
		c.Metrics = host.NewMetrics(reg)
		c.RestartBackoffMin = 20 * time.Millisecond
	})
	ctx := t.Context()
	fill := func() {
		var ops []kv.Op
		for i := range 2000 { // 2000 × 100 bytes: a page well over the 64 KiB threshold
			ops = append(ops, kv.PutOp(fmt.Sprintf("k/%05d", i), bytes.Repeat([]byte{'v'}, 100), 0, kv.Condition{}))
			if len(ops) == kv.MaxBatchOps {
				if _, err := st.Batch(ctx, ops); err != nil {
					t.Fatal(err)
				}
				ops = ops[:0]
			}
		}
	}
	list := func(limit int) {
		r, err := st.List(ctx, kv.ListRequest{Prefix: "k/", Limit: limit})
		if err != nil || len(r.Entries) != limit {
			t.Fatalf("list %d: %d entries, %v", limit, len(r.Entries), err)
		}
	}
	fill()
	list(2000)
	list(10)
	want := func(largePages, smallPages float64) {
		t.Helper()
		counts := map[string]float64{"shared_memory": 0, "connection": smallPages}
		counts[large] += largePages
		for via, n := range counts {
			if got := pageCount(t, reg, via); got != n {
				t.Errorf("%v pages counted via %s, want %v", got, via, n)
			}
		}
	}
	want(1, 1)

	// The memory backend forgets everything when killed; fill it again.
	killPlugin(t, st)
	fill()
	list(2000)
	want(2, 1)
}

func pageCount(t *testing.T, reg *prometheus.Registry, via string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "kvhost_plugin_list_pages_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "via" && l.GetValue() == via {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no kvhost_plugin_list_pages_total{via=%q} in the registry", via)
	return 0
}
