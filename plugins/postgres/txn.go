package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/plugins/internal/sqlkv"
)

// Revisions. Every write transaction begins by locking the one meta row
// (SELECT ... FOR UPDATE), takes its revisions from it, and writes the
// new revision back before it commits. Writers therefore take turns on
// that row: a transaction that takes revision n commits before the next
// one can read n, so revision order is commit order, and a reader that
// sees meta.rev = n in its snapshot sees every change up to n and none
// after. No watcher can skip a revision that commits late, and none waits
// on one that never commits (kine #82, #759: sequence values are handed
// out before commit). Serialised writers also make every conditional
// write, increment, refresh and batch atomic under READ COMMITTED: no
// other writer runs between a transaction's read and its write.
// docs/RATIONALE.md weighs this against a sequence and a safe revision.

// pruneBatch bounds how many revisions of history one transaction prunes.
const pruneBatch = 4096

// update runs fn in one transaction holding the revision row. When fn
// succeeds it writes the history rows of its changes and the revision,
// notifies the store's channel and commits; the follower then publishes
// the changes from the log. When fn or the commit fails, nothing of it
// remains.
func (s *Store) update(ctx context.Context, fn func(ctx context.Context, t *sqlkv.Txn) error) error {
	_, _, err := s.transact(ctx, fn, false)
	return err
}

// Round trips. A write costs two: the first sends BEGIN and the lock of
// the revision row together; the second sends what the operation wrote,
// the history rows, the revision, the notification and COMMIT together.
// writeTx defers the statements whose answer nobody needs (unconditional
// upserts) into that second one; a statement whose answer decides what
// comes next (a conditional write, a read, a delete that returns what it
// removed) goes at once, with whatever was deferred before it.

// transact is update that, when prune is set, also prunes up to
// pruneBatch revisions of history past retention; it returns the compact
// revision before and after. Only pruneHistory prunes: a write that
// pruned could remove what a lagging follower on another host has yet to
// publish.
func (s *Store) transact(ctx context.Context, fn func(ctx context.Context, t *sqlkv.Txn) error, prune bool) (before, after int64, err error) {
	if err := s.checkOpen(); err != nil {
		return 0, 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return 0, 0, mapErr(err)
	}
	// A connection released inside a transaction (a statement failed, or
	// its answer was lost) is closed by the pool, never reused: the
	// transaction dies with it.
	defer conn.Release()
	w := &writeTx{s: s, conn: conn, pending: &pgx.Batch{}}
	var rev int64
	lock := &pgx.Batch{}
	lock.Queue(`BEGIN`)
	lock.Queue(s.sql(`SELECT rev, compact FROM {s}.meta WHERE id = 1 FOR UPDATE`)).QueryRow(func(r pgx.Row) error { return r.Scan(&rev, &before) })
	if err := conn.SendBatch(ctx, lock).Close(); err != nil {
		w.rollback()
		return 0, 0, mapErr(err)
	}
	t := sqlkv.NewTxn(w, s.cfg.now(), rev)
	if err := fn(ctx, t); err != nil {
		w.rollback()
		return 0, 0, err
	}
	after = s.finish(w.pending, t, before, prune)
	w.pending.Queue(`COMMIT`)
	// The work is done: commit even if ctx ended meanwhile, so that an
	// acknowledged write and a committed one are the same thing. A
	// commit whose answer is lost is reported unavailable: it may or may
	// not have committed, which the caller learns by reading.
	if err := w.flush(context.WithoutCancel(ctx)); err != nil {
		w.rollback()
		return 0, 0, err
	}
	if len(t.Events()) > 0 {
		s.follow.kick()
	}
	return before, after, nil
}

// finish queues on b the history rows, any pruning, the revision and the
// notification, and returns the compact revision it leaves.
func (s *Store) finish(b *pgx.Batch, t *sqlkv.Txn, compact int64, prune bool) int64 {
	evs := t.Events()
	excess := sqlkv.Retention(s.cfg.History).Excess(t.Rev(), compact)
	prune = prune && excess > 0
	if len(evs) == 0 && !prune {
		return compact
	}
	if len(evs) > 0 {
		n := len(evs)
		revs, types, keys := make([]int64, n), make([]int16, n), make([]string, n)
		values, versions, exps := make([][]byte, n), make([]int64, n), make([]int64, n)
		for i, ev := range evs {
			revs[i], types[i], keys[i] = ev.Revision, toStored(ev.Type), ev.Key
			values[i], versions[i], exps[i] = ev.Value, ev.Version, kv.UnixMillis(ev.ExpiresAt)
			if ev.Type != kv.EventPut {
				values[i] = nil
			}
		}
		b.Queue(s.sql(`INSERT INTO {s}.history (rev, type, key, value, version, expires_at)
			SELECT * FROM unnest($1::bigint[], $2::smallint[], $3::text[], $4::bytea[], $5::bigint[], $6::bigint[])`),
			revs, types, keys, values, versions, exps)
	}
	if prune {
		compact += min(excess, pruneBatch)
		b.Queue(s.sql(`DELETE FROM {s}.history WHERE rev <= $1`), compact)
	}
	b.Queue(s.sql(`UPDATE {s}.meta SET rev = $1, compact = $2 WHERE id = 1`), t.Rev(), compact)
	if len(evs) > 0 {
		b.Queue(`SELECT pg_notify($1, $2)`, "kvhost_"+s.cfg.Schema, fmt.Sprint(t.Rev()))
	}
	return compact
}
