package main_test

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvhost/kvhost/client"
	"github.com/kvhost/kvhost/internal/latency"
)

// End-to-end figures: Go client -> kvhost (gRPC, auth, limits, tenancy)
// -> SQLite plugin (go-plugin gRPC) -> SQLite file. Each benchmark reports
// per-op p50 and p99 alongside ns/op; with 16 concurrent clients ns/op is
// the inverse of throughput.

func benchServer(b *testing.B) *client.Client {
	b.Helper()
	s := startServerB(b, "auth: {anonymous: true}\n")
	c, err := client.New(s)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	return c
}

func benchOps(b *testing.B, workers int, op func(c *client.Client, i int) error) {
	c := benchServer(b)
	for i := range 1000 {
		if _, err := c.Put(b.Context(), fmt.Sprintf("actor/%06d", i), []byte("node-1:pid-4242")); err != nil {
			b.Fatal(err)
		}
	}
	lat := make([]time.Duration, b.N)
	var next atomic.Int64
	b.ResetTimer()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				t0 := time.Now()
				if err := op(c, i); err != nil {
					b.Error(err)
					return
				}
				lat[i] = time.Since(t0)
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	latency.Report(b, lat)
}

func BenchmarkE2EGet(b *testing.B) {
	for _, w := range []int{1, 16} {
		b.Run(fmt.Sprintf("clients=%d", w), func(b *testing.B) {
			benchOps(b, w, func(c *client.Client, i int) error {
				_, err := c.Get(b.Context(), fmt.Sprintf("actor/%06d", i%1000))
				return err
			})
		})
	}
}

func BenchmarkE2EPut(b *testing.B) {
	for _, w := range []int{1, 16} {
		b.Run(fmt.Sprintf("clients=%d", w), func(b *testing.B) {
			benchOps(b, w, func(c *client.Client, i int) error {
				_, err := c.Put(b.Context(), fmt.Sprintf("actor/%06d", i%1000), []byte("node-2:pid-4243"))
				return err
			})
		})
	}
}

func BenchmarkE2ERefreshTTL(b *testing.B) {
	benchOps(b, 1, func(c *client.Client, i int) error {
		_, err := c.RefreshTTL(b.Context(), fmt.Sprintf("actor/%06d", i%1000), time.Minute)
		return err
	})
}

// BenchmarkE2EGetCache: a point get through the API on SQLite with the
// host's read cache (the default) and without it, interleaved call by
// call so that both see the same load; reports each side's p50/p99 and
// the ratio.
func BenchmarkE2EGetCache(b *testing.B) {
	clients := map[string]*client.Client{}
	for name, config := range map[string]string{
		"cached":   "auth: {anonymous: true}\n",
		"uncached": "auth: {anonymous: true}\ncache: {max_bytes: -1}\n",
	} {
		c, err := client.New(startServerB(b, config))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = c.Close() })
		for i := range 1000 {
			if _, err := c.Put(b.Context(), fmt.Sprintf("actor/%06d", i), []byte("node-1:pid-4242")); err != nil {
				b.Fatal(err)
			}
		}
		clients[name] = c
	}
	lat := map[string][]time.Duration{}
	i := 0
	for b.Loop() {
		for _, name := range []string{"cached", "uncached"} {
			t0 := time.Now()
			if _, err := clients[name].Get(b.Context(), fmt.Sprintf("actor/%06d", i%1000)); err != nil {
				b.Fatal(err)
			}
			lat[name] = append(lat[name], time.Since(t0))
		}
		i++
	}
	p := map[string]float64{}
	for name, l := range lat {
		slices.Sort(l)
		p[name] = float64(l[len(l)/2].Microseconds())
		b.ReportMetric(p[name], name+"-p50-us")
		b.ReportMetric(float64(l[len(l)*99/100].Microseconds()), name+"-p99-us")
	}
	b.ReportMetric(p["cached"]/p["uncached"], "cached/uncached")
}
