package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// The SQL of every statement the store prepares, in one place: the store
// prepares these texts and TestQueryPlans checks the same texts search the
// index they should.

// live is the expiry filter every read and condition applies: a key with
// an expiry at or before now is invisible at once, whether or not cleanup
// has removed its row yet (kv.Expired).
//
// The unary + keeps :now out of the planner's sight. Without it, once
// SQLite re-prepares a statement it ties the plan to the value bound to
// :now (comparing it with the expiry index's expires_at > 0), and from
// then on every new :now, that is every millisecond, recompiles the
// statement: the LEFT JOIN point get paid about 40 µs per call for that
// (its ratio to a plugin ping went from 1.25 to 1.7).
const live = `(expires_at = 0 OR expires_at > +:now)`

// Reads report the store revision they were served at. Each read is one
// statement, which SQLite runs in one read transaction on one WAL
// snapshot, and reads last_version in that statement: the data and the
// revision come from the same snapshot. Reads that may match nothing
// start from the one last_version row and LEFT JOIN the data to it, so
// they return a row (of NULLs) with the revision even then.
const (
	revisionOf = `(SELECT value FROM ` + metaTable + ` WHERE name = 'last_version')`
	compactOf  = `(SELECT value FROM ` + metaTable + ` WHERE name = 'compact_revision')`
	fromMeta   = ` FROM ` + metaTable + ` AS m LEFT JOIN kv ON `
	whereMeta  = ` WHERE m.name = 'last_version'`

	// getSQL is the hot path: one statement, one row, version 0 when the
	// key is missing or expired (every stored version is above 0).
	getSQL = `SELECT m.value, kv.value, coalesce(kv.version, 0), coalesce(kv.expires_at, 0)` +
		fromMeta + `kv.key = :key AND ` + live + whereMeta
	getManySQL = `SELECT m.value, coalesce(kv.key, ''), kv.value, coalesce(kv.version, 0), coalesce(kv.expires_at, 0)` +
		fromMeta + `kv.key IN (SELECT value FROM json_each(:keys)) AND ` + live + whereMeta
	// size is the row's key plus value bytes, kept by every write, so that
	// stats, like count, reads only the covering index kv_cover.
	statsSQL = `SELECT ` + revisionOf + `, ` + compactOf + `, count(*), coalesce(sum(size), 0)
		FROM kv WHERE ` + live
)

// keyRange is the key-range condition of a prefix scan on column col:
// col >= :lo (col > :lo when after), and col < :hi when end. Prefixes are
// ranges, never LIKE, whose wildcards the contract treats as literals.
func keyRange(col string, after, end bool) string {
	q := col + ` >= :lo`
	if after {
		q = col + ` > :lo`
	}
	if end {
		q += ` AND ` + col + ` < :hi`
	}
	return q
}

// listSQL reads one page of a prefix scan; an empty page is one row with
// an empty key.
func listSQL(end, after, keysOnly bool) string {
	cols := `m.value, coalesce(kv.key, ''), kv.value, coalesce(kv.version, 0), coalesce(kv.expires_at, 0)`
	if keysOnly {
		cols = `m.value, coalesce(kv.key, ''), NULL, coalesce(kv.version, 0), coalesce(kv.expires_at, 0)`
	}
	return `SELECT ` + cols + fromMeta + keyRange("kv.key", after, end) + ` AND ` + live + whereMeta +
		` ORDER BY kv.key LIMIT :limit`
}

func countSQL(end bool) string {
	return `SELECT ` + revisionOf + `, count(*) FROM kv WHERE ` + keyRange("key", false, end) + ` AND ` + live
}

// historySQL reads the history chunks from the one holding revision
// :from on, with the store and compact revisions of the same snapshot; no
// chunk is one row with revision 0. The chunk holding :from is the last
// one starting at or before it, if it reaches :from: a read from past
// the head (a watch that starts at the next revision) reads no chunk.
const historySQL = `SELECT m.value, c.value, coalesce(h.revision, 0), coalesce(h.last, 0), h.events
	FROM ` + metaTable + ` AS m JOIN ` + metaTable + ` AS c ON c.name = 'compact_revision'
	LEFT JOIN kv_history AS h ON h.revision >= coalesce(
		(SELECT CASE WHEN last >= :from THEN revision END FROM (
			SELECT revision, last FROM kv_history WHERE revision <= :from ORDER BY revision DESC LIMIT 1)), :from)` +
	whereMeta + ` ORDER BY h.revision`

// cleanupSQL removes up to :limit expired rows, earliest expiry first.
// expires_at > 0 lets the planner use the partial index, which covers the
// subquery; deleting by rowid spares a key-index lookup per row. A WITHOUT
// ROWID table (BenchmarkLayout only) has no rowid: it deletes by key.
func cleanupSQL(withoutRowID bool) string {
	id := "rowid"
	if withoutRowID {
		id = "key"
	}
	return `DELETE FROM kv WHERE ` + id + ` IN (
			SELECT ` + id + ` FROM kv WHERE expires_at > 0 AND expires_at <= :now ORDER BY expires_at LIMIT :limit
		) RETURNING key, version`
}

func deletePrefixSQL(end bool) string {
	return `DELETE FROM kv WHERE ` + keyRange("key", false, end) + ` AND ` + live + ` RETURNING key, version`
}

const (
	// size is the key's plus the value's bytes (len in Go: a string's
	// bytes), for kv_cover.
	insertInto = `INSERT INTO kv (key, value, version, expires_at, created_at, updated_at, size) VALUES `
	onConflict = ` ON CONFLICT (key) DO UPDATE SET
		value = excluded.value, version = excluded.version, expires_at = excluded.expires_at, updated_at = excluded.updated_at,
		size = excluded.size,
		created_at = CASE WHEN kv.expires_at <> 0 AND kv.expires_at <= excluded.updated_at THEN excluded.created_at ELSE kv.created_at END`
	upsertSQL     = insertInto + `(:key, :value, :version, :expires_at, :now, :now, :size)` + onConflict
	histInsertSQL = `INSERT INTO kv_history (revision, last, events) VALUES (:first, :last, :events)`
	// pruneSQL deletes the history chunks that lie wholly at or before
	// :upto: a range from the front of the table, since chunks follow each
	// other from the compact revision on.
	pruneSQL = `DELETE FROM kv_history WHERE revision <= :upto AND last <= :upto RETURNING last`
)

// upsertRowsSQL stores n rows in one statement.
func upsertRowsSQL(n int) string {
	return insertInto + strings.Repeat("(?, ?, ?, ?, ?, ?, ?), ", n-1) + "(?, ?, ?, ?, ?, ?, ?)" + onConflict
}

type writeStmts struct {
	begin, commit, rollback, setRevision, setCompact *sql.Stmt
	upsert, insertAbsent, updateVersion              *sql.Stmt
	liveRow                                          *sql.Stmt
	del, refresh, histInsert, prune                  *sql.Stmt
	// upsertRows[n] stores n rows in one statement, for runs of
	// unconditional puts in a batch (see txn.putRun).
	upsertRows map[int]*sql.Stmt
	// deletePrefix[end]
	deletePrefix [2]*sql.Stmt
	cleanup      *sql.Stmt
}

type readStmts struct {
	get, getMany, stats, history *sql.Stmt
	// list[end][after][keysOnly]: end says whether the range has an upper
	// bound, after whether the lower bound is exclusive (StartAfter).
	list [2][2][2]*sql.Stmt
	// count[end]
	count [2]*sql.Stmt
}

// upsertRunSizes are the row counts of the multi-row upserts, largest
// first. A run of unconditional puts in a batch goes through them: one
// statement per up to 64 rows costs about a third less than a statement
// per row (BenchmarkBatchInsert1K), with the same effect, since SQLite
// applies the rows in order and a later row's conflict sees an earlier one.
var upsertRunSizes = []int{64, 8}

type preparer interface {
	PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
}

// prepareAll prepares each query on c into its destination, and keeps
// every statement for Close.
func (s *Store) prepareAll(ctx context.Context, c preparer, queries map[**sql.Stmt]string) error {
	var errs []error
	for dst, query := range queries {
		st, err := c.PrepareContext(ctx, query)
		if err != nil {
			errs = append(errs, fmt.Errorf("sqlite: prepare %q: %w", query, mapErr(err)))
			continue
		}
		s.stmts = append(s.stmts, st)
		*dst = st
	}
	return errors.Join(errs...)
}

func (s *Store) prepareWrites(ctx context.Context) error {
	ws := &s.ws
	q := map[**sql.Stmt]string{
		&ws.begin:       `BEGIN IMMEDIATE`,
		&ws.commit:      `COMMIT`,
		&ws.rollback:    `ROLLBACK`,
		&ws.setRevision: `UPDATE ` + metaTable + ` SET value = :rev WHERE name = 'last_version'`,
		&ws.setCompact:  `UPDATE ` + metaTable + ` SET value = :rev WHERE name = 'compact_revision'`,
		&ws.upsert:      upsertSQL,
		// if-absent: the insert may only replace an expired row.
		&ws.insertAbsent: upsertSQL + ` WHERE kv.expires_at <> 0 AND kv.expires_at <= excluded.updated_at`,
		&ws.updateVersion: `UPDATE kv SET value = :value, version = :version, expires_at = :expires_at, updated_at = :now, size = :size
			WHERE key = :key AND version = :cond AND ` + live,
		&ws.liveRow: `SELECT value, version, expires_at FROM kv WHERE key = :key AND ` + live,
		&ws.del:     `DELETE FROM kv WHERE key = :key AND (:cond = 0 OR version = :cond) AND ` + live + ` RETURNING version`,
		&ws.refresh: `UPDATE kv SET expires_at = :expires_at, updated_at = :now
			WHERE key = :key AND (:cond = 0 OR version = :cond) AND ` + live + ` RETURNING version`,
		&ws.histInsert:      histInsertSQL,
		&ws.prune:           pruneSQL,
		&ws.deletePrefix[0]: deletePrefixSQL(false),
		&ws.deletePrefix[1]: deletePrefixSQL(true),
		&ws.cleanup:         cleanupSQL(s.cfg.withoutRowID),
	}
	upserts := map[int]**sql.Stmt{}
	for _, n := range upsertRunSizes {
		upserts[n] = new(*sql.Stmt)
		q[upserts[n]] = upsertRowsSQL(n)
	}
	err := s.prepareAll(ctx, s.w, q)
	ws.upsertRows = map[int]*sql.Stmt{}
	for n, st := range upserts {
		ws.upsertRows[n] = *st
	}
	return err
}

func (s *Store) prepareReads(ctx context.Context) error {
	rs := &s.rs
	q := map[**sql.Stmt]string{
		&rs.get:     getSQL,
		&rs.getMany: getManySQL,
		&rs.stats:   statsSQL,
		&rs.history: historySQL,
	}
	for end := range 2 {
		q[&rs.count[end]] = countSQL(end == 1)
		for after := range 2 {
			for keysOnly := range 2 {
				q[&rs.list[end][after][keysOnly]] = listSQL(end == 1, after == 1, keysOnly == 1)
			}
		}
	}
	return s.prepareAll(ctx, s.rdb, q)
}
