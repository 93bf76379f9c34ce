package postgres_test

// Benchmarks of the table, each measured three or four ways in one
// run so the ratios mean something:
//
//	ping    a no-op RPC to the plugin: the go-plugin round trip, the floor
//	plugin  the operation through the real plugin binary over go-plugin
//	store   the same operation on the library in-process (no wire)
//	raw     the same work as plain SQL on pgx (pgxpool, its default
//	        statement cache) against a schema made by the store's own
//	        migration: no meta row, revision, history or notification
//
// Each copy is a schema of its own in the test database
// (KVHOST_TEST_POSTGRES_DSN), dropped when the benchmark ends. The 1M-key
// benchmarks (Count1M, Stats1M) share one dataset per test process: one
// schema loaded once with COPY, which the plugin, the store and raw SQL
// all read (they only read it, and it is the plugin's own schema, so all
// three read the same table); it is dropped when the test binary exits.
// Run them with, for example:
//
//	go test -run '^$' -bench . -benchtime 2s ./plugins/postgres/
//
// docs/PERFORMANCE.md records the figures. No benchmark fails because the
// machine is slow: they report, and the bars are read off the report.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kvhost/kvhost/internal/benchkit"
	"github.com/kvhost/kvhost/internal/testbin"
	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi"
	"github.com/kvhost/kvhost/plugins/postgres"
)

// benchEnv is one dataset in three copies: behind the plugin binary, in an
// in-process Store, and in a raw schema written by plain SQL.
type benchEnv struct {
	plugin *pluginapi.Plugin
	store  *postgres.Store
	raw    *pgxpool.Pool
	// the copies' schemas
	pluginS, storeS, rawS string
}

// startBenchPlugin starts the plugin binary on schema.
func startBenchPlugin(b *testing.B, dsn, schema string) *pluginapi.Plugin {
	b.Helper()
	p, err := pluginapi.Start(context.Background(), pluginapi.StartConfig{
		Path:     testbin.Plugin(b, "postgres"),
		Settings: map[string]string{"dsn": dsn, "schema": schema},
		Logger:   hclog.NewNullLogger(),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(p.Kill)
	return p
}

// openBenchStore opens an in-process Store on schema, with the defaults
// the plugin has.
func openBenchStore(b *testing.B, dsn, schema string) *postgres.Store {
	b.Helper()
	s, err := postgres.New(context.Background(), postgres.Config{DSN: dsn, Schema: schema})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// openRaw opens a pool the way a hand-written pgx program would.
func openRaw(b *testing.B, dsn string) *pgxpool.Pool {
	b.Helper()
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	return pool
}

// makeSchema creates schema with the store's own migration, so the raw
// copy's tables and indexes are the store's, and nothing else runs on it.
func makeSchema(ctx context.Context, dsn, schema string) error {
	s, err := postgres.New(ctx, postgres.Config{DSN: dsn, Schema: schema})
	if err != nil {
		return err
	}
	return s.Close()
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	dsn := testDSN(b)
	e := &benchEnv{pluginS: newSchema(b, dsn), storeS: newSchema(b, dsn), rawS: newSchema(b, dsn)}
	e.plugin = startBenchPlugin(b, dsn, e.pluginS)
	e.store = openBenchStore(b, dsn, e.storeS)
	e.raw = openRaw(b, dsn)
	if err := makeSchema(context.Background(), dsn, e.rawS); err != nil {
		b.Fatal(err)
	}
	return e
}

// rawCopy is the raw side's bulk load: COPY into kv.
func rawCopy(ctx context.Context, pool *pgxpool.Pool, schema string, keys []string, firstVersion int64) error {
	i := 0
	_, err := pool.CopyFrom(ctx, pgx.Identifier{schema, "kv"}, []string{"key", "value", "version", "expires_at"},
		pgx.CopyFromFunc(func() ([]any, error) {
			if i == len(keys) {
				return nil, nil
			}
			row := []any{keys[i], benchkit.Value, firstVersion + int64(i), int64(0)}
			i++
			return row, nil
		}))
	return err
}

// rawUpsertSQL is the raw side of a batch of puts: one statement over
// arrays, as the store's own batch writes a run of puts.
func rawUpsertSQL(schema string) string {
	return `INSERT INTO ` + schema + `.kv AS kv (key, value, version, expires_at)
		SELECT * FROM unnest($1::text[], $2::bytea[], $3::bigint[], $4::bigint[])
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = excluded.version, expires_at = excluded.expires_at`
}

func upsertArgs(keys []string, firstVersion int64) (values [][]byte, versions, exps []int64) {
	values, versions, exps = make([][]byte, len(keys)), make([]int64, len(keys)), make([]int64, len(keys))
	for i := range keys {
		values[i], versions[i] = benchkit.Value, firstVersion+int64(i)
	}
	return values, versions, exps
}

// vacuum brings a loaded table to the state autovacuum would leave it
// in (visibility map set, statistics current), so that no benchmark runs
// while autovacuum or autoanalyze changes the plan or the pages under it.
func vacuum(ctx context.Context, pool *pgxpool.Pool, schemas ...string) error {
	for _, s := range schemas {
		if _, err := pool.Exec(ctx, "VACUUM (ANALYZE) "+s+".kv"); err != nil {
			return fmt.Errorf("vacuum %s.kv: %w", s, err)
		}
	}
	return nil
}

// load puts keys into all three copies: the plugin and the store in
// batches of 1000, the raw copy by COPY.
func (e *benchEnv) load(b *testing.B, keys []string) {
	b.Helper()
	ctx := context.Background()
	for chunk := range slices.Chunk(keys, kv.MaxBatchOps) {
		ops := make([]kv.Op, len(chunk))
		for i, k := range chunk {
			ops[i] = kv.PutOp(k, benchkit.Value, 0, kv.Condition{})
		}
		if _, err := e.plugin.Batch(ctx, ops); err != nil {
			b.Fatal(err)
		}
		if _, err := e.store.Batch(ctx, ops); err != nil {
			b.Fatal(err)
		}
	}
	if err := rawCopy(ctx, e.raw, e.rawS, keys, 1); err != nil {
		b.Fatal(err)
	}
	if err := vacuum(ctx, e.raw, e.pluginS, e.storeS, e.rawS); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkPointGet(b *testing.B) {
	e := newBenchEnv(b)
	keys := benchkit.Keys10K()
	e.load(b, keys)
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
	q := `SELECT value, version, expires_at FROM ` + e.rawS + `.kv WHERE key = $1 AND (expires_at = 0 OR expires_at > $2)`
	benchkit.Each(b,
		benchkit.Side{Name: "ping", Op: func() error { return e.plugin.Ping(ctx) }},
		benchkit.Side{Name: "plugin", Op: func() error { _, err := e.plugin.Get(ctx, key()); return err }},
		benchkit.Side{Name: "store", Op: func() error { _, err := e.store.Get(ctx, key()); return err }},
		benchkit.Side{Name: "raw", Op: func() error {
			var v []byte
			var ver, exp int64
			return e.raw.QueryRow(ctx, q, key(), time.Now().UnixMilli()).Scan(&v, &ver, &exp)
		}},
	)
}

// rawList is the raw side of a list: the same range scan, rows scanned
// into entries.
func (e *benchEnv) rawList(ctx context.Context, prefix string, limit int) ([]kv.Entry, error) {
	q := `SELECT key, value, version, expires_at FROM ` + e.rawS + `.kv
		WHERE key >= $1 AND key < $2 AND (expires_at = 0 OR expires_at > $3) ORDER BY key LIMIT $4`
	args := []any{prefix, kv.PrefixEnd(prefix), time.Now().UnixMilli(), limit}
	if args[1] == "" { // the whole keyspace: no upper bound
		q = `SELECT key, value, version, expires_at FROM ` + e.rawS + `.kv
			WHERE key >= $1 AND (expires_at = 0 OR expires_at > $2) ORDER BY key LIMIT $3`
		args = []any{prefix, args[2], limit}
	}
	rows, err := e.raw.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]kv.Entry, 0, limit)
	for rows.Next() {
		var en kv.Entry
		var exp int64
		if err := rows.Scan(&en.Key, &en.Value, &en.Version, &exp); err != nil {
			return nil, err
		}
		en.ExpiresAt = kv.FromUnixMillis(exp)
		out = append(out, en)
	}
	return out, rows.Err()
}

func benchList(b *testing.B, prefix string, want int) {
	e := newBenchEnv(b)
	e.load(b, benchkit.Keys10K())
	ctx := context.Background()
	req := kv.ListRequest{Prefix: prefix, Limit: kv.MaxListLimit}
	run := func(name string, op func() (int, error)) {
		b.Run(name, func(b *testing.B) {
			// PostgreSQL plans a prepared statement afresh for each of its
			// first five executions on a connection, then settles on a
			// generic plan if that is no dearer; the loop measures the
			// settled state, and the slowest of those first calls is
			// reported beside it.
			var cold benchkit.Latencies
			for range 6 {
				start := time.Now()
				if _, err := op(); err != nil {
					b.Fatal(err)
				}
				cold.Time(start)
			}
			slices.Sort(cold)
			for b.Loop() {
				n, err := op()
				if err != nil {
					b.Fatal(err)
				}
				if n != want {
					b.Fatalf("listed %d, want %d", n, want)
				}
			}
			b.ReportMetric(float64(cold[len(cold)-1].Microseconds())/1e3, "cold-max-ms") // after the loop, which resets metrics
		})
	}
	plugin := func() (int, error) { r, err := e.plugin.List(ctx, req); return len(r.Entries), err }
	store := func() (int, error) { r, err := e.store.List(ctx, req); return len(r.Entries), err }
	raw := func() (int, error) { r, err := e.rawList(ctx, prefix, req.Limit); return len(r), err }
	run("plugin", plugin)
	run("store", store)
	run("raw", raw)
	b.Run("interleaved", func(b *testing.B) {
		benchkit.Interleave(b, "raw", listSide("plugin", want, plugin), listSide("store", want, store), listSide("raw", want, raw))
	})
}

// listSide is a benchkit side that fails unless op lists want entries.
func listSide(name string, want int, op func() (int, error)) benchkit.Side {
	return benchkit.Side{Name: name, Op: func() error {
		n, err := op()
		if err == nil && n != want {
			err = fmt.Errorf("listed %d, want %d", n, want)
		}
		return err
	}}
}

func BenchmarkListPrefix100(b *testing.B) { benchList(b, "p42/", 100) }

func BenchmarkListAll10K(b *testing.B) { benchList(b, "", 10000) }

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
	upsert := rawUpsertSQL(e.rawS)
	version := int64(1)
	// raw: the upsert alone, one statement in its own transaction.
	run("raw", func(keys []string) error {
		values, versions, exps := upsertArgs(keys, version)
		version += int64(len(keys))
		_, err := e.raw.Exec(ctx, upsert, keys, values, versions, exps)
		return err
	})
	// raw-history: the upsert and one history row holding the 1000
	// values (the store's chunk, without its keys and varints) in one
	// transaction, both statements in one round trip: the server's share
	// of what the store's batch writes, without the revision row or the
	// notification.
	history := `INSERT INTO ` + e.rawS + `.history_chunks (rev, last, events) VALUES ($1, $2, $3)`
	rawHistory := func(keys []string) error {
		first := version
		values, versions, exps := upsertArgs(keys, version)
		version += int64(len(keys))
		return pgx.BeginFunc(ctx, e.raw, func(tx pgx.Tx) error {
			batch := &pgx.Batch{}
			batch.Queue(upsert, keys, values, versions, exps)
			batch.Queue(history, first, version-1, bytes.Join(values, nil))
			return tx.SendBatch(ctx, batch).Close()
		})
	}
	run("raw-history", rawHistory)
	b.Run("interleaved", func(b *testing.B) {
		with := func(op func(keys []string) error) func() error {
			return func() error { return op(nextKeys()) } // 1000 names: microseconds against milliseconds
		}
		benchkit.Interleave(b, "raw",
			benchkit.Side{Name: "plugin", Op: with(func(keys []string) error { _, err := e.plugin.Batch(ctx, ops(keys)); return err })},
			benchkit.Side{Name: "store", Op: with(func(keys []string) error { _, err := e.store.Batch(ctx, ops(keys)); return err })},
			benchkit.Side{Name: "raw", Op: with(func(keys []string) error {
				values, versions, exps := upsertArgs(keys, version)
				version += int64(len(keys))
				_, err := e.raw.Exec(ctx, upsert, keys, values, versions, exps)
				return err
			})},
			benchkit.Side{Name: "raw-history", Op: with(rawHistory)})
	})
}

// The 1M-key dataset, shared by the benchmarks that need it and loaded
// once per test process: loading it takes tens of seconds on a loaded
// machine, too long to repeat per benchmark and per -count.
const bigKeys = 1_000_000

var big struct {
	once   sync.Once
	dsn    string
	schema string
	load   time.Duration
	err    error
}

// bigKey is the i-th key of the 1M dataset: 1000 prefixes of 1000 keys.
func bigKey(i int) string { return fmt.Sprintf("big/%03d/%07d", i/1000, i) }

// bigSchema returns the schema holding the 1M-key dataset, loading it on
// first use: the store's migration creates the schema, COPY fills kv with
// versions 1..1M, meta.rev is set to 1M (so every read reports a revision
// that covers its data, as after 1M puts), and VACUUM leaves the table as
// autovacuum would. History stays empty: count and stats do not read it.
func bigSchema(b *testing.B) (dsn, schema string) {
	b.Helper()
	dsn = testDSN(b)
	big.once.Do(func() {
		var r [6]byte
		_, _ = rand.Read(r[:])
		big.dsn, big.schema = dsn, "bench1m_"+hex.EncodeToString(r[:])
		ctx := context.Background()
		start := time.Now()
		big.err = func() error {
			if err := makeSchema(ctx, dsn, big.schema); err != nil {
				return err
			}
			pool, err := pgxpool.New(ctx, dsn)
			if err != nil {
				return err
			}
			defer pool.Close()
			keys := make([]string, bigKeys)
			for i := range keys {
				keys[i] = bigKey(i)
			}
			if err := rawCopy(ctx, pool, big.schema, keys, 1); err != nil {
				return err
			}
			if _, err := pool.Exec(ctx, `UPDATE `+big.schema+`.meta SET rev = $1`, bigKeys); err != nil {
				return err
			}
			return vacuum(ctx, pool, big.schema)
		}()
		big.load = time.Since(start)
	})
	if big.err != nil {
		b.Fatalf("loading the %d-key dataset into schema %s: %v", bigKeys, big.schema, big.err)
	}
	b.Logf("%d keys in schema %s (loaded once per process, in %v)", bigKeys, big.schema, big.load.Round(time.Millisecond))
	return dsn, big.schema
}

// dropBig drops the shared dataset; TestMain calls it when the test
// binary is done.
func dropBig() {
	if big.schema == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, big.dsn)
	if err != nil {
		fmt.Fprintf(os.Stderr, "drop schema %s: %v\n", big.schema, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+big.schema+" CASCADE"); err != nil {
		fmt.Fprintf(os.Stderr, "drop schema %s: %v\n", big.schema, err)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	dropBig()
	os.Exit(code)
}

// bench1M runs op three ways on the shared 1M-key dataset: through a
// plugin and a store opened on it for this benchmark, and as raw SQL.
func bench1M[T any](b *testing.B, plugin, store func(context.Context, kv.Backend) (T, error), raw func(context.Context, *pgxpool.Pool, string) (T, error), n func(T) int64) {
	dsn, schema := bigSchema(b)
	p := startBenchPlugin(b, dsn, schema)
	s := openBenchStore(b, dsn, schema)
	pool := openRaw(b, dsn)
	ctx := context.Background()
	run := func(name string, op func() (T, error)) {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				r, err := op()
				if err != nil {
					b.Fatal(err)
				}
				if got := n(r); got != bigKeys {
					b.Fatalf("counted %d keys, want %d", got, bigKeys)
				}
			}
		})
	}
	run("plugin", func() (T, error) { return plugin(ctx, p) })
	run("store", func() (T, error) { return store(ctx, s) })
	run("raw", func() (T, error) { return raw(ctx, pool, schema) })
	// raw-index: the same statement with sequential scans off, so that
	// the planner takes the covering primary key (an index-only scan),
	// which it does not choose on its own at 1M keys here.
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		b.Fatal(err)
	}
	pc.ConnConfig.RuntimeParams["enable_seqscan"] = "off"
	ios, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		b.Fatal(err)
	}
	defer ios.Close()
	run("raw-index", func() (T, error) { return raw(ctx, ios, schema) })
	check := func(op func() (T, error)) func() error {
		return func() error {
			r, err := op()
			if err == nil && n(r) != bigKeys {
				err = fmt.Errorf("counted %d keys, want %d", n(r), bigKeys)
			}
			return err
		}
	}
	b.Run("interleaved", func(b *testing.B) {
		benchkit.Interleave(b, "raw",
			benchkit.Side{Name: "plugin", Op: check(func() (T, error) { return plugin(ctx, p) })},
			benchkit.Side{Name: "store", Op: check(func() (T, error) { return store(ctx, s) })},
			benchkit.Side{Name: "raw", Op: check(func() (T, error) { return raw(ctx, pool, schema) })},
			benchkit.Side{Name: "raw-index", Op: check(func() (T, error) { return raw(ctx, ios, schema) })})
	})
}

func BenchmarkCount1M(b *testing.B) {
	count := func(ctx context.Context, be kv.Backend) (kv.CountResult, error) { return be.Count(ctx, "") }
	bench1M(b, count, count, func(ctx context.Context, pool *pgxpool.Pool, schema string) (kv.CountResult, error) {
		var r kv.CountResult
		err := pool.QueryRow(ctx, `SELECT count(*) FROM `+schema+`.kv WHERE expires_at = 0 OR expires_at > $1`,
			time.Now().UnixMilli()).Scan(&r.Count)
		return r, err
	}, func(r kv.CountResult) int64 { return r.Count })
}

// BenchmarkList10K1M lists 10K keys from the middle of the shared 1M-key
// dataset (after big/499/0499999, so the page starts mid-index), through
// the plugin, the store and raw SQL, interleaved in one loop.
func BenchmarkList10K1M(b *testing.B) {
	dsn, schema := bigSchema(b)
	p := startBenchPlugin(b, dsn, schema)
	s := openBenchStore(b, dsn, schema)
	pool := openRaw(b, dsn)
	ctx := context.Background()
	req := kv.ListRequest{Prefix: "big/", StartAfter: bigKey(bigKeys/2 - 1), Limit: kv.MaxListLimit}
	q := `SELECT key, value, version, expires_at FROM ` + schema + `.kv
		WHERE key > $1 AND key >= $2 AND key < $3 AND (expires_at = 0 OR expires_at > $4) ORDER BY key LIMIT $5`
	raw := func() (int, error) {
		rows, err := pool.Query(ctx, q, req.StartAfter, req.Prefix, kv.PrefixEnd(req.Prefix), time.Now().UnixMilli(), req.Limit)
		if err != nil {
			return 0, err
		}
		defer rows.Close()
		out := make([]kv.Entry, 0, req.Limit)
		for rows.Next() {
			var en kv.Entry
			var exp int64
			if err := rows.Scan(&en.Key, &en.Value, &en.Version, &exp); err != nil {
				return 0, err
			}
			en.ExpiresAt = kv.FromUnixMillis(exp)
			out = append(out, en)
		}
		return len(out), rows.Err()
	}
	list := func(be kv.Backend) func() (int, error) {
		return func() (int, error) {
			r, err := be.List(ctx, req)
			if err == nil && (!r.More || r.Entries[0].Key != bigKey(bigKeys/2)) {
				err = fmt.Errorf("page starts at %q, more %v", r.Entries[0].Key, r.More)
			}
			return len(r.Entries), err
		}
	}
	benchkit.Interleave(b, "raw", listSide("plugin", req.Limit, list(p)), listSide("store", req.Limit, list(s)), listSide("raw", req.Limit, raw))
}

// BenchmarkListPrefix1M lists one prefix of 1000 keys (big/001/) of the
// shared 1M-key dataset, interleaved. Most of the table sorts after the
// prefix: a scan that does not stop at the prefix's end reads it all.
// Every call after the fifth on a connection runs PostgreSQL's generic
// plan, so the p50 is the generic plan's.
func BenchmarkListPrefix1M(b *testing.B) {
	dsn, schema := bigSchema(b)
	p := startBenchPlugin(b, dsn, schema)
	s := openBenchStore(b, dsn, schema)
	pool := openRaw(b, dsn)
	ctx := context.Background()
	req := kv.ListRequest{Prefix: "big/001/", Limit: kv.MaxListLimit}
	q := `SELECT key, value, version, expires_at FROM ` + schema + `.kv
		WHERE key >= $1 AND key < $2 AND (expires_at = 0 OR expires_at > $3) ORDER BY key LIMIT $4`
	raw := func() (int, error) {
		rows, err := pool.Query(ctx, q, req.Prefix, kv.PrefixEnd(req.Prefix), time.Now().UnixMilli(), req.Limit)
		if err != nil {
			return 0, err
		}
		defer rows.Close()
		n := 0
		for rows.Next() {
			var en kv.Entry
			var exp int64
			if err := rows.Scan(&en.Key, &en.Value, &en.Version, &exp); err != nil {
				return 0, err
			}
			n++
		}
		return n, rows.Err()
	}
	list := func(be kv.Backend) func() (int, error) {
		return func() (int, error) { r, err := be.List(ctx, req); return len(r.Entries), err }
	}
	count := func(be kv.Backend) func() (int, error) {
		return func() (int, error) { r, err := be.Count(ctx, req.Prefix); return int(r.Count), err }
	}
	b.Run("list", func(b *testing.B) {
		benchkit.Interleave(b, "raw", listSide("plugin", 1000, list(p)), listSide("store", 1000, list(s)), listSide("raw", 1000, raw))
	})
	b.Run("count", func(b *testing.B) {
		benchkit.Interleave(b, "store", listSide("plugin", 1000, count(p)), listSide("store", 1000, count(s)))
	})
}

func BenchmarkStats1M(b *testing.B) {
	stats := func(ctx context.Context, be kv.Backend) (kv.Stats, error) { return be.Stats(ctx) }
	bench1M(b, stats, stats, func(ctx context.Context, pool *pgxpool.Pool, schema string) (kv.Stats, error) {
		var st kv.Stats
		err := pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(size), 0)::bigint FROM `+schema+`.kv
			WHERE expires_at = 0 OR expires_at > $1`, time.Now().UnixMilli()).Scan(&st.Keys, &st.Bytes)
		return st, err
	}, func(st kv.Stats) int64 { return st.Keys })
}
