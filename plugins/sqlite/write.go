package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"

	"github.com/kvhost/kvhost/kv"
)

// Put stores a value under its condition. The entry returned carries the
// key, the new version (the change's revision) and the expiry, not the
// value.
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
func (s *Store) Delete(ctx context.Context, key string, cond kv.Condition) (kv.DeleteResult, error) {
	if err := kv.ValidateKey(key); err != nil {
		return kv.DeleteResult{}, fmt.Errorf("sqlite: delete: %w", err)
	}
	if err := kv.ValidateCondition(cond, false); err != nil {
		return kv.DeleteResult{}, fmt.Errorf("sqlite: delete %q: %w", key, err)
	}
	var res kv.DeleteResult
	err := s.update(ctx, func(t *txn) error {
		r, err := t.del(key, cond, -1)
		res = kv.DeleteResult{Deleted: r.Deleted, Revision: t.rev}
		return err
	})
	if err != nil {
		return kv.DeleteResult{}, fmt.Errorf("sqlite: delete %q: %w", key, err)
	}
	return res, nil
}

// DeletePrefix removes every live key under a non-empty prefix in one
// transaction, each with its own revision and DELETE event, in key order.
func (s *Store) DeletePrefix(ctx context.Context, prefix string) (kv.DeletePrefixResult, error) {
	if err := kv.ValidateDeletePrefix(prefix); err != nil {
		return kv.DeletePrefixResult{}, fmt.Errorf("sqlite: delete-prefix: %w", err)
	}
	var res kv.DeletePrefixResult
	err := s.update(ctx, func(t *txn) error {
		args := []any{sql.Named("lo", prefix), sql.Named("now", t.nowMs)}
		end := 0
		if hi := kv.PrefixEnd(prefix); hi != "" {
			end = 1
			args = append(args, sql.Named("hi", hi))
		}
		removed, err := t.collect(s.ws.deletePrefix[end], args...)
		if err != nil {
			return err
		}
		t.recordRemoved(kv.EventDelete, removed)
		res = kv.DeletePrefixResult{Deleted: int64(len(removed)), Revision: t.rev}
		return nil
	})
	if err != nil {
		return kv.DeletePrefixResult{}, fmt.Errorf("sqlite: delete-prefix %q: %w", prefix, err)
	}
	return res, nil
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
		v := t.rev + 1
		if _, err := s.ws.upsert.ExecContext(t.ctx, sql.Named("key", key), sql.Named("value", value), sql.Named("version", v),
			sql.Named("expires_at", expMs), sql.Named("now", t.nowMs)); err != nil {
			return mapErr(err)
		}
		t.record(kv.EventPut, key, value, v, expMs)
		c = kv.Counter{Value: sum, Version: v, ExpiresAt: kv.FromUnixMillis(expMs)}
		return nil
	})
	if err != nil {
		return kv.Counter{}, fmt.Errorf("sqlite: increment %q: %w", key, err)
	}
	return c, nil
}

// RefreshTTL changes only the expiry of a live key: the value and version
// stay; the change takes a revision and emits a TTL event. A missing or
// expired key is ErrNotFound.
func (s *Store) RefreshTTL(ctx context.Context, req kv.RefreshRequest) (kv.RefreshResult, error) {
	if err := kv.ValidateRefresh(req); err != nil {
		return kv.RefreshResult{}, fmt.Errorf("sqlite: refresh-ttl: %w", err)
	}
	var res kv.RefreshResult
	err := s.update(ctx, func(t *txn) error {
		expMs := t.expiryMs(req.TTL)
		var condVersion int64
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
		rev := t.record(kv.EventTTL, req.Key, nil, v, expMs)
		res = kv.RefreshResult{Entry: kv.Entry{Key: req.Key, Version: v, ExpiresAt: kv.FromUnixMillis(expMs)}, Revision: rev}
		return nil
	})
	if err != nil {
		return kv.RefreshResult{}, fmt.Errorf("sqlite: refresh-ttl %q: %w", req.Key, err)
	}
	return res, nil
}

// Batch applies ops in order in one transaction: all or none. A failed
// condition is a *ConflictError whose OpIndex names the op.
func (s *Store) Batch(ctx context.Context, ops []kv.Op) (kv.BatchResult, error) {
	if err := kv.ValidateBatch(ops); err != nil {
		return kv.BatchResult{}, fmt.Errorf("sqlite: batch: %w", err)
	}
	res := kv.BatchResult{Results: make([]kv.OpResult, len(ops))}
	err := s.update(ctx, func(t *txn) error {
		t.events = make([]kv.Event, 0, len(ops))
		for i := 0; i < len(ops); i++ {
			if err := ctx.Err(); err != nil {
				return err
			}
			op := ops[i]
			if run := unconditionalPuts(ops[i:]); run >= upsertRunSizes[len(upsertRunSizes)-1] {
				if err := t.putRun(ops[i:i+run], res.Results[i:i+run]); err != nil {
					return fmt.Errorf("ops %d to %d: %w", i, i+run-1, err)
				}
				i += run - 1
				continue
			}
			var err error
			switch op.Kind {
			case kv.OpPut:
				res.Results[i], err = t.put(op.Key, op.Value, op.TTL, op.Cond, i)
			case kv.OpDelete:
				res.Results[i], err = t.del(op.Key, op.Cond, i)
			}
			if err != nil {
				var ce *kv.ConflictError
				if errors.As(err, &ce) {
					return err
				}
				return fmt.Errorf("op %d (%s %q): %w", i, op.Kind, op.Key, err)
			}
		}
		res.Revision = t.rev
		return nil
	})
	if err != nil {
		return kv.BatchResult{}, fmt.Errorf("sqlite: batch of %d ops: %w", len(ops), err)
	}
	return res, nil
}

// CleanupExpired removes up to limit expired keys (DefaultCleanupBatch when
// limit <= 0), at most DefaultCleanupBatch per transaction so that writers
// are never held up for long, and emits an EXPIRE event for each with the
// version the key had: each key its own revision, in key order within one
// transaction. It then prunes history to its retention.
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
			t.recordRemoved(kv.EventExpire, removed)
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
	if err := s.pruneHistory(ctx); err != nil {
		return total, fmt.Errorf("sqlite: cleanup-expired: %w", err)
	}
	return total, nil
}
