package postgres

import (
	"bytes"
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

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
	// EncodeChunks reuses its buffer and the batch encodes its arguments
	// when it is sent: each chunk gets its own copy.
	_ = sqlkv.EncodeChunks(evs, func(first, last int64, chunk []byte) error {
		b.Queue(s.sql(`INSERT INTO {s}.history_chunks (rev, last, events) VALUES ($1, $2, $3)`), first, last, bytes.Clone(chunk))
		return nil
	})
	if prune {
		compact += min(excess, pruneBatch)
		// Only chunks wholly at or before compact go: one that straddles
		// it stays, and reads skip its revisions up to compact.
		b.Queue(s.sql(`DELETE FROM {s}.history_chunks WHERE rev <= $1 AND last <= $1`), compact)
	}
	b.Queue(s.sql(`UPDATE {s}.meta SET rev = $1, compact = $2 WHERE id = 1`), t.Rev(), compact)
	if len(evs) > 0 {
		b.Queue(`SELECT pg_notify($1, $2)`, "kvhost_"+s.cfg.Schema, fmt.Sprint(t.Rev()))
	}
	return compact
}
