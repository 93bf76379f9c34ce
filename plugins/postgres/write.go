package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/plugins/internal/sqlkv"
)

// The write operations are sqlkv.Writer's, over the statements below: the
// PostgreSQL dialect of sqlkv.Tx inside the transaction Store.update
// holds.

// minPutRun is the shortest run of unconditional batch puts written with
// one array statement rather than one statement per op.
const minPutRun = 4

// Put stores a value under its condition.
func (s *Store) Put(ctx context.Context, req kv.PutRequest) (kv.Entry, error) {
	return s.ops.Put(ctx, req)
}

// Delete removes key under its condition and says whether it did.
func (s *Store) Delete(ctx context.Context, key string, cond kv.Condition) (kv.DeleteResult, error) {
	return s.ops.Delete(ctx, key, cond)
}

// DeletePrefix removes every live key under a non-empty prefix in one
// transaction, each with its own revision and DELETE event, in key order.
func (s *Store) DeletePrefix(ctx context.Context, prefix string) (kv.DeletePrefixResult, error) {
	return s.ops.DeletePrefix(ctx, prefix)
}

// Increment adds delta to the decimal int64 counter at key. A missing or
// expired key counts from 0 with no expiry; a live key keeps its expiry.
func (s *Store) Increment(ctx context.Context, key string, delta int64) (kv.Counter, error) {
	return s.ops.Increment(ctx, key, delta)
}

// RefreshTTL changes only the expiry of a live key.
func (s *Store) RefreshTTL(ctx context.Context, req kv.RefreshRequest) (kv.RefreshResult, error) {
	return s.ops.RefreshTTL(ctx, req)
}

// Batch applies ops in order in one transaction: all or none. Runs of
// unconditional puts go in one statement each.
func (s *Store) Batch(ctx context.Context, ops []kv.Op) (kv.BatchResult, error) {
	return s.ops.Batch(ctx, ops)
}

// CleanupExpired removes up to limit expired keys, DefaultCleanupBatch
// per transaction, each with an EXPIRE event and its own revision, then
// prunes history to its retention. Every host may run it at once: each
// transaction deletes the rows it found, and a row another cleanup
// already removed is not there to delete, so each key's EXPIRE is
// recorded once. SKIP LOCKED passes over rows a writer holds.
func (s *Store) CleanupExpired(ctx context.Context, limit int) (int64, error) {
	return s.ops.CleanupExpired(ctx, limit)
}

// pruneHistory prunes all history past retention, pruneBatch revisions
// per transaction so that writers are never held up for long. It takes
// the revision row only when something is due.
func (s *Store) pruneHistory(ctx context.Context) error {
	for range 1000 { // a bound, not a limit anyone reaches: 4M revisions
		var rev, compact int64
		if err := s.pool.QueryRow(ctx, s.sql(`SELECT rev, compact FROM {s}.meta`)).Scan(&rev, &compact); err != nil {
			return fmt.Errorf("prune history: %w", mapErr(err))
		}
		if sqlkv.Retention(s.cfg.History).Excess(rev, compact) <= 0 {
			return nil
		}
		noop := func(context.Context, *sqlkv.Txn) error { return nil }
		before, after, err := s.transact(ctx, noop, true)
		if err != nil {
			return fmt.Errorf("prune history: %w", err)
		}
		if after == before {
			return nil
		}
	}
	return nil
}

// live is the expiry filter of every read and condition: a key whose
// expiry has passed is invisible at once, whether or not cleanup has
// removed its row yet.
const live = `(expires_at = 0 OR expires_at > @now)`

const (
	upsertSQL = `INSERT INTO {s}.kv AS kv (key, value, version, expires_at) VALUES (@key, @value, @version, @expires_at)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = excluded.version, expires_at = excluded.expires_at`
	// upsertRowsSQL stores arrays of rows in one statement.
	upsertRowsSQL = `INSERT INTO {s}.kv AS kv (key, value, version, expires_at)
		SELECT * FROM unnest($1::text[], $2::bytea[], $3::bigint[], $4::bigint[])
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = excluded.version, expires_at = excluded.expires_at`
	// insertAbsentSQL replaces only an expired row: a live one is a conflict.
	insertAbsentSQL  = upsertSQL + ` WHERE kv.expires_at <> 0 AND kv.expires_at <= @now`
	updateVersionSQL = `UPDATE {s}.kv SET value = @value, version = @version, expires_at = @expires_at
		WHERE key = @key AND version = @cond AND ` + live
	deleteSQL  = `DELETE FROM {s}.kv WHERE key = @key AND (@cond::bigint = 0 OR version = @cond::bigint) AND ` + live + ` RETURNING version`
	refreshSQL = `UPDATE {s}.kv SET expires_at = @expires_at
		WHERE key = @key AND (@cond::bigint = 0 OR version = @cond::bigint) AND ` + live + ` RETURNING version`
	liveSQL = `SELECT value, version, expires_at FROM {s}.kv WHERE key = @key AND ` + live
	// deleteExpiredSQL: SKIP LOCKED passes over rows another host's
	// cleanup or a writer holds.
	deleteExpiredSQL = `DELETE FROM {s}.kv WHERE key IN (
		SELECT key FROM {s}.kv WHERE expires_at > 0 AND expires_at <= @now
		ORDER BY expires_at LIMIT @limit FOR UPDATE SKIP LOCKED) RETURNING key, version`
)

// deleteRangeSQL, by whether the range has an upper bound (rangeCond).
var deleteRangeSQL = [2]string{
	`DELETE FROM {s}.kv WHERE ` + rangeCond(false) + ` AND ` + live + ` RETURNING key, version`,
	`DELETE FROM {s}.kv WHERE ` + rangeCond(true) + ` AND ` + live + ` RETURNING key, version`,
}

// writeTx is the PostgreSQL dialect of sqlkv.Tx: statements on the
// connection that holds the transaction. Upserts wait in pending and go
// with the next statement that needs an answer, or with the commit.
type writeTx struct {
	s       *Store
	conn    *pgxpool.Conn
	pending *pgx.Batch
}

var _ sqlkv.Tx = (*writeTx)(nil)

// flush sends what is pending, in one round trip.
func (w *writeTx) flush(ctx context.Context) error {
	if w.pending.Len() == 0 {
		return nil
	}
	err := w.conn.SendBatch(ctx, w.pending).Close()
	w.pending = &pgx.Batch{}
	return mapErr(err)
}

// rollback ends a failed transaction. A connection that cannot answer is
// closed by the pool when released, which ends the transaction too.
func (w *writeTx) rollback() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = w.conn.Exec(ctx, `ROLLBACK`)
}

func rowArgs(r sqlkv.Row, nowMs int64) pgx.NamedArgs {
	return pgx.NamedArgs{"key": r.Key, "value": r.Value, "version": r.Version, "expires_at": r.ExpMs, "now": nowMs}
}

// Upsert stores one row with one statement and more with one statement
// over arrays. A key given twice goes in once, with its last row (ON
// CONFLICT may touch a row only once per statement). Nothing waits for
// its answer: it goes with the next statement that needs one.
func (w *writeTx) Upsert(_ context.Context, rows []sqlkv.Row, nowMs int64) error {
	if len(rows) == 1 {
		w.pending.Queue(w.s.sql(upsertSQL), rowArgs(rows[0], nowMs))
		return nil
	}
	last := make(map[string]int, len(rows))
	for i, r := range rows {
		last[r.Key] = i
	}
	n := len(last)
	keys, values, versions, exps := make([]string, 0, n), make([][]byte, 0, n), make([]int64, 0, n), make([]int64, 0, n)
	for i, r := range rows {
		if last[r.Key] == i {
			keys, values, versions, exps = append(keys, r.Key), append(values, r.Value), append(versions, r.Version), append(exps, r.ExpMs)
		}
	}
	w.pending.Queue(w.s.sql(upsertRowsSQL), keys, values, versions, exps)
	return nil
}

// changed runs a conditional write and says whether it changed a row.
func (w *writeTx) changed(ctx context.Context, q string, args pgx.NamedArgs) (bool, error) {
	var n int64
	w.pending.Queue(w.s.sql(q), args).Exec(func(ct pgconn.CommandTag) error {
		n = ct.RowsAffected()
		return nil
	})
	return n > 0, w.flush(ctx)
}

func (w *writeTx) InsertAbsent(ctx context.Context, r sqlkv.Row, nowMs int64) (bool, error) {
	return w.changed(ctx, insertAbsentSQL, rowArgs(r, nowMs))
}

func (w *writeTx) UpdateVersion(ctx context.Context, r sqlkv.Row, cond, nowMs int64) (bool, error) {
	args := rowArgs(r, nowMs)
	args["cond"] = cond
	return w.changed(ctx, updateVersionSQL, args)
}

// version runs a RETURNING version statement: 0 when it matched no row.
func (w *writeTx) version(ctx context.Context, q string, args pgx.NamedArgs) (int64, error) {
	var v int64
	w.pending.Queue(w.s.sql(q), args).QueryRow(func(r pgx.Row) error { return noRows(r.Scan(&v)) })
	return v, w.flush(ctx)
}

// noRows makes no row no error: the zero values say it.
func noRows(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	return err
}

func (w *writeTx) Delete(ctx context.Context, key string, cond, nowMs int64) (int64, error) {
	return w.version(ctx, deleteSQL, pgx.NamedArgs{"key": key, "cond": cond, "now": nowMs})
}

func (w *writeTx) Refresh(ctx context.Context, key string, cond, expMs, nowMs int64) (int64, error) {
	return w.version(ctx, refreshSQL, pgx.NamedArgs{"key": key, "cond": cond, "now": nowMs, "expires_at": expMs})
}

func (w *writeTx) Live(ctx context.Context, key string, nowMs int64) (sqlkv.Row, error) {
	r := sqlkv.Row{Key: key}
	w.pending.Queue(w.s.sql(liveSQL), pgx.NamedArgs{"key": key, "now": nowMs}).QueryRow(func(row pgx.Row) error {
		return noRows(row.Scan(&r.Value, &r.Version, &r.ExpMs))
	})
	return r, w.flush(ctx)
}

// DeleteRange deletes the prefix lo's range. sqlkv passes hi as
// kv.PrefixEnd(lo), which need not be UTF-8; keyRange's bound is the same
// range in text PostgreSQL takes.
func (w *writeTx) DeleteRange(ctx context.Context, lo, _ string, nowMs int64) ([]sqlkv.Removed, error) {
	_, hi := keyRange(lo)
	return w.collect(ctx, deleteRangeSQL[b2i(hi != "")], pgx.NamedArgs{"lo": lo, "hi": hi, "now": nowMs})
}

func (w *writeTx) DeleteExpired(ctx context.Context, limit, nowMs int64) ([]sqlkv.Removed, error) {
	return w.collect(ctx, deleteExpiredSQL, pgx.NamedArgs{"now": nowMs, "limit": limit})
}

// collect runs a DELETE ... RETURNING key, version and gathers its rows.
func (w *writeTx) collect(ctx context.Context, q string, args pgx.NamedArgs) ([]sqlkv.Removed, error) {
	var out []sqlkv.Removed
	w.pending.Queue(w.s.sql(q), args).Query(func(rows pgx.Rows) error {
		var err error
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (sqlkv.Removed, error) {
			var rm sqlkv.Removed
			err := r.Scan(&rm.Key, &rm.Version)
			return rm, err
		})
		return err
	})
	return out, w.flush(ctx)
}
