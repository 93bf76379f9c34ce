package redis

// Benchmarks of the table, each measured in up to four ways in one
// run so the ratios mean something:
//
//	ping    a no-op RPC to the plugin: the go-plugin round trip, the floor
//	plugin  the operation through the real plugin binary over go-plugin
//	store   the same operation on the library in-process (no wire)
//	raw     the same data read or written with plain go-redis commands on
//	        the same layout (a hash of values, a sorted-set index), with no
//	        script, revision, metadata, expiry check or event
//
// Each copy is a store of its own (a key prefix) on the test Redis
// (KVHOST_TEST_REDIS_ADDR). Run them with, for example:
//
//	go test -run '^$' -bench . -benchtime 2s ./plugins/redis/
//
// docs/PERFORMANCE.md records the figures. No benchmark fails because the
// machine is slow: they report, and the bars are read off the report.

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	goredis "github.com/redis/go-redis/v9"

	"github.com/kvhost/kvhost/internal/benchkit"
	"github.com/kvhost/kvhost/internal/testbin"
	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi"
)

// benchEnv is one dataset in three copies: behind the plugin binary, in an
// in-process Store, and in raw keys written by plain commands.
type benchEnv struct {
	plugin *pluginapi.Plugin
	store  *Store
	raw    *goredis.Client
	rawP   string // the raw copy's key prefix
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	addr := testAddr(b)
	p, err := pluginapi.Start(context.Background(), pluginapi.StartConfig{
		Path:     testbin.Plugin(b, "redis"),
		Settings: map[string]string{"addr": addr, "key_prefix": testPrefix(b, addr)},
		Logger:   hclog.NewNullLogger(),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(p.Kill)
	raw := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1, DisableIdentity: true})
	b.Cleanup(func() { raw.Close() })
	return &benchEnv{plugin: p, store: newTestStore(b, addr, Config{}), raw: raw, rawP: testPrefix(b, addr)}
}

func (e *benchEnv) rawKey(n string) string { return e.rawP + n }

// rawInsert is the raw side's bulk insert: the values in one HSET, the
// index in one ZADD, in one MULTI/EXEC round trip.
func (e *benchEnv) rawInsert(b *testing.B, keys []string, expiresAt int64) {
	b.Helper()
	ctx := context.Background()
	vals := make([]any, 0, 2*len(keys))
	idx := make([]goredis.Z, 0, len(keys))
	exp := make([]goredis.Z, 0, len(keys))
	for _, k := range keys {
		vals = append(vals, k, benchkit.Value)
		idx = append(idx, goredis.Z{Member: k})
		if expiresAt > 0 {
			exp = append(exp, goredis.Z{Score: float64(expiresAt), Member: k})
		}
	}
	_, err := e.raw.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.HSet(ctx, e.rawKey("val"), vals...)
		p.ZAdd(ctx, e.rawKey("idx"), idx...)
		if len(exp) > 0 {
			p.ZAdd(ctx, e.rawKey("exp"), exp...)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// load puts keys into all three copies, in batches of 1000.
func (e *benchEnv) load(b *testing.B, keys []string, ttl time.Duration) {
	b.Helper()
	ctx := context.Background()
	for chunk := range slices.Chunk(keys, kv.MaxBatchOps) {
		ops := make([]kv.Op, len(chunk))
		for i, k := range chunk {
			ops[i] = kv.PutOp(k, benchkit.Value, ttl, kv.Condition{})
		}
		if _, err := e.plugin.Batch(ctx, ops); err != nil {
			b.Fatal(err)
		}
		if _, err := e.store.Batch(ctx, ops); err != nil {
			b.Fatal(err)
		}
		var exp int64
		if ttl > 0 {
			exp = kv.ExpiryAt(time.Now(), ttl).UnixMilli()
		}
		e.rawInsert(b, chunk, exp)
	}
}

func BenchmarkPointGet(b *testing.B) {
	e := newBenchEnv(b)
	keys := benchkit.Keys10K()
	e.load(b, keys, 0)
	ctx := context.Background()
	i := 0
	key := func() string { i++; return benchkit.Spread(keys, i) }
	benchkit.VersusPing(b, func() error { return e.plugin.Ping(ctx) }, func(i int) error {
		r, err := e.plugin.Get(ctx, benchkit.Spread(keys, i))
		if err == nil && !r.Found {
			err = fmt.Errorf("key %s not found", benchkit.Spread(keys, i))
		}
		return err
	})
	benchkit.Each(b,
		benchkit.Side{Name: "ping", Op: func() error { return e.plugin.Ping(ctx) }},
		benchkit.Side{Name: "plugin", Op: func() error { _, err := e.plugin.Get(ctx, key()); return err }},
		benchkit.Side{Name: "store", Op: func() error { _, err := e.store.Get(ctx, key()); return err }},
		benchkit.Side{Name: "raw", Op: func() error { return e.raw.HGet(ctx, e.rawKey("val"), key()).Err() }},
	)
}

// rawList is the raw side of a list: the index range, then the values.
func (e *benchEnv) rawList(ctx context.Context, prefix string, limit int) (int, error) {
	lo, hi := lexRange(prefix, "")
	keys, err := e.raw.ZRangeArgs(ctx, goredis.ZRangeArgs{Key: e.rawKey("idx"), Start: lo, Stop: hi, ByLex: true, Count: int64(limit)}).Result()
	if err != nil || len(keys) == 0 {
		return 0, err
	}
	vals, err := e.raw.HMGet(ctx, e.rawKey("val"), keys...).Result()
	return len(vals), err
}

func benchList(b *testing.B, prefix string, want int) {
	e := newBenchEnv(b)
	e.load(b, benchkit.Keys10K(), 0)
	ctx := context.Background()
	req := kv.ListRequest{Prefix: prefix, Limit: kv.MaxListLimit}
	run := func(name string, op func() (int, error)) {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				n, err := op()
				if err != nil {
					b.Fatal(err)
				}
				if n != want {
					b.Fatalf("listed %d, want %d", n, want)
				}
			}
		})
	}
	run("plugin", func() (int, error) { r, err := e.plugin.List(ctx, req); return len(r.Entries), err })
	run("store", func() (int, error) { r, err := e.store.List(ctx, req); return len(r.Entries), err })
	run("raw", func() (int, error) { return e.rawList(ctx, prefix, req.Limit) })
}

func BenchmarkListPrefix100(b *testing.B) { benchList(b, "p42/", 100) }

func BenchmarkListAll10K(b *testing.B) { benchList(b, "", 10000) }

func BenchmarkStats100K(b *testing.B) {
	e := newBenchEnv(b)
	keys := make([]string, 100_000)
	for i := range keys {
		keys[i] = fmt.Sprintf("stats/%06d", i)
	}
	e.load(b, keys, 0)
	ctx := context.Background()
	want := int64(len(keys))
	run := func(name string, op func() (kv.Stats, error)) {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				st, err := op()
				if err != nil {
					b.Fatal(err)
				}
				if st.Keys != want {
					b.Fatalf("stats counted %d keys, want %d", st.Keys, want)
				}
			}
		})
	}
	run("plugin", func() (kv.Stats, error) { return e.plugin.Stats(ctx) })
	run("store", func() (kv.Stats, error) { return e.store.Stats(ctx) })
	run("raw", func() (kv.Stats, error) {
		n, err := e.raw.ZCard(ctx, e.rawKey("idx")).Result()
		return kv.Stats{Keys: n}, err
	})
}

func BenchmarkBatchInsert1K(b *testing.B) {
	e := newBenchEnv(b)
	ctx := context.Background()
	nextKeys, ops := benchkit.BatchKeys(), benchkit.PutOps
	run := func(name string, op func(keys []string) error) {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				keys := nextKeys()
				b.StartTimer()
				if err := op(keys); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	run("plugin", func(keys []string) error { _, err := e.plugin.Batch(ctx, ops(keys)); return err })
	run("store", func(keys []string) error { _, err := e.store.Batch(ctx, ops(keys)); return err })
	run("raw", func(keys []string) error { e.rawInsert(b, keys, 0); return nil })
}

func BenchmarkCleanup1KExpired(b *testing.B) {
	e := newBenchEnv(b)
	e.load(b, benchkit.Keys10K(), 0) // live keys cleanup must leave alone
	ctx := context.Background()
	round := 0
	expiringKeys := func() []string {
		round++
		keys := make([]string, 1000)
		for i := range keys {
			keys[i] = fmt.Sprintf("exp/%06d/%04d", round, i)
		}
		return keys
	}
	// setup writes 1K keys with a 1ms TTL, waits out their PUT events and
	// their expiry; then cleanup runs, timed, until every EXPIRE event has
	// reached the watcher.
	backend := func(name string, be interface {
		kv.Backend
		kv.Watcher
		kv.Expirer
	}) {
		b.Run(name, func(b *testing.B) {
			w, err := be.Watch(ctx, kv.WatchRequest{Prefix: "exp/", ProgressInterval: -1})
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			recv := func(typ kv.EventType, n int) {
				for range n {
					ev, err := w.Recv()
					if err != nil {
						b.Fatal(err)
					}
					if ev.Type != typ {
						b.Fatalf("event %v, want %v", ev.Type, typ)
					}
				}
			}
			var call benchkit.Latencies
			for b.Loop() {
				b.StopTimer()
				keys := expiringKeys()
				ops := make([]kv.Op, len(keys))
				for i, k := range keys {
					ops[i] = kv.PutOp(k, benchkit.Value, time.Millisecond, kv.Condition{})
				}
				res, err := be.Batch(ctx, ops)
				if err != nil {
					b.Fatal(err)
				}
				recv(kv.EventPut, len(keys))
				waitPast(b, res.Results[len(ops)-1].ExpiresAt.Add(2*time.Millisecond))
				b.StartTimer()
				start := time.Now()
				n, err := be.CleanupExpired(ctx, 0)
				if err != nil {
					b.Fatal(err)
				}
				call.Time(start)
				if n != int64(len(keys)) {
					b.Fatalf("cleanup removed %d, want %d", n, len(keys))
				}
				recv(kv.EventExpire, len(keys))
			}
			// The call returns once the script ran; the rest of ns/op is
			// the follower reading the events and their delivery.
			p50, _ := call.Percentiles()
			b.ReportMetric(p50/1e3, "call-p50-ms")
		})
	}
	backend("plugin", e.plugin)
	backend("store", e.store)
	b.Run("raw", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			e.rawInsert(b, expiringKeys(), time.Now().UnixMilli()+1)
			waitPast(b, time.Now().Add(3*time.Millisecond))
			b.StartTimer()
			now := strconv.FormatInt(time.Now().UnixMilli(), 10)
			keys, err := e.raw.ZRangeArgs(ctx, goredis.ZRangeArgs{Key: e.rawKey("exp"), Start: "-inf", Stop: now, ByScore: true, Count: 1000}).Result()
			if err != nil {
				b.Fatal(err)
			}
			_, err = e.raw.TxPipelined(ctx, func(p goredis.Pipeliner) error {
				p.HDel(ctx, e.rawKey("val"), keys...)
				p.ZRem(ctx, e.rawKey("idx"), toAny(keys)...)
				p.ZRem(ctx, e.rawKey("exp"), toAny(keys)...)
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			if len(keys) != 1000 {
				b.Fatalf("raw cleanup removed %d", len(keys))
			}
		}
	})
}

func toAny(keys []string) []any {
	out := make([]any, len(keys))
	for i, k := range keys {
		out[i] = k
	}
	return out
}

// BenchmarkPut is a put of a new 100-byte value: a script call with its
// revision and event; raw is HSET and ZADD in one MULTI/EXEC.
func BenchmarkPut(b *testing.B) {
	e := newBenchEnv(b)
	ctx := context.Background()
	run := func(name string, op func(key string) error) {
		b.Run(name, func(b *testing.B) {
			lat := make(benchkit.Latencies, 0, b.N)
			i := 0
			for b.Loop() {
				start := time.Now()
				if err := op(fmt.Sprintf("put/%s/%08d", name, i)); err != nil {
					b.Fatal(err)
				}
				lat.Time(start)
				i++
			}
			lat.Report(b)
		})
	}
	run("plugin", func(k string) error {
		_, err := e.plugin.Put(ctx, kv.PutRequest{Key: k, Value: benchkit.Value})
		return err
	})
	run("store", func(k string) error {
		_, err := e.store.Put(ctx, kv.PutRequest{Key: k, Value: benchkit.Value})
		return err
	})
	run("raw", func(k string) error {
		_, err := e.raw.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			p.HSet(ctx, e.rawKey("val"), k, benchkit.Value)
			p.ZAdd(ctx, e.rawKey("idx"), goredis.Z{Member: k})
			return nil
		})
		return err
	})
}
