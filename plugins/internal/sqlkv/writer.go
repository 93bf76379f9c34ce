package sqlkv

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/kvhost/kvhost/kv"
)

// DefaultCleanupBatch is how many expired keys one cleanup transaction
// removes at most, so that writers are never held up for long.
const DefaultCleanupBatch = 1000

// Writer is the contract's write operations over a backend's transactions.
// Its methods validate their input, run in one transaction each (a
// cleanup in bounded ones) and wrap every error with the backend's name,
// the operation and the key.
type Writer struct {
	// Name prefixes error messages: "sqlite", "postgres".
	Name string
	// Update runs fn in one write transaction that holds the store
	// revision: it commits what fn did, with its history and revision,
	// when fn succeeds, and leaves nothing of it when fn or the commit
	// fails.
	Update func(ctx context.Context, fn func(ctx context.Context, t *Txn) error) error
	// MinPutRun is the shortest run of unconditional batch puts given to
	// Tx.Upsert at once rather than one by one (at least 1).
	MinPutRun int
	// AfterCleanup, when set, runs after CleanupExpired removed what it
	// could: the backend prunes its history there.
	AfterCleanup func(ctx context.Context) error
}

// Put stores a value under its condition. The entry returned carries the
// key, the new version (the change's revision) and the expiry, not the
// value.
func (w *Writer) Put(ctx context.Context, req kv.PutRequest) (kv.Entry, error) {
	if err := kv.ValidatePut(req); err != nil {
		return kv.Entry{}, fmt.Errorf("%s: put: %w", w.Name, err)
	}
	var res kv.OpResult
	err := w.Update(ctx, func(ctx context.Context, t *Txn) (err error) {
		res, err = t.put(ctx, req.Key, req.Value, req.TTL, req.Cond, -1)
		return err
	})
	if err != nil {
		return kv.Entry{}, fmt.Errorf("%s: put %q: %w", w.Name, req.Key, err)
	}
	return kv.Entry{Key: req.Key, Version: res.Version, ExpiresAt: res.ExpiresAt}, nil
}

// Delete removes key under its condition and says whether it did. A
// missing or expired key is not an error, unless the condition names a
// version: then it is a conflict with current version 0.
func (w *Writer) Delete(ctx context.Context, key string, cond kv.Condition) (kv.DeleteResult, error) {
	if err := kv.ValidateKey(key); err != nil {
		return kv.DeleteResult{}, fmt.Errorf("%s: delete: %w", w.Name, err)
	}
	if err := kv.ValidateCondition(cond, false); err != nil {
		return kv.DeleteResult{}, fmt.Errorf("%s: delete %q: %w", w.Name, key, err)
	}
	var res kv.DeleteResult
	err := w.Update(ctx, func(ctx context.Context, t *Txn) error {
		r, err := t.del(ctx, key, cond, -1)
		res = kv.DeleteResult{Deleted: r.Deleted, Revision: t.rev}
		return err
	})
	if err != nil {
		return kv.DeleteResult{}, fmt.Errorf("%s: delete %q: %w", w.Name, key, err)
	}
	return res, nil
}

// DeletePrefix removes every live key under a non-empty prefix in one
// transaction, each with its own revision and DELETE event, in key order.
func (w *Writer) DeletePrefix(ctx context.Context, prefix string) (kv.DeletePrefixResult, error) {
	if err := kv.ValidateDeletePrefix(prefix); err != nil {
		return kv.DeletePrefixResult{}, fmt.Errorf("%s: delete-prefix: %w", w.Name, err)
	}
	var res kv.DeletePrefixResult
	err := w.Update(ctx, func(ctx context.Context, t *Txn) error {
		removed, err := t.tx.DeleteRange(ctx, prefix, kv.PrefixEnd(prefix), t.nowMs)
		if err != nil {
			return err
		}
		t.recordRemoved(kv.EventDelete, removed)
		res = kv.DeletePrefixResult{Deleted: int64(len(removed)), Revision: t.rev}
		return nil
	})
	if err != nil {
		return kv.DeletePrefixResult{}, fmt.Errorf("%s: delete-prefix %q: %w", w.Name, prefix, err)
	}
	return res, nil
}

// Increment adds delta to the decimal int64 counter at key. A missing or
// expired key counts from 0 with no expiry; a live key keeps its expiry.
func (w *Writer) Increment(ctx context.Context, key string, delta int64) (kv.Counter, error) {
	if err := kv.ValidateKey(key); err != nil {
		return kv.Counter{}, fmt.Errorf("%s: increment: %w", w.Name, err)
	}
	var c kv.Counter
	err := w.Update(ctx, func(ctx context.Context, t *Txn) error {
		cur, err := t.tx.Live(ctx, key, t.nowMs)
		if err != nil {
			return err
		}
		var n int64
		if cur.Version != 0 {
			if n, err = kv.ParseCounter(key, cur.Value); err != nil {
				return err
			}
		}
		sum, err := kv.AddCounter(key, n, delta)
		if err != nil {
			return err
		}
		row := Row{Key: key, Value: []byte(strconv.FormatInt(sum, 10)), Version: t.rev + 1, ExpMs: cur.ExpMs}
		if err := t.tx.Upsert(ctx, []Row{row}, t.nowMs); err != nil {
			return err
		}
		t.record(kv.EventPut, key, row.Value, row.Version, row.ExpMs)
		c = kv.Counter{Value: sum, Version: row.Version, ExpiresAt: kv.FromUnixMillis(row.ExpMs)}
		return nil
	})
	if err != nil {
		return kv.Counter{}, fmt.Errorf("%s: increment %q: %w", w.Name, key, err)
	}
	return c, nil
}

// RefreshTTL changes only the expiry of a live key: the value and version
// stay; the change takes a revision and emits a TTL event. A missing or
// expired key is ErrNotFound.
func (w *Writer) RefreshTTL(ctx context.Context, req kv.RefreshRequest) (kv.RefreshResult, error) {
	if err := kv.ValidateRefresh(req); err != nil {
		return kv.RefreshResult{}, fmt.Errorf("%s: refresh-ttl: %w", w.Name, err)
	}
	var res kv.RefreshResult
	err := w.Update(ctx, func(ctx context.Context, t *Txn) error {
		expMs := t.expiryMs(req.TTL)
		v, err := t.tx.Refresh(ctx, req.Key, condVersion(req.Cond), expMs, t.nowMs)
		if err != nil {
			return err
		}
		if v == 0 {
			cur, err := t.tx.Live(ctx, req.Key, t.nowMs)
			switch {
			case err != nil:
				return err
			case cur.Version == 0:
				return kv.ErrNotFound
			}
			return &kv.ConflictError{Key: req.Key, CurrentVersion: cur.Version, OpIndex: -1}
		}
		rev := t.record(kv.EventTTL, req.Key, nil, v, expMs)
		res = kv.RefreshResult{Entry: kv.Entry{Key: req.Key, Version: v, ExpiresAt: kv.FromUnixMillis(expMs)}, Revision: rev}
		return nil
	})
	if err != nil {
		return kv.RefreshResult{}, fmt.Errorf("%s: refresh-ttl %q: %w", w.Name, req.Key, err)
	}
	return res, nil
}

// Batch applies ops in order in one transaction: all or none. A failed
// condition is a *ConflictError whose OpIndex names the op. Runs of at
// least MinPutRun unconditional puts go to Tx.Upsert at once.
func (w *Writer) Batch(ctx context.Context, ops []kv.Op) (kv.BatchResult, error) {
	if err := kv.ValidateBatch(ops); err != nil {
		return kv.BatchResult{}, fmt.Errorf("%s: batch: %w", w.Name, err)
	}
	res := kv.BatchResult{Results: make([]kv.OpResult, len(ops))}
	err := w.Update(ctx, func(ctx context.Context, t *Txn) error {
		t.events = make([]kv.Event, 0, len(ops))
		for i := 0; i < len(ops); i++ {
			if err := ctx.Err(); err != nil {
				return err
			}
			if run := unconditionalPuts(ops[i:]); run >= max(w.MinPutRun, 1) {
				if err := t.putRun(ctx, ops[i:i+run], res.Results[i:i+run]); err != nil {
					return fmt.Errorf("ops %d to %d: %w", i, i+run-1, err)
				}
				i += run - 1
				continue
			}
			op := ops[i]
			var err error
			switch op.Kind {
			case kv.OpPut:
				res.Results[i], err = t.put(ctx, op.Key, op.Value, op.TTL, op.Cond, i)
			case kv.OpDelete:
				res.Results[i], err = t.del(ctx, op.Key, op.Cond, i)
			}
			if err != nil {
				if ce := (*kv.ConflictError)(nil); errors.As(err, &ce) {
					return err
				}
				return fmt.Errorf("op %d (%s %q): %w", i, op.Kind, op.Key, err)
			}
		}
		res.Revision = t.rev
		return nil
	})
	if err != nil {
		return kv.BatchResult{}, fmt.Errorf("%s: batch of %d ops: %w", w.Name, len(ops), err)
	}
	return res, nil
}

// CleanupExpired removes up to limit expired keys (DefaultCleanupBatch
// when limit <= 0), at most DefaultCleanupBatch per transaction, and
// records an EXPIRE event for each with the version the key had: each key
// its own revision, in key order within a transaction. Then it runs
// AfterCleanup.
func (w *Writer) CleanupExpired(ctx context.Context, limit int) (int64, error) {
	if limit <= 0 {
		limit = DefaultCleanupBatch
	}
	var total int64
	for total < int64(limit) {
		batch := min(int64(limit)-total, DefaultCleanupBatch)
		var n int64
		err := w.Update(ctx, func(ctx context.Context, t *Txn) error {
			removed, err := t.tx.DeleteExpired(ctx, batch, t.nowMs)
			if err != nil {
				return err
			}
			t.recordRemoved(kv.EventExpire, removed)
			n = int64(len(removed))
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("%s: cleanup-expired: %w", w.Name, err)
		}
		total += n
		if n < batch {
			break
		}
	}
	if w.AfterCleanup != nil {
		if err := w.AfterCleanup(ctx); err != nil {
			return total, fmt.Errorf("%s: cleanup-expired: %w", w.Name, err)
		}
	}
	return total, nil
}
