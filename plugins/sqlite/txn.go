package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kvhost/kvhost/kv"
)

// txn is one write transaction on the writer connection. Its statements
// see its own earlier changes; its revisions, history rows and events
// take effect only when it commits.
type txn struct {
	s *Store
	// ctx is for statements whose work is bounded (one key): it cannot be
	// cancelled, because the driver pays for a cancellable context with a
	// goroutine per statement, which costs more than such a statement.
	// scan is the caller's context, for statements over many rows, which
	// it can interrupt; callers check it between bounded statements.
	ctx   context.Context
	scan  context.Context
	now   time.Time
	nowMs int64
	// rev is the last revision taken, committed as last_version; compact
	// the compact revision, committed as compact_revision.
	rev, compact int64
	pruned       bool
	// events are the transaction's changes, one per revision after the
	// store's, in order: its history rows and, once committed, its watch
	// events. They are built whether or not anyone watches: a watch that
	// replays history joins the fan-out later, without the writer mutex.
	events []kv.Event
}

// update runs fn in one IMMEDIATE transaction under the writer mutex. When
// fn succeeds it writes the history rows of its changes, the revision
// counter and any pruning of history, commits, and publishes the events
// while still holding the mutex, so watchers see commit order. When fn or
// the commit fails, nothing of it remains: no row, no revision, no event.
func (s *Store) update(ctx context.Context, fn func(t *txn) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return kv.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	growStack()
	now := s.now()
	t := &txn{s: s, ctx: context.WithoutCancel(ctx), scan: ctx, now: now, nowMs: now.UnixMilli(), rev: s.rev, compact: s.compact}
	if _, err := s.ws.begin.ExecContext(t.ctx); err != nil {
		return mapErr(err)
	}
	err := fn(t)
	if err == nil {
		err = t.finish()
	}
	if err != nil {
		s.rollback()
		return err
	}
	// The work is done: commit even if ctx ended meanwhile, so that an
	// acknowledged write and a committed one are the same thing.
	if _, err := s.ws.commit.ExecContext(context.Background()); err != nil {
		s.rollback()
		return mapErr(err)
	}
	s.rev, s.compact = t.rev, t.compact
	s.hub.Publish(t.events...)
	return nil
}

// rollback ends a failed transaction. SQLite may have rolled it back
// already (an interrupted statement does), so its error says nothing.
func (s *Store) rollback() {
	_, _ = s.ws.rollback.ExecContext(context.Background())
}

// finish writes what the transaction's changes imply: their history rows,
// the revision counter, and, now and then, pruning of old history.
func (t *txn) finish() error {
	if len(t.events) > 0 {
		if err := t.writeHistory(); err != nil {
			return err
		}
		if _, err := t.s.ws.setRevision.ExecContext(t.ctx, sql.Named("rev", t.rev)); err != nil {
			return mapErr(err)
		}
	}
	if t.pruned {
		return nil
	}
	_, err := t.prune(t.s.pruneStep())
	return err
}

// record takes the next revision for one change and keeps its event. A
// put's version is its revision; other changes carry the key's version.
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

// writeHistory records the transaction's changes in history chunks.
func (t *txn) writeHistory() error {
	if t.s.cfg.noHistory {
		return nil
	}
	return encodeChunks(t.events, func(first, last int64, chunk []byte) error {
		_, err := t.s.ws.histInsert.ExecContext(t.ctx, sql.Named("first", first), sql.Named("last", last), sql.Named("events", chunk))
		if err != nil {
			return fmt.Errorf("record history: %w", mapErr(err))
		}
		return nil
	})
}

// prune deletes history chunks past retention, if at least least
// revisions are, up to pruneBatch revisions' worth, and moves the compact
// revision to the last one deleted. It says whether it deleted any: a
// chunk that reaches into the revisions kept stays whole.
func (t *txn) prune(least int64) (bool, error) {
	excess := t.s.excess(t.rev, t.compact)
	if excess < max(least, 1) {
		return false, nil
	}
	t.pruned = true
	rows, err := t.s.ws.prune.QueryContext(t.ctx, sql.Named("upto", t.compact+min(excess, pruneBatch)))
	if err != nil {
		return false, fmt.Errorf("prune history: %w", mapErr(err))
	}
	defer rows.Close()
	compact := t.compact
	for rows.Next() {
		var last int64
		if err := rows.Scan(&last); err != nil {
			return false, fmt.Errorf("prune history: %w", mapErr(err))
		}
		compact = max(compact, last)
	}
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("prune history: %w", mapErr(err))
	}
	if compact == t.compact {
		return false, nil
	}
	if _, err := t.s.ws.setCompact.ExecContext(t.ctx, sql.Named("rev", compact)); err != nil {
		return false, fmt.Errorf("prune history: %w", mapErr(err))
	}
	t.compact = compact
	return true, nil
}

func conflict(key string, current int64, opIndex int) error {
	return &kv.ConflictError{Key: key, CurrentVersion: current, OpIndex: opIndex}
}

// liveVersion is the version of the live key, 0 when absent or expired.
func (t *txn) liveVersion(key string) (int64, error) {
	var v int64
	err := t.s.ws.liveVersion.QueryRowContext(t.ctx, sql.Named("key", key), sql.Named("now", t.nowMs)).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return v, mapErr(err)
}

// expiryMs is the stored expiry of a TTL set now: unix ms, 0 for none.
func (t *txn) expiryMs(ttl time.Duration) int64 { return kv.UnixMillis(kv.ExpiryAt(t.now, ttl)) }

// put stores one value under its condition; opIndex is -1 outside a batch.
func (t *txn) put(key string, value []byte, ttl time.Duration, cond kv.Condition, opIndex int) (kv.OpResult, error) {
	if value == nil {
		value = []byte{} // a nil blob binds as NULL
	}
	expMs := t.expiryMs(ttl)
	v := t.rev + 1
	args := []any{sql.Named("key", key), sql.Named("value", value), sql.Named("version", v),
		sql.Named("expires_at", expMs), sql.Named("now", t.nowMs)}
	var (
		res sql.Result
		err error
	)
	ws := &t.s.ws
	switch cond.Kind {
	case kv.CondNone:
		res, err = ws.upsert.ExecContext(t.ctx, args...)
	case kv.CondAbsent:
		res, err = ws.insertAbsent.ExecContext(t.ctx, args...)
	case kv.CondVersion:
		res, err = ws.updateVersion.ExecContext(t.ctx, append(args, sql.Named("cond", cond.Version))...)
	default:
		return kv.OpResult{}, fmt.Errorf("%w: unknown condition kind %d", kv.ErrInvalidArgument, cond.Kind)
	}
	if err != nil {
		return kv.OpResult{}, mapErr(err)
	}
	if cond.Kind != kv.CondNone {
		n, err := res.RowsAffected()
		if err != nil {
			return kv.OpResult{}, mapErr(err)
		}
		if n == 0 {
			cur, err := t.liveVersion(key)
			if err != nil {
				return kv.OpResult{}, err
			}
			return kv.OpResult{}, conflict(key, cur, opIndex)
		}
	}
	t.record(kv.EventPut, key, bytes.Clone(value), v, expMs)
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
	err := t.s.ws.del.QueryRowContext(t.ctx, sql.Named("key", key), sql.Named("cond", condVersion), sql.Named("now", t.nowMs)).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
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

// unconditionalPuts is how many ops from the first are puts without a
// condition.
func unconditionalPuts(ops []kv.Op) int {
	n := 0
	for n < len(ops) && ops[n].Kind == kv.OpPut && ops[n].Cond.Kind == kv.CondNone {
		n++
	}
	return n
}

// putRun stores a run of unconditional puts with multi-row upserts, and
// the rest of the run, shorter than the smallest size, one by one.
func (t *txn) putRun(ops []kv.Op, results []kv.OpResult) error {
	args := make([]any, 0, 6*upsertRunSizes[0])
	for len(ops) > 0 {
		n, st := 0, (*sql.Stmt)(nil)
		for _, size := range upsertRunSizes {
			if len(ops) >= size {
				n, st = size, t.s.ws.upsertRows[size]
				break
			}
		}
		if st == nil {
			for i, op := range ops {
				var err error
				if results[i], err = t.put(op.Key, op.Value, op.TTL, op.Cond, -1); err != nil {
					return err
				}
			}
			return nil
		}
		args = args[:0]
		for i, op := range ops[:n] {
			value := op.Value
			if value == nil {
				value = []byte{}
			}
			expMs := t.expiryMs(op.TTL)
			v := t.rev + 1 + int64(i)
			args = append(args, op.Key, value, v, expMs, t.nowMs, t.nowMs)
			results[i] = kv.OpResult{Version: v, ExpiresAt: kv.FromUnixMillis(expMs), Revision: v}
		}
		if _, err := st.ExecContext(t.ctx, args...); err != nil {
			return mapErr(err)
		}
		for i, op := range ops[:n] {
			value := bytes.Clone(op.Value)
			if value == nil {
				value = []byte{}
			}
			t.record(kv.EventPut, op.Key, value, results[i].Version, kv.UnixMillis(results[i].ExpiresAt))
		}
		ops, results = ops[n:], results[n:]
	}
	return nil
}

// collect runs a DELETE ... RETURNING key, version and gathers its rows.
func (t *txn) collect(st *sql.Stmt, args ...any) ([]kv.Event, error) {
	rows, err := st.QueryContext(t.scan, args...)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	var out []kv.Event
	for rows.Next() {
		var ev kv.Event
		if err := rows.Scan(&ev.Key, &ev.Version); err != nil {
			return nil, mapErr(err)
		}
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(err)
	}
	return out, mapErr(rows.Close())
}
