package redis

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"github.com/kvhost/kvhost/kv"
)

// Every write is one script (scripts.go): conditions, the change, its
// revisions and its events are applied by Redis in one atomic step, and a
// write that fails changes nothing and announces nothing.

func ttlArg(ttl int64) string { return strconv.FormatInt(ttl, 10) }

// Put stores a value under its condition.
func (s *Store) Put(ctx context.Context, req kv.PutRequest) (kv.Entry, error) {
	if err := kv.ValidatePut(req); err != nil {
		return kv.Entry{}, err
	}
	ck, cv := condArgs(req.Cond)
	value := req.Value
	if value == nil {
		value = []byte{}
	}
	res, status, err := s.run(ctx, scriptPut, s.retain, req.Key, value, ttlArg(kv.TTLMillis(req.TTL)), ck, cv)
	if err != nil {
		return kv.Entry{}, fmt.Errorf("redis: put %q: %w", req.Key, err)
	}
	if status == statusConflict {
		return kv.Entry{}, kv.Conflict(req.Key, asInt(res[1]))
	}
	rev := asInt(res[1])
	s.observe(rev)
	return kv.Entry{Key: req.Key, Version: rev, ExpiresAt: kv.FromUnixMillis(asInt(res[2]))}, nil
}

// Delete removes a live key under its condition. An expired key is left
// for cleanup, which announces its EXPIRE.
func (s *Store) Delete(ctx context.Context, key string, cond kv.Condition) (kv.DeleteResult, error) {
	if err := kv.ValidateKey(key); err != nil {
		return kv.DeleteResult{}, err
	}
	if err := kv.ValidateCondition(cond, false); err != nil {
		return kv.DeleteResult{}, err
	}
	ck, cv := condArgs(cond)
	res, status, err := s.run(ctx, scriptDelete, s.retain, key, ck, cv)
	if err != nil {
		return kv.DeleteResult{}, fmt.Errorf("redis: delete %q: %w", key, err)
	}
	if status == statusConflict {
		return kv.DeleteResult{}, kv.Conflict(key, asInt(res[1]))
	}
	out := kv.DeleteResult{Deleted: asInt(res[1]) == 1, Revision: asInt(res[2])}
	s.observe(out.Revision)
	return out, nil
}

// Increment adds delta to the decimal int64 stored at key.
func (s *Store) Increment(ctx context.Context, key string, delta int64) (kv.Counter, error) {
	if err := kv.ValidateKey(key); err != nil {
		return kv.Counter{}, err
	}
	res, status, err := s.run(ctx, scriptIncrement, s.retain, key, strconv.FormatInt(delta, 10))
	if err != nil {
		return kv.Counter{}, fmt.Errorf("redis: increment %q: %w", key, err)
	}
	switch status {
	case statusNotCounter:
		v, _ := asString(res[1])
		if _, err := kv.ParseCounter(key, []byte(v)); err != nil {
			return kv.Counter{}, fmt.Errorf("redis: increment: %w", err)
		}
		return kv.Counter{}, fmt.Errorf("redis: increment: %w: key %q does not hold a decimal int64 counter", kv.ErrInvalidArgument, key)
	case statusOverflow:
		v, _ := asString(res[1])
		n, _ := strconv.ParseInt(v, 10, 64)
		if _, err := kv.AddCounter(key, n, delta); err != nil {
			return kv.Counter{}, fmt.Errorf("redis: increment: %w", err)
		}
		return kv.Counter{}, fmt.Errorf("redis: increment: %w: adding %d to key %q overflows int64", kv.ErrInvalidArgument, delta, key)
	}
	rev := asInt(res[1])
	s.observe(rev)
	v, _ := asString(res[2])
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return kv.Counter{}, fmt.Errorf("%w: redis: increment %q: Redis computed %q", kv.ErrInternal, key, v)
	}
	return kv.Counter{Value: n, Version: rev, ExpiresAt: kv.FromUnixMillis(asInt(res[3]))}, nil
}

// RefreshTTL changes a live key's expiry; its version stays.
func (s *Store) RefreshTTL(ctx context.Context, req kv.RefreshRequest) (kv.RefreshResult, error) {
	if err := kv.ValidateRefresh(req); err != nil {
		return kv.RefreshResult{}, err
	}
	ck, cv := condArgs(req.Cond)
	res, status, err := s.run(ctx, scriptRefresh, s.retain, req.Key, ttlArg(kv.TTLMillis(req.TTL)), ck, cv)
	if err != nil {
		return kv.RefreshResult{}, fmt.Errorf("redis: refresh ttl %q: %w", req.Key, err)
	}
	switch status {
	case statusNotFound:
		return kv.RefreshResult{}, fmt.Errorf("redis: refresh ttl %q: %w", req.Key, kv.ErrNotFound)
	case statusConflict:
		return kv.RefreshResult{}, kv.Conflict(req.Key, asInt(res[1]))
	}
	rev := asInt(res[1])
	s.observe(rev)
	return kv.RefreshResult{
		Entry:    kv.Entry{Key: req.Key, Version: asInt(res[2]), ExpiresAt: kv.FromUnixMillis(asInt(res[3]))},
		Revision: rev,
	}, nil
}

// Batch applies puts and deletes atomically, in order.
func (s *Store) Batch(ctx context.Context, ops []kv.Op) (kv.BatchResult, error) {
	if err := kv.ValidateBatch(ops); err != nil {
		return kv.BatchResult{}, err
	}
	if s.closed.Load() {
		return kv.BatchResult{}, fmt.Errorf("redis: batch of %d ops: %w", len(ops), kv.ErrClosed)
	}
	if s.batchAttempts > 0 && watchedBatchOK(ops) {
		for range s.batchAttempts {
			out, err := s.batchWatched(ctx, ops)
			if errors.Is(err, errRetry) {
				continue
			}
			if errors.Is(err, errScript) {
				break
			}
			if err != nil {
				return kv.BatchResult{}, fmt.Errorf("redis: batch of %d ops: %w", len(ops), s.ctxErr(ctx, err))
			}
			s.observe(out.Revision)
			return out, nil
		}
	}
	return s.batchScript(ctx, ops)
}

// batchScript applies a batch with scriptBatch: one atomic step, whatever
// the writers do and whatever the expiries.
func (s *Store) batchScript(ctx context.Context, ops []kv.Op) (kv.BatchResult, error) {
	args := make([]any, 0, 1+3*len(ops))
	args = append(args, s.retain)
	for _, op := range ops {
		h := make([]byte, 18) // struct '>BBI8I8': kind, condition, ttl ms, version
		h[0] = 1
		value := op.Value
		if value == nil {
			value = []byte{}
		}
		if op.Kind == kv.OpDelete {
			h[0], value = 2, []byte{}
		}
		switch op.Cond.Kind {
		case kv.CondAbsent:
			h[1] = 1
		case kv.CondVersion:
			h[1] = 2
		}
		binary.BigEndian.PutUint64(h[2:10], uint64(kv.TTLMillis(op.TTL)))
		binary.BigEndian.PutUint64(h[10:18], uint64(op.Cond.Version))
		args = append(args, h, op.Key, value)
	}
	res, status, err := s.run(ctx, scriptBatch, args...)
	if err != nil {
		return kv.BatchResult{}, fmt.Errorf("redis: batch of %d ops: %w", len(ops), err)
	}
	if status == statusConflict {
		i := int(asInt(res[2]))
		if i < 0 || i >= len(ops) {
			return kv.BatchResult{}, fmt.Errorf("%w: redis: batch conflict at op %d of %d", kv.ErrInternal, i, len(ops))
		}
		return kv.BatchResult{}, &kv.ConflictError{Key: ops[i].Key, CurrentVersion: asInt(res[1]), OpIndex: i}
	}
	out := kv.BatchResult{Revision: asInt(res[1]), Results: make([]kv.OpResult, len(ops))}
	s.observe(out.Revision)
	per := asList(res[2])
	if len(per) != 3*len(ops) {
		return kv.BatchResult{}, fmt.Errorf("%w: redis: batch of %d ops answered %d values", kv.ErrInternal, len(ops), len(per))
	}
	for i, op := range ops {
		rev, exp, deleted := asInt(per[3*i]), asInt(per[3*i+1]), asInt(per[3*i+2]) == 1
		r := kv.OpResult{Revision: rev, Deleted: deleted}
		if op.Kind == kv.OpPut {
			r.Version, r.ExpiresAt = rev, kv.FromUnixMillis(exp)
		}
		out.Results[i] = r
	}
	return out, nil
}

// DeletePrefix removes every live key under a non-empty prefix, in key
// order, each with its own revision, in one script: Redis serves nothing
// else meanwhile, about a microsecond per key.
func (s *Store) DeletePrefix(ctx context.Context, prefix string) (kv.DeletePrefixResult, error) {
	if err := kv.ValidateDeletePrefix(prefix); err != nil {
		return kv.DeletePrefixResult{}, err
	}
	lo, hi := lexRange(prefix, "")
	res, _, err := s.run(ctx, scriptDeletePrefix, s.retain, lo, hi)
	if err != nil {
		return kv.DeletePrefixResult{}, fmt.Errorf("redis: delete-prefix %q: %w", prefix, err)
	}
	out := kv.DeletePrefixResult{Deleted: asInt(res[1]), Revision: asInt(res[2])}
	s.observe(out.Revision)
	return out, nil
}

// CleanupExpired removes up to limit keys whose expiry has passed (limit
// <= 0: DefaultCleanupBatch), DefaultCleanupBatch per script, each with
// an EXPIRE event. Several hosts may run it at once: each expired key is
// removed, and announced, by exactly one of them.
func (s *Store) CleanupExpired(ctx context.Context, limit int) (int64, error) {
	if limit <= 0 {
		limit = DefaultCleanupBatch
	}
	var total int64
	for total < int64(limit) {
		batch := min(int64(limit)-total, DefaultCleanupBatch)
		res, _, err := s.run(ctx, scriptCleanup, s.retain, batch)
		if err != nil {
			return total, fmt.Errorf("redis: cleanup: %w", err)
		}
		n := asInt(res[1])
		s.observe(asInt(res[2]))
		total += n
		if n < batch {
			break
		}
	}
	return total, nil
}
