package client_test

import (
	"fmt"
	"testing"

	"github.com/kvhost/kvhost/client"
	"github.com/kvhost/kvhost/host/server"
)

// BenchmarkNearCacheHit: a Get served by the near cache, alone (the
// end-to-end comparison with the host cache and Redis is
// cmd/kvhost's BenchmarkNearCache).
func BenchmarkNearCacheHit(b *testing.B) {
	addr := startServer(b, server.Options{Anonymous: true})
	c, err := client.New(addr, client.WithNearCache(64<<20))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := b.Context()
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprintf("actor/%06d", i)
		if _, err := c.Put(ctx, keys[i], make([]byte, 100)); err != nil {
			b.Fatal(err)
		}
	}
	for c.NearCacheStats().Entries < len(keys) {
		for _, k := range keys {
			if _, err := c.Get(ctx, k); err != nil {
				b.Fatal(err)
			}
		}
	}
	before := c.NearCacheStats()
	i := 0
	for b.Loop() {
		if _, err := c.Get(ctx, keys[i%len(keys)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	if after := c.NearCacheStats(); after.Misses != before.Misses {
		b.Fatalf("%d of the reads missed", after.Misses-before.Misses)
	}
}
