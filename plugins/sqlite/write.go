package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kvhost/kvhost/pluginapi"
)

// txn is one write transaction on the writer connection. Its statements
// see its own earlier changes; its version counter and events take effect
// only when it commits.
type txn struct {
	s *Store
	// ctx is for statements whose work is bounded (one key): it cannot be
	// cancelled, because the driver pays for a cancellable context with a
	// goroutine per statement, which costs more than such a statement.
	// scan is the caller's context, for statements over many rows, which
	// it can interrupt; callers check it between bounded statements.
	ctx     context.Context
	scan    context.Context
	now     time.Time
	nowMs   int64
	version int64 // the last version stamped, committed as last_version
	// watched says whether anyone subscribed; Watch takes mu to subscribe,
	// so it cannot change during a transaction, and a transaction with no
	// watchers builds no events.
	watched bool
	events  []kv.Event
}

// update runs fn in one IMMEDIATE transaction under the writer mutex. When
// fn succeeds it persists the version counter, commits, and publishes the
// events while still holding the mutex, so watchers see commit order. When
// fn or the commit fails, nothing of it remains.
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
	t := &txn{s: s, ctx: context.WithoutCancel(ctx), scan: ctx, now: now, nowMs: now.UnixMilli(),
		version: s.lastVersion, watched: s.hub.Subscribers() > 0}
	if _, err := s.ws.begin.ExecContext(t.ctx); err != nil {
		return mapErr(err)
	}
	if err := fn(t); err != nil {
		s.rollback()
		return err
	}
	if t.version != s.lastVersion {
		if _, err := s.ws.setVersion.ExecContext(t.ctx, sql.Named("version", t.version)); err != nil {
			s.rollback()
			return mapErr(err)
		}
	}
	// The work is done: commit even if ctx ended meanwhile, so that an
	// acknowledged write and a committed one are the same thing.
	if _, err := s.ws.commit.ExecContext(context.Background()); err != nil {
		s.rollback()
		return mapErr(err)
	}
	s.lastVersion = t.version
	if len(t.events) > 0 {
		s.hub.Publish(t.events...)
	}
	return nil
}

// rollback ends a failed transaction. SQLite may have rolled it back
// already (an interrupted statement does), so its error says nothing.
func (s *Store) rollback() {
	_, _ = s.ws.rollback.ExecContext(context.Background())
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

func (t *txn) emit(typ kv.EventType, key string, value []byte, version int64) {
	if t.watched {
		t.events = append(t.events, kv.Event{Type: typ, Key: key, Value: value, Version: version})
	}
}

// put stores one value under its condition; opIndex is -1 outside a batch.
func (t *txn) put(key string, value []byte, ttl time.Duration, cond kv.Condition, opIndex int) (kv.OpResult, error) {
	if value == nil {
		value = []byte{} // a nil blob binds as NULL
	}
	exp := kv.ExpiryAt(t.now, ttl)
	var expMs int64
	if !exp.IsZero() {
		expMs = exp.UnixMilli()
	}
	v := t.version + 1
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
	t.version = v
	if t.watched {
		t.emit(kv.EventPut, key, bytes.Clone(value), v)
	}
	return kv.OpResult{Version: v, ExpiresAt: exp}, nil
}

// del removes one key under its condition; opIndex is -1 outside a batch.
func (t *txn) del(key string, cond kv.Condition, opIndex int) (bool, error) {
	var condVersion int64
	if cond.Kind == kv.CondVersion {
		condVersion = cond.Version
	}
	var v int64
	err := t.s.ws.del.QueryRowContext(t.ctx, sql.Named("key", key), sql.Named("cond", condVersion), sql.Named("now", t.nowMs)).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		if cond.Kind != kv.CondVersion {
			return false, nil
		}
		cur, err := t.liveVersion(key)
		if err != nil {
			return false, err
		}
		return false, conflict(key, cur, opIndex)
	}
	if err != nil {
		return false, mapErr(err)
	}
	t.emit(kv.EventDelete, key, nil, v)
	return true, nil
}

// Put stores a value under its condition. The entry returned carries the
// key, the new version and the expiry, not the value.
func (s *Store) Put(ctx context.Context, req kv.PutRequest) (kv.Entry, error) {
	if err := kv.ValidatePut(req); err != nil {
		return kv.Entry{}, fmt.Errorf("sqlite: put: %w", err)
	}
	var res kv.OpResult
	err := s.update(ctx, func(t *txn) (err error) {
		res, err = t.put(req.Key, req.Value, req.TTL, req.Cond, -1)
		return err
	})
	if err != nil {
		return kv.Entry{}, fmt.Errorf("sqlite: put %q: %w", req.Key, err)
	}
	return kv.Entry{Key: req.Key, Version: res.Version, ExpiresAt: res.ExpiresAt}, nil
}

// Delete removes key under its condition and says whether it did. A
// missing or expired key is not an error, unless the condition names a
// version: then it is a conflict with current version 0.
func (s *Store) Delete(ctx context.Context, key string, cond kv.Condition) (bool, error) {
	if err := kv.ValidateKey(key); err != nil {
		return false, fmt.Errorf("sqlite: delete: %w", err)
	}
	if err := kv.ValidateCondition(cond, false); err != nil {
		return false, fmt.Errorf("sqlite: delete %q: %w", key, err)
	}
	var deleted bool
	err := s.update(ctx, func(t *txn) (err error) {
		deleted, err = t.del(key, cond, -1)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("sqlite: delete %q: %w", key, err)
	}
	return deleted, nil
}

// DeletePrefix removes every live key under a non-empty prefix in one
// transaction and emits a DELETE event for each, in key order.
func (s *Store) DeletePrefix(ctx context.Context, prefix string) (int64, error) {
	if err := kv.ValidateDeletePrefix(prefix); err != nil {
		return 0, fmt.Errorf("sqlite: delete-prefix: %w", err)
	}
	var n int64
	err := s.update(ctx, func(t *txn) error {
		args := []any{sql.Named("lo", prefix), sql.Named("now", t.nowMs)}
		end := 0
		if hi := kv.PrefixEnd(prefix); hi != "" {
			end = 1
			args = append(args, sql.Named("hi", hi))
		}
		if !t.watched {
			res, err := s.ws.deletePrefix[end][0].ExecContext(t.scan, args...)
			if err != nil {
				return mapErr(err)
			}
			n, err = res.RowsAffected()
			return mapErr(err)
		}
		removed, err := t.collect(s.ws.deletePrefix[end][1], args...)
		if err != nil {
			return err
		}
		slices.SortFunc(removed, func(a, b kv.Event) int { return strings.Compare(a.Key, b.Key) })
		for _, ev := range removed {
			t.emit(kv.EventDelete, ev.Key, nil, ev.Version)
		}
		n = int64(len(removed))
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete-prefix %q: %w", prefix, err)
	}
	return n, nil
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

// Increment adds delta to the decimal int64 counter at key. A missing or
// expired key counts from 0 with no expiry; a live key keeps its expiry.
func (s *Store) Increment(ctx context.Context, key string, delta int64) (kv.Counter, error) {
	if err := kv.ValidateKey(key); err != nil {
		return kv.Counter{}, fmt.Errorf("sqlite: increment: %w", err)
	}
	var c kv.Counter
	err := s.update(ctx, func(t *txn) error {
		var (
			old     []byte
			version int64
			expMs   int64
			n       int64
		)
		err := s.ws.liveRow.QueryRowContext(t.ctx, sql.Named("key", key), sql.Named("now", t.nowMs)).Scan(&old, &version, &expMs)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return mapErr(err)
		default:
			if n, err = kv.ParseCounter(key, old); err != nil {
				return err
			}
		}
		sum, err := kv.AddCounter(key, n, delta)
		if err != nil {
			return err
		}
		value := []byte(strconv.FormatInt(sum, 10))
		v := t.version + 1
		if _, err := s.ws.upsert.ExecContext(t.ctx, sql.Named("key", key), sql.Named("value", value), sql.Named("version", v),
			sql.Named("expires_at", expMs), sql.Named("now", t.nowMs)); err != nil {
			return mapErr(err)
		}
		t.version = v
		t.emit(kv.EventPut, key, value, v)
		c = kv.Counter{Value: sum, Version: v, ExpiresAt: msTime(expMs)}
		return nil
	})
	if err != nil {
		return kv.Counter{}, fmt.Errorf("sqlite: increment %q: %w", key, err)
	}
	return c, nil
}

// RefreshTTL changes only the expiry of a live key: the value and version
// stay, and no event is emitted. A missing or expired key is ErrNotFound.
func (s *Store) RefreshTTL(ctx context.Context, req kv.RefreshRequest) (kv.Entry, error) {
	if err := kv.ValidateRefresh(req); err != nil {
		return kv.Entry{}, fmt.Errorf("sqlite: refresh-ttl: %w", err)
	}
	var e kv.Entry
	err := s.update(ctx, func(t *txn) error {
		exp := kv.ExpiryAt(t.now, req.TTL)
		var expMs, condVersion int64
		if !exp.IsZero() {
			expMs = exp.UnixMilli()
		}
		if req.Cond.Kind == kv.CondVersion {
			condVersion = req.Cond.Version
		}
		var v int64
		err := s.ws.refresh.QueryRowContext(t.ctx, sql.Named("key", req.Key), sql.Named("cond", condVersion),
			sql.Named("now", t.nowMs), sql.Named("expires_at", expMs)).Scan(&v)
		if errors.Is(err, sql.ErrNoRows) {
			cur, err := t.liveVersion(req.Key)
			if err != nil {
				return err
			}
			if cur == 0 {
				return kv.ErrNotFound
			}
			return conflict(req.Key, cur, -1)
		}
		if err != nil {
			return mapErr(err)
		}
		e = kv.Entry{Key: req.Key, Version: v, ExpiresAt: exp}
		return nil
	})
	if err != nil {
		return kv.Entry{}, fmt.Errorf("sqlite: refresh-ttl %q: %w", req.Key, err)
	}
	return e, nil
}

// Batch applies ops in order in one transaction: all or none. A failed
// condition is a *ConflictError whose OpIndex names the op.
func (s *Store) Batch(ctx context.Context, ops []kv.Op) ([]kv.OpResult, error) {
	if err := kv.ValidateBatch(ops); err != nil {
		return nil, fmt.Errorf("sqlite: batch: %w", err)
	}
	results := make([]kv.OpResult, len(ops))
	if len(ops) == 0 {
		if err := s.checkOpen(); err != nil {
			return nil, fmt.Errorf("sqlite: batch: %w", err)
		}
		return results, nil
	}
	err := s.update(ctx, func(t *txn) error {
		for i := 0; i < len(ops); i++ {
			if err := ctx.Err(); err != nil {
				return err
			}
			op := ops[i]
			if run := unconditionalPuts(ops[i:]); run >= upsertRunSizes[len(upsertRunSizes)-1] {
				if err := t.putRun(ops[i:i+run], results[i:i+run]); err != nil {
					return fmt.Errorf("ops %d to %d: %w", i, i+run-1, err)
				}
				i += run - 1
				continue
			}
			var err error
			switch op.Kind {
			case kv.OpPut:
				results[i], err = t.put(op.Key, op.Value, op.TTL, op.Cond, i)
			case kv.OpDelete:
				results[i].Deleted, err = t.del(op.Key, op.Cond, i)
			}
			if err != nil {
				var ce *kv.ConflictError
				if errors.As(err, &ce) {
					return err
				}
				return fmt.Errorf("op %d (%s %q): %w", i, op.Kind, op.Key, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: batch of %d ops: %w", len(ops), err)
	}
	return results, nil
}

// upsertRunSizes are the row counts of the multi-row upserts, largest
// first. A run of unconditional puts in a batch goes through them: one
// statement per up to 64 rows costs about a third less than a statement
// per row (BenchmarkBatchInsert1K), with the same effect, since SQLite
// applies the rows in order and a later row's conflict sees an earlier one.
var upsertRunSizes = []int{64, 8}

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
			exp := kv.ExpiryAt(t.now, op.TTL)
			var expMs int64
			if !exp.IsZero() {
				expMs = exp.UnixMilli()
			}
			v := t.version + 1 + int64(i)
			args = append(args, op.Key, value, v, expMs, t.nowMs, t.nowMs)
			results[i] = kv.OpResult{Version: v, ExpiresAt: exp}
		}
		if _, err := st.ExecContext(t.ctx, args...); err != nil {
			return mapErr(err)
		}
		for _, op := range ops[:n] {
			t.version++
			if t.watched {
				t.emit(kv.EventPut, op.Key, bytes.Clone(op.Value), t.version)
			}
		}
		ops, results = ops[n:], results[n:]
	}
	return nil
}

// CleanupExpired removes up to limit expired keys (DefaultCleanupBatch when
// limit <= 0), at most DefaultCleanupBatch per transaction so that writers
// are never held up for long, and emits an EXPIRE event for each with the
// version the key had.
func (s *Store) CleanupExpired(ctx context.Context, limit int) (int64, error) {
	if limit <= 0 {
		limit = DefaultCleanupBatch
	}
	var total int64
	for total < int64(limit) {
		batch := min(int64(limit)-total, DefaultCleanupBatch)
		var n int64
		err := s.update(ctx, func(t *txn) error {
			removed, err := t.collect(s.ws.cleanup, sql.Named("now", t.nowMs), sql.Named("limit", batch))
			if err != nil {
				return err
			}
			for _, ev := range removed {
				t.emit(kv.EventExpire, ev.Key, nil, ev.Version)
			}
			n = int64(len(removed))
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("sqlite: cleanup-expired: %w", err)
		}
		total += n
		if n < batch {
			break
		}
	}
	return total, nil
}

// Watch subscribes to changes committed under prefix from now on.
func (s *Store) Watch(ctx context.Context, prefix string) (kv.WatchStream, error) {
	if err := kv.ValidatePrefix(prefix); err != nil {
		return nil, fmt.Errorf("sqlite: watch: %w", err)
	}
	// Subscribing under the writer mutex puts the subscription between two
	// transactions, which is what lets update skip building events when
	// nobody watches.
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return nil, fmt.Errorf("sqlite: watch %q: %w", prefix, kv.ErrClosed)
	}
	w, err := s.hub.Subscribe(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("sqlite: watch %q: %w", prefix, err)
	}
	return w, nil
}
