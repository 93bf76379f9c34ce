package main_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvhost/kvhost/client"
	"github.com/kvhost/kvhost/client/registry"
	"github.com/kvhost/kvhost/internal/testbin"
	"github.com/kvhost/kvhost/kv"
)

// Registry benchmarks: the access mix the store was designed for, through
// a real host and plugin on each backend, with 4 clients working at once.
// Each reports the p99 of its hot operations and the time of a list of
// everything, the figures the seed's targets are stated in (lookup < 1 ms
// p99, heartbeat < 2 ms p99, list of 10K actors < 50 ms, of 1K nodes
// < 100 ms).

const registryWorkers = 4

// registryHosts start each backend's hosts as backendHosts do, with cache
// (a line of configuration) added, so that one run measures each backend
// with the host read cache off and on.
var registryHosts = []struct {
	name  string
	hosts func(t testing.TB, cache string) []*server
}{
	{"memory", func(t testing.TB, cache string) []*server {
		testbin.Plugin(t, "memory")
		return []*server{startServerTB(t, "auth: {anonymous: true}\nbackend: {plugin: memory}\n"+cache)}
	}},
	{"sqlite", func(t testing.TB, cache string) []*server {
		testbin.Plugin(t, "sqlite")
		return []*server{startServerTB(t, "auth: {anonymous: true}\n"+cache)}
	}},
	{"postgres", func(t testing.TB, cache string) []*server {
		dsn := pgDSN(t)
		schema := pgSchema(t, dsn)
		testbin.Plugin(t, "postgres")
		cfg := fmt.Sprintf("auth: {anonymous: true}\nbackend:\n  plugin: postgres\n  settings: {dsn: %q, schema: %q, pool_size: \"4\"}\n", dsn, schema) + cache
		return []*server{startServerTB(t, cfg), startServerTB(t, cfg)}
	}},
	{"redis", func(t testing.TB, cache string) []*server {
		addr := redisAddr(t)
		prefix := redisStore(t, addr)
		testbin.Plugin(t, "redis")
		cfg := fmt.Sprintf("auth: {anonymous: true}\nbackend:\n  plugin: redis\n  settings: {addr: %q, key_prefix: %q}\n", addr, prefix) + cache
		return []*server{startServerTB(t, cfg), startServerTB(t, cfg)}
	}},
}

// registryCaches: off, and on — by default on memory and SQLite, with
// shared: true on PostgreSQL and Redis (where it is off by default).
var registryCaches = []struct{ name, config string }{
	{"cache=off", "cache: {max_bytes: -1}\n"},
	{"cache=on", "cache: {shared: true}\n"},
}

// forEachRegistryHost runs bench once per backend and cache setting, with
// a client of the backend's first host.
func forEachRegistryHost(b *testing.B, bench func(b *testing.B, c *client.Client)) {
	for _, st := range registryHosts {
		for _, cache := range registryCaches {
			b.Run(st.name+"/"+cache.name, func(b *testing.B) {
				bench(b, st.hosts(b, cache.config)[0].client(b, ""))
			})
		}
	}
}

// loadKeys puts n keys named name(i) in batches of kv.MaxBatchOps.
func loadKeys(b *testing.B, c *client.Client, n int, name func(i int) string, value []byte, ttl time.Duration) {
	b.Helper()
	ops := make([]kv.Op, 0, kv.MaxBatchOps)
	for i := range n {
		ops = append(ops, kv.PutOp(name(i), value, ttl, kv.Condition{}))
		if len(ops) == kv.MaxBatchOps || i == n-1 {
			if _, err := c.Batch(b.Context(), ops); err != nil {
				b.Fatal(err)
			}
			ops = ops[:0]
		}
	}
}

// samples are one operation kind's latencies, from several goroutines.
type samples struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *samples) time(op func() error) error {
	t0 := time.Now()
	err := op()
	s.mu.Lock()
	s.d = append(s.d, time.Since(t0))
	s.mu.Unlock()
	return err
}

// report adds the kind's p50 and p99 in µs (its max too when it has few
// samples) as metrics named name-p50-us and so on.
func (s *samples) report(b *testing.B, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.d) == 0 {
		return
	}
	slices.Sort(s.d)
	us := func(d time.Duration) float64 { return float64(d.Microseconds()) }
	b.ReportMetric(us(s.d[len(s.d)/2]), name+"-p50-us")
	b.ReportMetric(us(s.d[len(s.d)*99/100]), name+"-p99-us")
	b.ReportMetric(us(s.d[len(s.d)-1]), name+"-max-us")
}

// mix runs b.N operations on registryWorkers goroutines; op runs the i-th.
func mix(b *testing.B, op func(i int) error) {
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	b.ResetTimer()
	for range registryWorkers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				if err := op(i); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
}

// BenchmarkRegistryActors: 10K actors; 95% lookups, 4% registrations, 1%
// lists of all of them.
func BenchmarkRegistryActors(b *testing.B) {
	forEachRegistryHost(b, func(b *testing.B, c *client.Client) {
		const actors = 10_000
		loadKeys(b, c, actors, func(i int) string { return fmt.Sprintf("%sa%05d", registry.DefaultActorPrefix, i) },
			[]byte("node-07:pid-4242"), 0)
		reg := registry.NewActors(c, "")
		var lookup, register, list samples
		var placed atomic.Int64
		ctx := b.Context()
		mix(b, func(i int) error {
			switch r := i % 100; {
			case r < 95:
				return lookup.time(func() error {
					_, err := reg.Lookup(ctx, fmt.Sprintf("a%05d", (i*7919)%actors))
					return err
				})
			case r < 99:
				return register.time(func() error {
					_, err := reg.Register(ctx, fmt.Sprintf("new-%d-%d", time.Now().UnixNano(), placed.Add(1)), "node-08:pid-99")
					return err
				})
			default:
				return list.time(func() error { return countAll(ctx, reg, actors) })
			}
		})
		lookup.report(b, "lookup")
		register.report(b, "register")
		list.report(b, "list-all")
	})
}

// countAll lists every actor and checks there are at least want.
func countAll(ctx context.Context, reg *registry.Actors, want int) error {
	n := 0
	for _, err := range reg.All(ctx) {
		if err != nil {
			return err
		}
		n++
	}
	if n < want {
		return fmt.Errorf("listed %d actors, want at least %d", n, want)
	}
	return nil
}

// BenchmarkRegistryNodes: 1K nodes with a 30 s TTL; 90% lookups, 5%
// registrations, 5% lists of the live nodes, while every node heartbeats
// every 10 s (100 heartbeats a second, timed apart).
func BenchmarkRegistryNodes(b *testing.B) {
	forEachRegistryHost(b, func(b *testing.B, c *client.Client) {
		const nodes = 1000
		nodeID := func(i int) string { return fmt.Sprintf("n%04d", i) }
		loadKeys(b, c, nodes, func(i int) string { return registry.DefaultNodePrefix + nodeID(i) },
			[]byte(`{"addr":"10.0.0.7:7000","roles":["actors"]}`), 30*time.Second)
		reg := registry.NewNodes(c, "")
		ctx, cancel := context.WithCancel(b.Context())
		var lookup, register, list, heartbeat samples
		var hb sync.WaitGroup
		hb.Go(func() {
			tick := time.NewTicker(10 * time.Millisecond) // 100 a second: each node every 10 s
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				err := heartbeat.time(func() error {
					_, err := reg.Heartbeat(ctx, nodeID(i%nodes), 30*time.Second)
					return err
				})
				if err != nil && ctx.Err() == nil {
					b.Error(err)
					return
				}
			}
		})
		mix(b, func(i int) error {
			switch r := i % 100; {
			case r < 90:
				return lookup.time(func() error { _, err := reg.Lookup(ctx, nodeID((i*7919)%nodes)); return err })
			case r < 95:
				return register.time(func() error {
					_, err := reg.Register(ctx, nodeID((i*31)%nodes), []byte(`{"addr":"10.0.0.8:7000"}`), 30*time.Second)
					return err
				})
			default:
				return list.time(func() error {
					alive, err := reg.Alive(ctx)
					if err == nil && len(alive) != nodes {
						err = fmt.Errorf("%d nodes alive, want %d", len(alive), nodes)
					}
					return err
				})
			}
		})
		cancel()
		hb.Wait()
		lookup.report(b, "lookup")
		register.report(b, "register")
		heartbeat.report(b, "heartbeat")
		list.report(b, "list-all")
	})
}
