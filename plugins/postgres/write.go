package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/kvhost/kvhost/kv"
)

// minPutRun is the shortest run of unconditional batch puts written with
// one array statement rather than one statement per op.
const minPutRun = 4

// Put stores a value under its condition.
func (s *Store) Put(ctx context.Context, req kv.PutRequest) (kv.Entry, error) {
	if err := kv.ValidatePut(req); err != nil {
		return kv.Entry{}, fmt.Errorf("postgres: put: %w", err)
	}
	var res kv.OpResult
	err := s.update(ctx, func(t *txn) (err error) {
		res, err = t.put(req.Key, req.Value, req.TTL, req.Cond, -1)
		return err
	})
	if err != nil {
		return kv.Entry{}, fmt.Errorf("postgres: put %q: %w", req.Key, err)
	}
	return kv.Entry{Key: req.Key, Version: res.Version, ExpiresAt: res.ExpiresAt}, nil
}

// Delete removes key under its condition and says whether it did.
func (s *Store) Delete(ctx context.Context, key string, cond kv.Condition) (kv.DeleteResult, error) {
	if err := kv.ValidateKey(key); err != nil {
		return kv.DeleteResult{}, fmt.Errorf("postgres: delete: %w", err)
	}
	if err := kv.ValidateCondition(cond, false); err != nil {
		return kv.DeleteResult{}, fmt.Errorf("postgres: delete %q: %w", key, err)
	}
	var res kv.DeleteResult
	err := s.update(ctx, func(t *txn) error {
		r, err := t.del(key, cond, -1)
		res = kv.DeleteResult{Deleted: r.Deleted, Revision: t.rev}
		return err
	})
	if err != nil {
		return kv.DeleteResult{}, fmt.Errorf("postgres: delete %q: %w", key, err)
	}
	return res, nil
}

// DeletePrefix removes every live key under a non-empty prefix in one
// transaction, each with its own revision and DELETE event, in key order.
func (s *Store) DeletePrefix(ctx context.Context, prefix string) (kv.DeletePrefixResult, error) {
	if err := kv.ValidateDeletePrefix(prefix); err != nil {
		return kv.DeletePrefixResult{}, fmt.Errorf("postgres: delete-prefix: %w", err)
	}
	var res kv.DeletePrefixResult
	err := s.update(ctx, func(t *txn) error {
		lo, hi := keyRange(prefix)
		removed, err := t.collect(`DELETE FROM {s}.kv WHERE key >= @lo AND (@hi = '' OR key < @hi) AND `+live+` RETURNING key, version`,
			pgx.NamedArgs{"lo": lo, "hi": hi, "now": t.nowMs})
		if err != nil {
			return err
		}
		t.recordRemoved(kv.EventDelete, removed)
		res = kv.DeletePrefixResult{Deleted: int64(len(removed)), Revision: t.rev}
		return nil
	})
	if err != nil {
		return kv.DeletePrefixResult{}, fmt.Errorf("postgres: delete-prefix %q: %w", prefix, err)
	}
	return res, nil
}

// Increment adds delta to the decimal int64 counter at key. A missing or
// expired key counts from 0 with no expiry; a live key keeps its expiry.
func (s *Store) Increment(ctx context.Context, key string, delta int64) (kv.Counter, error) {
	if err := kv.ValidateKey(key); err != nil {
		return kv.Counter{}, fmt.Errorf("postgres: increment: %w", err)
	}
	var c kv.Counter
	err := s.update(ctx, func(t *txn) error {
		var (
			old   []byte
			expMs int64
			n     int64
		)
		err := t.tx.QueryRow(ctx, s.sql(`SELECT value, expires_at FROM {s}.kv WHERE key = @key AND `+live),
			pgx.NamedArgs{"key": key, "now": t.nowMs}).Scan(&old, &expMs)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
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
		if _, err := t.tx.Exec(ctx, s.sql(upsertSQL), pgx.NamedArgs{"key": key, "value": value, "version": v, "expires_at": expMs}); err != nil {
			return mapErr(err)
		}
		t.record(kv.EventPut, key, value, v, expMs)
		c = kv.Counter{Value: sum, Version: v, ExpiresAt: kv.FromUnixMillis(expMs)}
		return nil
	})
	if err != nil {
		return kv.Counter{}, fmt.Errorf("postgres: increment %q: %w", key, err)
	}
	return c, nil
}

// RefreshTTL changes only the expiry of a live key.
func (s *Store) RefreshTTL(ctx context.Context, req kv.RefreshRequest) (kv.RefreshResult, error) {
	if err := kv.ValidateRefresh(req); err != nil {
		return kv.RefreshResult{}, fmt.Errorf("postgres: refresh-ttl: %w", err)
	}
	var res kv.RefreshResult
	err := s.update(ctx, func(t *txn) error {
		expMs := t.expiryMs(req.TTL)
		var condVersion int64
		if req.Cond.Kind == kv.CondVersion {
			condVersion = req.Cond.Version
		}
		var v int64
		err := t.tx.QueryRow(ctx, s.sql(`UPDATE {s}.kv SET expires_at = @expires_at
			WHERE key = @key AND (@cond::bigint = 0 OR version = @cond::bigint) AND `+live+` RETURNING version`),
			pgx.NamedArgs{"key": req.Key, "cond": condVersion, "now": t.nowMs, "expires_at": expMs}).Scan(&v)
		if errors.Is(err, pgx.ErrNoRows) {
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
		return kv.RefreshResult{}, fmt.Errorf("postgres: refresh-ttl %q: %w", req.Key, err)
	}
	return res, nil
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

// Batch applies ops in order in one transaction: all or none. Runs of
// unconditional puts go in one statement each.
func (s *Store) Batch(ctx context.Context, ops []kv.Op) (kv.BatchResult, error) {
	if err := kv.ValidateBatch(ops); err != nil {
		return kv.BatchResult{}, fmt.Errorf("postgres: batch: %w", err)
	}
	res := kv.BatchResult{Results: make([]kv.OpResult, len(ops))}
	err := s.update(ctx, func(t *txn) error {
		t.events = make([]kv.Event, 0, len(ops))
		for i := 0; i < len(ops); i++ {
			op := ops[i]
			if run := unconditionalPuts(ops[i:]); run >= minPutRun {
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
		return kv.BatchResult{}, fmt.Errorf("postgres: batch of %d ops: %w", len(ops), err)
	}
	return res, nil
}

// CleanupExpired removes up to limit expired keys, DefaultCleanupBatch
// per transaction, each with an EXPIRE event and its own revision, then
// prunes history to its retention. Every host may run it at once: each
// transaction deletes the rows it found, and a row another cleanup
// already removed is not there to delete, so each key's EXPIRE is
// recorded once. SKIP LOCKED passes over rows a writer holds.
func (s *Store) CleanupExpired(ctx context.Context, limit int) (int64, error) {
	if limit <= 0 {
		limit = DefaultCleanupBatch
	}
	var total int64
	for total < int64(limit) {
		batch := min(int64(limit)-total, DefaultCleanupBatch)
		var n int64
		err := s.update(ctx, func(t *txn) error {
			removed, err := t.collect(`DELETE FROM {s}.kv WHERE key IN (
				SELECT key FROM {s}.kv WHERE expires_at > 0 AND expires_at <= @now
				ORDER BY expires_at LIMIT @limit FOR UPDATE SKIP LOCKED) RETURNING key, version`,
				pgx.NamedArgs{"now": t.nowMs, "limit": batch})
			if err != nil {
				return err
			}
			t.recordRemoved(kv.EventExpire, removed)
			n = int64(len(removed))
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("postgres: cleanup-expired: %w", err)
		}
		total += n
		if n < batch {
			break
		}
	}
	if err := s.pruneHistory(ctx); err != nil {
		return total, fmt.Errorf("postgres: cleanup-expired: prune history: %w", err)
	}
	return total, nil
}

// pruneHistory prunes all history past retention, pruneBatch revisions
// per transaction so that writers are never held up for long. It takes
// the revision row only when something is due.
func (s *Store) pruneHistory(ctx context.Context) error {
	for range 1000 { // a bound, not a limit anyone reaches: 4M revisions
		var rev, compact int64
		if err := s.pool.QueryRow(ctx, s.sql(`SELECT rev, compact FROM {s}.meta`)).Scan(&rev, &compact); err != nil {
			return mapErr(err)
		}
		if rev-int64(s.cfg.History)-compact <= 0 {
			return nil
		}
		var before, after int64
		err := s.update(ctx, func(t *txn) error {
			t.prune, before = true, t.compact
			return nil
		}, func(t *txn) { after = t.compact })
		if err != nil {
			return err
		}
		if after == before {
			return nil
		}
	}
	return nil
}
