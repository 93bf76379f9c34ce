package sqlite

// Benchmarks of the table, each measured three or four ways in one
// run so the ratios mean something (the store and the plugin keep history,
// as configured by default; raw writes none):
//
//	ping    a no-op RPC to the plugin: the go-plugin round trip, the floor
//	plugin  the operation through the real plugin binary over go-plugin
//	store   the same operation on the library in-process (no wire)
//	raw     the same work as plain SQL on database/sql, same schema and pragmas
//
// Run them with, for example:
//
//	go test -run '^$' -bench . -benchtime 2s ./plugins/sqlite/
//
// docs/PERFORMANCE.md records the figures.

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/kvhost/kvhost/internal/benchkit"
	"github.com/kvhost/kvhost/internal/testbin"
	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi"
)

// benchEnv is one dataset in three copies: behind the plugin binary, in an
// in-process Store, and in a raw database with the same schema.
type benchEnv struct {
	plugin *pluginapi.Plugin
	store  *Store
	raw    *sql.DB
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	dir := b.TempDir()
	p, err := pluginapi.Start(context.Background(), pluginapi.StartConfig{
		Path:     testbin.Plugin(b, "sqlite"),
		Settings: map[string]string{"path": filepath.Join(dir, "plugin.db")},
		Logger:   hclog.NewNullLogger(),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(p.Kill)
	s, err := New(context.Background(), Config{Path: filepath.Join(dir, "store.db")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return &benchEnv{plugin: p, store: s, raw: openRaw(b, filepath.Join(dir, "raw.db"))}
}

// openRaw opens a database the way a hand-written SQLite program would,
// with the Store's schema and pragmas but none of its code.
func openRaw(b *testing.B, path string) *sql.DB {
	b.Helper()
	dsn := (&Store{cfg: Config{}.withDefaults(), path: path}).dsn(false)
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `PRAGMA journal_mode = WAL`); err != nil {
		b.Fatal(err)
	}
	for _, m := range migrations(false) {
		if err := m(ctx, db); err != nil {
			b.Fatal(err)
		}
	}
	return db
}

// rawInsert is the raw side's bulk insert: one transaction, one prepared
// statement.
func rawInsert(b *testing.B, db *sql.DB, keys []string, expiresAt int64) {
	b.Helper()
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	st, err := tx.PrepareContext(ctx, `INSERT OR REPLACE INTO kv (key, value, version, expires_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now().UnixMilli()
	for i, k := range keys {
		if _, err := st.ExecContext(ctx, k, benchkit.Value, int64(i+1), expiresAt, now, now); err != nil {
			b.Fatal(err)
		}
	}
	st.Close()
	if err := tx.Commit(); err != nil {
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
		rawInsert(b, e.raw, chunk, exp)
	}
}

func BenchmarkPointGet(b *testing.B) {
	e := newBenchEnv(b)
	keys := benchkit.Keys10K()
	e.load(b, keys, 0)
	ctx := context.Background()
	i := 0
	key := func() string { i++; return benchkit.Spread(keys, i) }
	benchkit.VersusPing(b, func() error { return e.plugin.Ping(ctx) },
		func(i int) error { _, err := e.plugin.Get(ctx, benchkit.Spread(keys, i)); return err })
	st, err := e.raw.PrepareContext(ctx, `SELECT value, version, expires_at FROM kv WHERE key = ? AND (expires_at = 0 OR expires_at > ?)`)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	benchkit.Each(b,
		benchkit.Side{Name: "ping", Op: func() error { return e.plugin.Ping(ctx) }},
		benchkit.Side{Name: "plugin", Op: func() error { _, err := e.plugin.Get(ctx, key()); return err }},
		benchkit.Side{Name: "store", Op: func() error { _, err := e.store.Get(ctx, key()); return err }},
		benchkit.Side{Name: "raw", Op: func() error {
			var v []byte
			var ver, exp int64
			return st.QueryRowContext(ctx, key(), time.Now().UnixMilli()).Scan(&v, &ver, &exp)
		}},
	)
}

// rawList is the raw side of a list: the same range scan, rows scanned
// into entries.
func rawList(ctx context.Context, st *sql.Stmt, lo, hi string, limit int) ([]kv.Entry, error) {
	rows, err := st.QueryContext(ctx, lo, hi, time.Now().UnixMilli(), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []kv.Entry
	for rows.Next() {
		var e kv.Entry
		var exp int64
		if err := rows.Scan(&e.Key, &e.Value, &e.Version, &exp); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
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
	st, err := e.raw.PrepareContext(ctx, `SELECT key, value, version, expires_at FROM kv
		WHERE key >= ? AND key < ? AND (expires_at = 0 OR expires_at > ?) ORDER BY key LIMIT ?`)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	hi := kv.PrefixEnd(prefix)
	if hi == "" {
		hi = "\U0010FFFF\U0010FFFF" // above every key of the dataset
	}
	run("raw", func() (int, error) { r, err := rawList(ctx, st, prefix, hi, req.Limit); return len(r), err })
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
	st, err := e.raw.PrepareContext(ctx, `SELECT count(*), coalesce(sum(octet_length(key) + length(value)), 0) FROM kv
		WHERE expires_at = 0 OR expires_at > ?`)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	run("raw", func() (kv.Stats, error) {
		var s kv.Stats
		err := st.QueryRowContext(ctx, time.Now().UnixMilli()).Scan(&s.Keys, &s.Bytes)
		return s, err
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
	run("raw", func(keys []string) error { rawInsert(b, e.raw, keys, 0); return nil })
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
				if _, err := be.Batch(ctx, ops); err != nil {
					b.Fatal(err)
				}
				recv(kv.EventPut, len(keys))
				time.Sleep(3 * time.Millisecond)
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
			// The call returns once the events are published; the rest of
			// ns/op is their delivery to the watcher.
			p50, _ := call.Percentiles()
			b.ReportMetric(p50/1e3, "call-p50-ms")
		})
	}
	backend("plugin", e.plugin)
	backend("store", e.store)
	b.Run("raw", func(b *testing.B) { rawCleanup(b, e.raw, expiringKeys) })
}

// rawCleanup is the raw side of cleanup: the same delete, its rows read,
// no events.
func rawCleanup(b *testing.B, db *sql.DB, expiringKeys func() []string) {
	ctx := context.Background()
	st, err := db.PrepareContext(ctx, `DELETE FROM kv WHERE key IN (
		SELECT key FROM kv WHERE expires_at > 0 AND expires_at <= ? ORDER BY expires_at LIMIT 1000) RETURNING key, version`)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	for b.Loop() {
		b.StopTimer()
		rawInsert(b, db, expiringKeys(), time.Now().UnixMilli()+1)
		time.Sleep(3 * time.Millisecond)
		b.StartTimer()
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		rows, err := tx.StmtContext(ctx, st).QueryContext(ctx, time.Now().UnixMilli())
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for rows.Next() {
			var ev kv.Event
			if err := rows.Scan(&ev.Key, &ev.Version); err != nil {
				b.Fatal(err)
			}
			n++
		}
		rows.Close()
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
		if n != 1000 {
			b.Fatalf("raw cleanup removed %d", n)
		}
	}
}

// ---------------------------------------------------------------------
// Scale at a million keys (issue 13): count, stats and a list of 10K
// keys at 1M keys, plugin, store and raw interleaved
// (benchkit.Interleave: ratios to raw). The dataset is loaded once
// per BenchmarkScale1M run (a top-level benchmark with sub-benchmarks runs
// its body once), into all three copies; the raw copy gets the covering
// index kv_cover (key, expires_at, size) with a stored size column, so raw
// is the covering-index query the bars are measured against.
//
//	go test -run '^$' -bench Scale1M -benchtime 20x -timeout 30m ./plugins/sqlite/

// scaleKeys is 100 prefixes of 10K keys: s000/k0000000 .. s099/k0999999.
func scaleKeys() []string {
	keys := make([]string, 0, 1_000_000)
	for p := range 100 {
		for k := range 10_000 {
			keys = append(keys, fmt.Sprintf("s%03d/k%07d", p, p*10_000+k))
		}
	}
	return keys
}

// rawCover gives the raw copy the covering index, with a stored size
// column, unless the schema already has them.
func rawCover(b *testing.B, db *sql.DB) {
	b.Helper()
	ctx := context.Background()
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info('kv') WHERE name = 'size'`).Scan(&n); err != nil {
		b.Fatal(err)
	}
	if n == 0 {
		if _, err := db.ExecContext(ctx, `ALTER TABLE kv ADD COLUMN size INTEGER NOT NULL DEFAULT 0`); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := db.ExecContext(ctx, `CREATE INDEX IF NOT EXISTS kv_cover ON kv (key, expires_at, size)`); err != nil {
		b.Fatal(err)
	}
}

// rawLoadSized bulk-loads the raw copy with sizes, in one transaction.
func rawLoadSized(b *testing.B, db *sql.DB, keys []string) {
	b.Helper()
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	st, err := tx.PrepareContext(ctx, `INSERT INTO kv (key, value, version, expires_at, created_at, updated_at, size) VALUES (?, ?, ?, 0, ?, ?, ?)`)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now().UnixMilli()
	for i, k := range keys {
		if _, err := st.ExecContext(ctx, k, benchkit.Value, int64(i+1), now, now, len(k)+len(benchkit.Value)); err != nil {
			b.Fatal(err)
		}
	}
	st.Close()
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkScale1M(b *testing.B) {
	e := newBenchEnv(b)
	keys := scaleKeys()
	ctx := context.Background()
	start := time.Now()
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
	rawCover(b, e.raw)
	rawLoadSized(b, e.raw, keys)
	b.Logf("loaded %d keys into plugin, store and raw in %v", len(keys), time.Since(start).Round(time.Second))
	want := int64(len(keys))

	// check turns an operation answering a count into a benchkit side that
	// fails unless the count is want.
	check := func(name string, want int64, op func() (int64, error)) benchkit.Side {
		return benchkit.Side{Name: name, Op: func() error {
			n, err := op()
			if err == nil && n != want {
				err = fmt.Errorf("%d, want %d", n, want)
			}
			return err
		}}
	}
	countRaw, err := e.raw.PrepareContext(ctx, `SELECT count(*) FROM kv INDEXED BY kv_cover WHERE key >= ? AND (expires_at = 0 OR expires_at > ?)`)
	if err != nil {
		b.Fatal(err)
	}
	defer countRaw.Close()
	b.Run("count", func(b *testing.B) {
		benchkit.Interleave(b, "raw",
			check("plugin", want, func() (int64, error) { r, err := e.plugin.Count(ctx, ""); return r.Count, err }),
			check("store", want, func() (int64, error) { r, err := e.store.Count(ctx, ""); return r.Count, err }),
			check("raw", want, func() (int64, error) {
				var n int64
				err := countRaw.QueryRowContext(ctx, "", time.Now().UnixMilli()).Scan(&n)
				return n, err
			}))
	})

	statsRaw, err := e.raw.PrepareContext(ctx, `SELECT count(*), coalesce(sum(size), 0) FROM kv INDEXED BY kv_cover
		WHERE expires_at = 0 OR expires_at > ?`)
	if err != nil {
		b.Fatal(err)
	}
	defer statsRaw.Close()
	b.Run("stats", func(b *testing.B) {
		benchkit.Interleave(b, "raw",
			check("plugin", want, func() (int64, error) { s, err := e.plugin.Stats(ctx); return s.Keys, err }),
			check("store", want, func() (int64, error) { s, err := e.store.Stats(ctx); return s.Keys, err }),
			check("raw", want, func() (int64, error) {
				var n, bytes int64
				err := statsRaw.QueryRowContext(ctx, time.Now().UnixMilli()).Scan(&n, &bytes)
				return n, err
			}))
	})

	const prefix = "s042/"
	req := kv.ListRequest{Prefix: prefix, Limit: kv.MaxListLimit}
	listRaw, err := e.raw.PrepareContext(ctx, `SELECT key, value, version, expires_at FROM kv
		WHERE key >= ? AND key < ? AND (expires_at = 0 OR expires_at > ?) ORDER BY key LIMIT ?`)
	if err != nil {
		b.Fatal(err)
	}
	defer listRaw.Close()
	b.Run("list10K", func(b *testing.B) {
		benchkit.Interleave(b, "raw",
			check("plugin", 10_000, func() (int64, error) { r, err := e.plugin.List(ctx, req); return int64(len(r.Entries)), err }),
			check("store", 10_000, func() (int64, error) { r, err := e.store.List(ctx, req); return int64(len(r.Entries)), err }),
			check("raw", 10_000, func() (int64, error) {
				r, err := rawList(ctx, listRaw, prefix, kv.PrefixEnd(prefix), req.Limit)
				return int64(len(r)), err
			}))
	})
}

// BenchmarkCoverCost is what kv_cover (schema 3) costs a batch of 1K new
// keys: two plugins, two stores and two raw databases, one of each pair
// with the index dropped (the plugin's from outside, through its database
// file: its statements re-prepare), all written in turn in one loop
// (benchkit.Interleave) so that every side sees the same load; ratios are
// to the store without the index. Each side makes its own keys and ops
// inside the timed call, the same work for all.
//
//	go test -run '^$' -bench CoverCost -benchtime 300x -count 3 ./plugins/sqlite/
func BenchmarkCoverCost(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	open := func(name string, cover bool) *Store {
		s, err := New(ctx, Config{Path: filepath.Join(dir, name+".db")})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		if !cover {
			if _, err := s.w.ExecContext(ctx, `DROP INDEX kv_cover`); err != nil {
				b.Fatal(err)
			}
		}
		return s
	}
	raw := func(name string, cover bool) *sql.DB {
		db := openRaw(b, filepath.Join(dir, name+".db"))
		if !cover {
			if _, err := db.ExecContext(ctx, `DROP INDEX kv_cover`); err != nil {
				b.Fatal(err)
			}
		}
		return db
	}
	plugin := func(name string, cover bool) *pluginapi.Plugin {
		path := filepath.Join(dir, name+".db")
		p, err := pluginapi.Start(ctx, pluginapi.StartConfig{
			Path:     testbin.Plugin(b, "sqlite"),
			Settings: map[string]string{"path": path},
			Logger:   hclog.NewNullLogger(),
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(p.Kill)
		if !cover {
			db, err := sql.Open("sqlite", (&Store{cfg: Config{}.withDefaults(), path: path}).dsn(false))
			if err != nil {
				b.Fatal(err)
			}
			_, err = db.ExecContext(ctx, `DROP INDEX kv_cover`)
			db.Close()
			if err != nil {
				b.Fatal(err)
			}
		}
		return p
	}
	pluginSide := func(name string, p *pluginapi.Plugin) benchkit.Side {
		next := benchkit.BatchKeys()
		return benchkit.Side{Name: name, Op: func() error { _, err := p.Batch(ctx, benchkit.PutOps(next())); return err }}
	}
	storeSide := func(name string, s *Store) benchkit.Side {
		next := benchkit.BatchKeys()
		return benchkit.Side{Name: name, Op: func() error { _, err := s.Batch(ctx, benchkit.PutOps(next())); return err }}
	}
	rawSide := func(name string, db *sql.DB) benchkit.Side {
		next := benchkit.BatchKeys()
		return benchkit.Side{Name: name, Op: func() error { rawInsert(b, db, next(), 0); return nil }}
	}
	benchkit.Interleave(b, "store",
		pluginSide("plugin-cover", plugin("plugincover", true)),
		pluginSide("plugin", plugin("pluginnocover", false)),
		storeSide("store-cover", open("cover", true)),
		storeSide("store", open("nocover", false)),
		rawSide("raw-cover", raw("rawcover", true)),
		rawSide("raw", raw("rawnocover", false)),
	)
}
