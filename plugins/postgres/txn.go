package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kvhost/kvhost/kv"
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

// txn is one write transaction.
type txn struct {
	s     *Store
	tx    pgx.Tx
	ctx   context.Context
	now   time.Time
	nowMs int64
	// rev is the last revision taken; compact the last revision pruned
	// from history.
	rev, compact int64
	events       []kv.Event
	// prune: this transaction prunes history past retention (only
	// CleanupExpired does: a write that pruned could remove what a
	// lagging follower on another host has yet to publish).
	prune bool
}

// update runs fn in one transaction holding the revision row. When fn
// succeeds it writes the history rows of its changes, the revision and
// any pruning, notifies the store's channel and commits; the follower
// then publishes the changes from the log. When fn or the commit fails,
// nothing of it remains.
func (s *Store) update(ctx context.Context, fn func(t *txn) error, done ...func(t *txn)) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return mapErr(err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }() // a no-op after Commit
	now := s.cfg.now()
	t := &txn{s: s, tx: tx, ctx: ctx, now: now, nowMs: now.UnixMilli()}
	if err := tx.QueryRow(ctx, s.sql(`SELECT rev, compact FROM {s}.meta WHERE id = 1 FOR UPDATE`)).Scan(&t.rev, &t.compact); err != nil {
		return mapErr(err)
	}
	if err := fn(t); err != nil {
		return err
	}
	if err := t.finish(); err != nil {
		return err
	}
	// The work is done: commit even if ctx ended meanwhile, so that an
	// acknowledged write and a committed one are the same thing. A
	// commit whose answer is lost is reported unavailable: it may or may
	// not have committed, which the caller learns by reading.
	if err := tx.Commit(context.WithoutCancel(ctx)); err != nil {
		return mapErr(err)
	}
	if len(t.events) > 0 {
		s.follow.kick()
	}
	for _, d := range done {
		d(t)
	}
	return nil
}

// finish writes the history rows, the revision, the notification and any
// pruning in one round trip.
func (t *txn) finish() error {
	s := t.s
	excess := t.rev - int64(s.cfg.History) - t.compact
	doPrune := excess > 0 && t.prune
	if len(t.events) == 0 && !doPrune {
		return nil
	}
	b := &pgx.Batch{}
	if len(t.events) > 0 {
		n := len(t.events)
		revs, types, keys := make([]int64, n), make([]int16, n), make([]string, n)
		values, versions, exps := make([][]byte, n), make([]int64, n), make([]int64, n)
		for i, ev := range t.events {
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
	if doPrune {
		upto := t.compact + min(excess, pruneBatch)
		b.Queue(s.sql(`DELETE FROM {s}.history WHERE rev <= $1`), upto)
		t.compact = upto
	}
	b.Queue(s.sql(`UPDATE {s}.meta SET rev = $1, compact = $2 WHERE id = 1`), t.rev, t.compact)
	if len(t.events) > 0 {
		b.Queue(`SELECT pg_notify($1, $2)`, "kvhost_"+s.cfg.Schema, fmt.Sprint(t.rev))
	}
	br := t.tx.SendBatch(t.ctx, b)
	for range b.Len() {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return fmt.Errorf("record history: %w", mapErr(err))
		}
	}
	return mapErr(br.Close())
}

// record takes the next revision for one change and keeps its event.
func (t *txn) record(typ kv.EventType, key string, value []byte, version, expMs int64) int64 {
	t.rev++
	t.events = append(t.events, kv.Event{
		Type: typ, Key: key, Value: value, Version: version, Revision: t.rev, ExpiresAt: kv.FromUnixMillis(expMs),
	})
	return t.rev
}

// recordRemoved records removed keys (DELETE or EXPIRE), each with its
// own revision, in key order.
func (t *txn) recordRemoved(typ kv.EventType, removed []kv.Event) {
	slices.SortFunc(removed, func(a, b kv.Event) int { return strings.Compare(a.Key, b.Key) })
	for _, ev := range removed {
		t.record(typ, ev.Key, nil, ev.Version, 0)
	}
}

func conflict(key string, current int64, opIndex int) error {
	return &kv.ConflictError{Key: key, CurrentVersion: current, OpIndex: opIndex}
}

// live is the expiry filter of every read and condition: a key whose
// expiry has passed is invisible at once, whether or not cleanup has
// removed its row yet.
const live = `(expires_at = 0 OR expires_at > @now)`

// liveVersion is the version of the live key, 0 when absent or expired.
func (t *txn) liveVersion(key string) (int64, error) {
	var v int64
	err := t.tx.QueryRow(t.ctx, t.s.sql(`SELECT version FROM {s}.kv WHERE key = @key AND `+live),
		pgx.NamedArgs{"key": key, "now": t.nowMs}).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return v, mapErr(err)
}

// expiryMs is the stored expiry of a TTL set now: unix ms, 0 for none.
func (t *txn) expiryMs(ttl time.Duration) int64 { return kv.UnixMillis(kv.ExpiryAt(t.now, ttl)) }

const (
	upsertSQL = `INSERT INTO {s}.kv AS kv (key, value, version, expires_at) VALUES (@key, @value, @version, @expires_at)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = excluded.version, expires_at = excluded.expires_at`
	// insertAbsentSQL replaces only an expired row: a live one is a conflict.
	insertAbsentSQL = `INSERT INTO {s}.kv AS kv (key, value, version, expires_at) VALUES (@key, @value, @version, @expires_at)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = excluded.version, expires_at = excluded.expires_at
		WHERE kv.expires_at <> 0 AND kv.expires_at <= @now`
	updateVersionSQL = `UPDATE {s}.kv SET value = @value, version = @version, expires_at = @expires_at
		WHERE key = @key AND version = @cond AND ` + live
	deleteSQL = `DELETE FROM {s}.kv WHERE key = @key AND (@cond::bigint = 0 OR version = @cond::bigint) AND ` + live + ` RETURNING version`
)

// put stores one value under its condition; opIndex is -1 outside a batch.
func (t *txn) put(key string, value []byte, ttl time.Duration, cond kv.Condition, opIndex int) (kv.OpResult, error) {
	if value == nil {
		value = []byte{} // nil binds as NULL
	}
	expMs := t.expiryMs(ttl)
	v := t.rev + 1
	args := pgx.NamedArgs{"key": key, "value": value, "version": v, "expires_at": expMs, "now": t.nowMs}
	q := upsertSQL
	switch cond.Kind {
	case kv.CondNone:
	case kv.CondAbsent:
		q = insertAbsentSQL
	case kv.CondVersion:
		q, args["cond"] = updateVersionSQL, cond.Version
	default:
		return kv.OpResult{}, fmt.Errorf("%w: unknown condition kind %d", kv.ErrInvalidArgument, cond.Kind)
	}
	tag, err := t.tx.Exec(t.ctx, t.s.sql(q), args)
	if err != nil {
		return kv.OpResult{}, mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		cur, err := t.liveVersion(key)
		if err != nil {
			return kv.OpResult{}, err
		}
		return kv.OpResult{}, conflict(key, cur, opIndex)
	}
	t.record(kv.EventPut, key, value, v, expMs)
	return kv.OpResult{Version: v, ExpiresAt: kv.FromUnixMillis(expMs), Revision: v}, nil
}

// del removes one key under its condition; opIndex is -1 outside a batch.
// A key that was not there takes no revision.
func (t *txn) del(key string, cond kv.Condition, opIndex int) (kv.OpResult, error) {
	var condVersion int64
	if cond.Kind == kv.CondVersion {
		condVersion = cond.Version
	}
	var v int64
	err := t.tx.QueryRow(t.ctx, t.s.sql(deleteSQL), pgx.NamedArgs{"key": key, "cond": condVersion, "now": t.nowMs}).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		if cond.Kind != kv.CondVersion {
			return kv.OpResult{}, nil
		}
		cur, err := t.liveVersion(key)
		if err != nil {
			return kv.OpResult{}, err
		}
		return kv.OpResult{}, conflict(key, cur, opIndex)
	}
	if err != nil {
		return kv.OpResult{}, mapErr(err)
	}
	return kv.OpResult{Deleted: true, Revision: t.record(kv.EventDelete, key, nil, v, 0)}, nil
}

// putRun stores a run of unconditional puts with one statement over
// arrays: one round trip for the run. A key written twice in the run
// goes in once, with its last value (ON CONFLICT may touch a row only
// once per statement); each op still takes its own revision and event.
func (t *txn) putRun(ops []kv.Op, results []kv.OpResult) error {
	last := make(map[string]int, len(ops))
	for i, op := range ops {
		last[op.Key] = i
	}
	var (
		keys           []string
		values         [][]byte
		versions, exps []int64
	)
	for i, op := range ops {
		value := op.Value
		if value == nil {
			value = []byte{}
		}
		expMs := t.expiryMs(op.TTL)
		v := t.rev + 1 + int64(i)
		results[i] = kv.OpResult{Version: v, ExpiresAt: kv.FromUnixMillis(expMs), Revision: v}
		if last[op.Key] == i {
			keys, values, versions, exps = append(keys, op.Key), append(values, value), append(versions, v), append(exps, expMs)
		}
	}
	_, err := t.tx.Exec(t.ctx, t.s.sql(`INSERT INTO {s}.kv AS kv (key, value, version, expires_at)
		SELECT * FROM unnest($1::text[], $2::bytea[], $3::bigint[], $4::bigint[])
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = excluded.version, expires_at = excluded.expires_at`),
		keys, values, versions, exps)
	if err != nil {
		return mapErr(err)
	}
	for i, op := range ops {
		value := op.Value
		if value == nil {
			value = []byte{}
		}
		t.record(kv.EventPut, op.Key, value, results[i].Version, kv.UnixMillis(results[i].ExpiresAt))
	}
	return nil
}

// collect runs a DELETE ... RETURNING key, version and gathers its rows.
func (t *txn) collect(q string, args ...any) ([]kv.Event, error) {
	rows, err := t.tx.Query(t.ctx, t.s.sql(q), args...)
	if err != nil {
		return nil, mapErr(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (kv.Event, error) {
		var ev kv.Event
		err := r.Scan(&ev.Key, &ev.Version)
		return ev, err
	})
	return out, mapErr(err)
}
