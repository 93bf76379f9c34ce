package main_test

import (
	"fmt"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kvhost/kvhost/client"
	"github.com/kvhost/kvhost/internal/benchkit"
)

// BenchmarkNearCache: a point get served by a client's near cache (alone,
// and interleaved with the others), by the
// host's read cache through the API (SQLite, the default), and by Redis
// over loopback (a raw GET, the speed Redis users know), interleaved call
// by call so that all three see the same load; and how long after a write
// another client's near cache forgets the key.
func BenchmarkNearCache(b *testing.B) {
	addr := startServerB(b, "auth: {anonymous: true}\n")
	near, err := client.New(addr, client.WithNearCache(64<<20))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = near.Close() })
	plain, err := client.New(addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = plain.Close() })
	rdb := goredis.NewClient(&goredis.Options{Addr: redisAddr(b)})
	b.Cleanup(func() { _ = rdb.Close() })
	ctx := b.Context()
	redisKey := redisStore(b, redisAddr(b)) + "bench"
	if err := rdb.Set(ctx, redisKey, benchkit.Value, 0).Err(); err != nil {
		b.Fatal(err)
	}
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprintf("actor/%06d", i)
		if _, err := plain.Put(ctx, keys[i], benchkit.Value); err != nil {
			b.Fatal(err)
		}
	}
	within(b, time.Minute, "the near cache's tracking session", func() bool { return near.NearCacheStats().Serving })
	within(b, time.Minute, "every key in the near cache", func() bool {
		for _, k := range keys {
			if _, err := near.Get(ctx, k); err != nil {
				b.Fatal(err)
			}
		}
		return near.NearCacheStats().Entries == len(keys)
	})

	// Alone, as an application reading a hot key in a loop sees it; in
	// the interleaved run below every near-cache hit follows two network
	// calls that leave the processor's caches cold.
	i := 0
	benchkit.Each(b, benchkit.Side{Name: "near-alone", Op: func() error {
		i++
		_, err := near.Get(ctx, benchkit.Spread(keys, i))
		return err
	}})
	b.Run("get", func(b *testing.B) {
		i := 0
		key := func() string { i++; return benchkit.Spread(keys, i) }
		benchkit.Interleave(b, "redis",
			benchkit.Side{Name: "near", Op: func() error { _, err := near.Get(ctx, key()); return err }},
			benchkit.Side{Name: "host", Op: func() error { _, err := plain.Get(ctx, key()); return err }},
			benchkit.Side{Name: "redis", Op: func() error { return rdb.Get(ctx, redisKey).Err() }},
		)
	})

	// A second near cache holds one key; each iteration another client
	// writes it, and the time until the near cache has forgotten it is
	// taken from the write's acknowledgement (and from its start, which
	// includes the write itself).
	b.Run("invalidate", func(b *testing.B) {
		watcher, err := client.New(addr, client.WithNearCache(1<<20))
		if err != nil {
			b.Fatal(err)
		}
		defer watcher.Close()
		within(b, time.Minute, "the second near cache's session", func() bool { return watcher.NearCacheStats().Serving })
		const key = "hot/flag"
		var afterAck, afterStart benchkit.Latencies
		for b.Loop() {
			b.StopTimer()
			within(b, time.Minute, "the key in the near cache", func() bool {
				_, err := watcher.Read(ctx, key)
				return err == nil && watcher.NearCacheStats().Entries == 1
			})
			b.StartTimer()
			start := time.Now()
			if _, err := plain.Put(ctx, key, benchkit.Value); err != nil {
				b.Fatal(err)
			}
			ack := time.Now()
			for watcher.NearCacheStats().Entries != 0 {
				// Polling finely, yet leaving the processor to the
				// server on a 2-core machine: a spin would compete
				// with the delivery it measures.
				time.Sleep(20 * time.Microsecond)
			}
			afterStart.Time(start)
			afterAck.Time(ack)
		}
		p50, p99 := afterAck.Percentiles()
		b.ReportMetric(p50, "after-ack-p50-us")
		b.ReportMetric(p99, "after-ack-p99-us")
		p50, p99 = afterStart.Percentiles()
		b.ReportMetric(p50, "after-start-p50-us")
		b.ReportMetric(p99, "after-start-p99-us")
	})
}
