package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/plugins/internal/sqlkv"
)

// The write operations are sqlkv.Writer's, over the statements below: the
// SQLite dialect of sqlkv.Tx on the writer connection, inside the
// transaction Store.update holds.

// Put stores a value under its condition. The entry returned carries the
// key, the new version (the change's revision) and the expiry, not the
// value.
func (s *Store) Put(ctx context.Context, req kv.PutRequest) (kv.Entry, error) {
	return s.ops.Put(ctx, req)
}

// Delete removes key under its condition and says whether it did. A
// missing or expired key is not an error, unless the condition names a
// version: then it is a conflict with current version 0.
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

// RefreshTTL changes only the expiry of a live key: the value and version
// stay; the change takes a revision and emits a TTL event. A missing or
// expired key is ErrNotFound.
func (s *Store) RefreshTTL(ctx context.Context, req kv.RefreshRequest) (kv.RefreshResult, error) {
	return s.ops.RefreshTTL(ctx, req)
}

// Batch applies ops in order in one transaction: all or none. A failed
// condition is a *ConflictError whose OpIndex names the op.
func (s *Store) Batch(ctx context.Context, ops []kv.Op) (kv.BatchResult, error) {
	return s.ops.Batch(ctx, ops)
}

// CleanupExpired removes up to limit expired keys (DefaultCleanupBatch when
// limit <= 0), at most DefaultCleanupBatch per transaction so that writers
// are never held up for long, and emits an EXPIRE event for each with the
// version the key had: each key its own revision, in key order within one
// transaction. It then prunes history to its retention.
func (s *Store) CleanupExpired(ctx context.Context, limit int) (int64, error) {
	return s.ops.CleanupExpired(ctx, limit)
}

// writeTx is the SQLite dialect of sqlkv.Tx: the writer connection's
// statements, run while Store.update holds the writer mutex and its
// transaction. Statements on one key are bounded work and run on a
// context that cannot be cancelled (the driver pays for a cancellable
// context with a goroutine per statement, which costs more than such a
// statement); the range and expiry deletes run on the caller's context,
// which can interrupt them.
type writeTx struct{ ws *writeStmts }

var _ sqlkv.Tx = writeTx{}

// rowArgs are a row's named arguments for the upsert statements.
func rowArgs(r sqlkv.Row, nowMs int64) []any {
	return []any{sql.Named("key", r.Key), sql.Named("value", r.Value), sql.Named("version", r.Version),
		sql.Named("expires_at", r.ExpMs), sql.Named("now", nowMs), sql.Named("size", len(r.Key)+len(r.Value))}
}

// Upsert stores rows with the multi-row upserts of upsertRunSizes, and the
// rest, shorter than the smallest size, one by one.
func (w writeTx) Upsert(ctx context.Context, rows []sqlkv.Row, nowMs int64) error {
	ctx = context.WithoutCancel(ctx)
	args := make([]any, 0, 7*min(len(rows), upsertRunSizes[0]))
	for len(rows) > 0 {
		n, st := 0, (*sql.Stmt)(nil)
		for _, size := range upsertRunSizes {
			if len(rows) >= size {
				n, st = size, w.ws.upsertRows[size]
				break
			}
		}
		if st == nil {
			for _, r := range rows {
				if _, err := w.ws.upsert.ExecContext(ctx, rowArgs(r, nowMs)...); err != nil {
					return mapErr(err)
				}
			}
			return nil
		}
		args = args[:0]
		for _, r := range rows[:n] {
			args = append(args, r.Key, r.Value, r.Version, r.ExpMs, nowMs, nowMs, len(r.Key)+len(r.Value))
		}
		if _, err := st.ExecContext(ctx, args...); err != nil {
			return mapErr(err)
		}
		rows = rows[n:]
	}
	return nil
}

// changed runs a conditional write and says whether it changed a row.
func changed(res sql.Result, err error) (bool, error) {
	if err != nil {
		return false, mapErr(err)
	}
	n, err := res.RowsAffected()
	return n > 0, mapErr(err)
}

func (w writeTx) InsertAbsent(ctx context.Context, r sqlkv.Row, nowMs int64) (bool, error) {
	return changed(w.ws.insertAbsent.ExecContext(context.WithoutCancel(ctx), rowArgs(r, nowMs)...))
}

func (w writeTx) UpdateVersion(ctx context.Context, r sqlkv.Row, cond, nowMs int64) (bool, error) {
	return changed(w.ws.updateVersion.ExecContext(context.WithoutCancel(ctx), append(rowArgs(r, nowMs), sql.Named("cond", cond))...))
}

// version scans the version a RETURNING version statement answered: 0
// when it matched no row.
func version(row *sql.Row) (int64, error) {
	var v int64
	err := row.Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return v, mapErr(err)
}

func (w writeTx) Delete(ctx context.Context, key string, cond, nowMs int64) (int64, error) {
	return version(w.ws.del.QueryRowContext(context.WithoutCancel(ctx),
		sql.Named("key", key), sql.Named("cond", cond), sql.Named("now", nowMs)))
}

func (w writeTx) Refresh(ctx context.Context, key string, cond, expMs, nowMs int64) (int64, error) {
	return version(w.ws.refresh.QueryRowContext(context.WithoutCancel(ctx),
		sql.Named("key", key), sql.Named("cond", cond), sql.Named("now", nowMs), sql.Named("expires_at", expMs)))
}

func (w writeTx) Live(ctx context.Context, key string, nowMs int64) (sqlkv.Row, error) {
	r := sqlkv.Row{Key: key}
	err := w.ws.liveRow.QueryRowContext(context.WithoutCancel(ctx), sql.Named("key", key), sql.Named("now", nowMs)).
		Scan(&r.Value, &r.Version, &r.ExpMs)
	if errors.Is(err, sql.ErrNoRows) {
		return sqlkv.Row{Key: key}, nil
	}
	return r, mapErr(err)
}

func (w writeTx) DeleteRange(ctx context.Context, lo, hi string, nowMs int64) ([]sqlkv.Removed, error) {
	args := []any{sql.Named("lo", lo), sql.Named("now", nowMs)}
	end := 0
	if hi != "" {
		end = 1
		args = append(args, sql.Named("hi", hi))
	}
	return collect(ctx, w.ws.deletePrefix[end], args...)
}

func (w writeTx) DeleteExpired(ctx context.Context, limit, nowMs int64) ([]sqlkv.Removed, error) {
	return collect(ctx, w.ws.cleanup, sql.Named("now", nowMs), sql.Named("limit", limit))
}

// collect runs a DELETE ... RETURNING key, version and gathers its rows.
func collect(ctx context.Context, st *sql.Stmt, args ...any) ([]sqlkv.Removed, error) {
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	var out []sqlkv.Removed
	for rows.Next() {
		var r sqlkv.Removed
		if err := rows.Scan(&r.Key, &r.Version); err != nil {
			return nil, mapErr(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(err)
	}
	return out, mapErr(rows.Close())
}
