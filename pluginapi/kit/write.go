package kit

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/kvhost/kvhost/kv"
)

// txn is one write transaction: it reads through the author's Tx, sees
// its own writes, takes the revisions after the store's one per change,
// and writes each change's event to the history as it goes.
type txn struct {
	reader
	now    time.Time
	events []kv.Event
}

// expiryMarker is the value of an expiry index row: only its key matters.
var expiryMarker = []byte{1}

// stored returns key's entry, live or expired; had is false when absent.
func (t *txn) stored(key string) (e entry, had bool, err error) {
	k := dataKey(key)
	raw, err := t.tx.Get(k)
	if err != nil || raw == nil {
		return entry{}, false, err
	}
	e, err = decodeEntry(k, raw)
	return e, err == nil, err
}

// set stores e as key's entry in place of old (when had), keeping the
// expiry index in step, and returns the encoded entry.
func (t *txn) set(key string, old entry, had bool, e entry) ([]byte, error) {
	if had && old.expMs != 0 && old.expMs != e.expMs {
		if err := t.tx.Delete(expiryKey(old.expMs, key)); err != nil {
			return nil, err
		}
	}
	if e.expMs != 0 && !(had && old.expMs == e.expMs) {
		if err := t.tx.Put(expiryKey(e.expMs, key), expiryMarker); err != nil {
			return nil, err
		}
	}
	raw := e.encode()
	return raw, t.tx.Put(dataKey(key), raw)
}

// remove deletes key's entry old and its expiry index row.
func (t *txn) remove(key string, old entry) error {
	if old.expMs != 0 {
		if err := t.tx.Delete(expiryKey(old.expMs, key)); err != nil {
			return err
		}
	}
	return t.tx.Delete(dataKey(key))
}

// record gives a change the next revision and writes it to the history.
func (t *txn) record(ev kv.Event) error {
	t.rev++
	ev.Revision = t.rev
	t.events = append(t.events, ev)
	return t.tx.Put(historyKey(t.rev), encodeEvent(ev))
}

// checkCond checks a write's condition against the key's live version
// (0: absent); opIndex is -1 outside a batch.
func checkCond(key string, current int64, c kv.Condition, opIndex int) error {
	if (c.Kind == kv.CondAbsent && current != 0) || (c.Kind == kv.CondVersion && current != c.Version) {
		return &kv.ConflictError{Key: key, CurrentVersion: current, OpIndex: opIndex}
	}
	return nil
}

// liveVersion is the version of a stored entry if it is live, else 0.
func (t *txn) liveVersion(e entry, had bool) int64 {
	if had && e.live(t.nowMs) {
		return e.version
	}
	return 0
}

func (t *txn) put(key string, value []byte, ttl time.Duration, cond kv.Condition, opIndex int) (kv.OpResult, error) {
	old, had, err := t.stored(key)
	if err != nil {
		return kv.OpResult{}, err
	}
	if err := checkCond(key, t.liveVersion(old, had), cond, opIndex); err != nil {
		return kv.OpResult{}, err
	}
	e := entry{version: t.rev + 1, expMs: kv.UnixMillis(kv.ExpiryAt(t.now, ttl)), value: value}
	raw, err := t.set(key, old, had, e)
	if err != nil {
		return kv.OpResult{}, err
	}
	ev := kv.Event{Type: kv.EventPut, Key: key, Value: raw[entryHeader:], Version: e.version, ExpiresAt: kv.FromUnixMillis(e.expMs)}
	return kv.OpResult{Version: e.version, ExpiresAt: ev.ExpiresAt, Revision: e.version}, t.record(ev)
}

func (t *txn) del(key string, cond kv.Condition, opIndex int) (kv.OpResult, error) {
	old, had, err := t.stored(key)
	if err != nil {
		return kv.OpResult{}, err
	}
	current := t.liveVersion(old, had)
	if err := checkCond(key, current, cond, opIndex); err != nil || current == 0 {
		return kv.OpResult{}, err // an expired key stays for cleanup and its EXPIRE
	}
	if err := t.remove(key, old); err != nil {
		return kv.OpResult{}, err
	}
	err = t.record(kv.Event{Type: kv.EventDelete, Key: key, Version: old.version})
	return kv.OpResult{Deleted: true, Revision: t.rev}, err
}

// Put implements kv.Backend.
func (b *Backend) Put(ctx context.Context, req kv.PutRequest) (kv.Entry, error) {
	if err := kv.ValidatePut(req); err != nil {
		return kv.Entry{}, b.errorf("put", "", err)
	}
	var res kv.OpResult
	err := b.update(ctx, "put", req.Key, func(t *txn) (err error) {
		res, err = t.put(req.Key, req.Value, req.TTL, req.Cond, -1)
		return err
	})
	return kv.Entry{Key: req.Key, Version: res.Version, ExpiresAt: res.ExpiresAt}, err
}

// Delete implements kv.Backend.
func (b *Backend) Delete(ctx context.Context, key string, cond kv.Condition) (kv.DeleteResult, error) {
	if err := kv.ValidateKey(key); err != nil {
		return kv.DeleteResult{}, b.errorf("delete", "", err)
	}
	if err := kv.ValidateCondition(cond, false); err != nil {
		return kv.DeleteResult{}, b.errorf("delete", key, err)
	}
	var res kv.DeleteResult
	err := b.update(ctx, "delete", key, func(t *txn) error {
		r, err := t.del(key, cond, -1)
		res = kv.DeleteResult{Deleted: r.Deleted, Revision: t.rev}
		return err
	})
	return res, err
}

// removed is a key a delete-prefix or a cleanup takes away.
type removed struct {
	key string
	e   entry
}

// removeAll removes keys, each with its own revision and event of type
// typ, in key order.
func (t *txn) removeAll(doomed []removed, typ kv.EventType) error {
	slices.SortFunc(doomed, func(a, b removed) int { return cmp.Compare(a.key, b.key) })
	for _, d := range doomed {
		if err := t.remove(d.key, d.e); err != nil {
			return err
		}
		if err := t.record(kv.Event{Type: typ, Key: d.key, Version: d.e.version}); err != nil {
			return err
		}
	}
	return nil
}

// DeletePrefix implements kv.Backend.
func (b *Backend) DeletePrefix(ctx context.Context, prefix string) (kv.DeletePrefixResult, error) {
	if err := kv.ValidateDeletePrefix(prefix); err != nil {
		return kv.DeletePrefixResult{}, b.errorf("delete-prefix", "", err)
	}
	var res kv.DeletePrefixResult
	err := b.update(ctx, "delete-prefix", prefix, func(t *txn) error {
		var doomed []removed
		err := t.scan(prefix, "", func(k []byte, e entry) bool {
			doomed = append(doomed, removed{string(k), entry{version: e.version, expMs: e.expMs}})
			return true
		})
		if err == nil {
			err = t.removeAll(doomed, kv.EventDelete)
		}
		res = kv.DeletePrefixResult{Deleted: int64(len(doomed)), Revision: t.rev}
		return err
	})
	return res, err
}

// Increment implements kv.Backend.
func (b *Backend) Increment(ctx context.Context, key string, delta int64) (kv.Counter, error) {
	if err := kv.ValidateKey(key); err != nil {
		return kv.Counter{}, b.errorf("increment", "", err)
	}
	var res kv.Counter
	err := b.update(ctx, "increment", key, func(t *txn) error {
		old, had, err := t.stored(key)
		if err != nil {
			return err
		}
		var n, expMs int64
		if t.liveVersion(old, had) != 0 {
			if n, err = kv.ParseCounter(key, old.value); err != nil {
				return err
			}
			expMs = old.expMs
		}
		if n, err = kv.AddCounter(key, n, delta); err != nil {
			return err
		}
		e := entry{version: t.rev + 1, expMs: expMs, value: strconv.AppendInt(nil, n, 10)}
		raw, err := t.set(key, old, had, e)
		if err != nil {
			return err
		}
		res = kv.Counter{Value: n, Version: e.version, ExpiresAt: kv.FromUnixMillis(expMs)}
		return t.record(kv.Event{Type: kv.EventPut, Key: key, Value: raw[entryHeader:], Version: e.version, ExpiresAt: res.ExpiresAt})
	})
	return res, err
}

// RefreshTTL implements kv.Backend.
func (b *Backend) RefreshTTL(ctx context.Context, req kv.RefreshRequest) (kv.RefreshResult, error) {
	if err := kv.ValidateRefresh(req); err != nil {
		return kv.RefreshResult{}, b.errorf("refresh ttl", "", err)
	}
	var res kv.RefreshResult
	err := b.update(ctx, "refresh ttl", req.Key, func(t *txn) error {
		old, had, err := t.stored(req.Key)
		if err != nil {
			return err
		}
		current := t.liveVersion(old, had)
		if current == 0 {
			return kv.ErrNotFound
		}
		if err := checkCond(req.Key, current, req.Cond, -1); err != nil {
			return err
		}
		e := entry{version: old.version, expMs: kv.UnixMillis(kv.ExpiryAt(t.now, req.TTL)), value: old.value}
		if _, err := t.set(req.Key, old, had, e); err != nil {
			return err
		}
		err = t.record(kv.Event{Type: kv.EventTTL, Key: req.Key, Version: e.version, ExpiresAt: kv.FromUnixMillis(e.expMs)})
		res = kv.RefreshResult{Entry: e.kvEntry(req.Key, false), Revision: t.rev}
		return err
	})
	return res, err
}

// Batch implements kv.Backend: the ops in order in one transaction, so a
// failed op leaves nothing of the others.
func (b *Backend) Batch(ctx context.Context, ops []kv.Op) (kv.BatchResult, error) {
	if err := kv.ValidateBatch(ops); err != nil {
		return kv.BatchResult{}, b.errorf("batch", "", err)
	}
	var res kv.BatchResult
	err := b.update(ctx, "batch", "", func(t *txn) error {
		res = kv.BatchResult{Results: make([]kv.OpResult, len(ops))}
		for i, op := range ops {
			var err error
			if op.Kind == kv.OpPut {
				res.Results[i], err = t.put(op.Key, op.Value, op.TTL, op.Cond, i)
			} else {
				res.Results[i], err = t.del(op.Key, op.Cond, i)
			}
			if err != nil {
				return err
			}
		}
		res.Revision = t.rev
		return nil
	})
	if err != nil {
		return kv.BatchResult{}, err
	}
	return res, nil
}

// CleanupExpired implements kv.Expirer: it removes up to limit keys whose
// expiry has passed, earliest expiry first, with an EXPIRE event each in
// key order, then prunes the history to its retention.
func (b *Backend) CleanupExpired(ctx context.Context, limit int) (int64, error) {
	if limit <= 0 {
		limit = DefaultCleanupBatch
	}
	var n int64
	err := b.update(ctx, "cleanup", "", func(t *txn) error {
		var doomed []removed
		var stale [][]byte // index rows whose entry changed since: never expected
		err := t.tx.Scan([]byte{tagExpiry}, expiryKey(t.nowMs+1, ""), func(k, _ []byte) bool {
			if len(doomed) == limit {
				return false
			}
			doomed = append(doomed, removed{key: string(k[9:])})
			stale = append(stale, append([]byte(nil), k...))
			return true
		})
		n = 0
		if err != nil {
			return err
		}
		expired := doomed[:0]
		for i, d := range doomed {
			e, had, err := t.stored(d.key)
			if err != nil {
				return err
			}
			if had && !e.live(t.nowMs) && string(expiryKey(e.expMs, d.key)) == string(stale[i]) {
				expired = append(expired, removed{d.key, entry{version: e.version, expMs: e.expMs}})
			} else if err := t.tx.Delete(stale[i]); err != nil {
				return err
			}
		}
		n = int64(len(expired))
		return t.removeAll(expired, kv.EventExpire)
	})
	if err != nil {
		return 0, err
	}
	return n, b.prune(ctx)
}

// prune deletes the history rows older than the retention, in
// transactions of at most pruneBatch rows.
func (b *Backend) prune(ctx context.Context) error {
	for done := false; !done; {
		err := b.update(ctx, "prune history", "", func(t *txn) error {
			compact, err := readInt(t.tx, compactKey)
			if err != nil {
				return err
			}
			target := t.rev - b.keep // the last revision to drop
			upto := min(target, compact+pruneBatch)
			if done = upto >= target; upto <= compact {
				return nil
			}
			for rev := compact + 1; rev <= upto; rev++ {
				if err := t.tx.Delete(historyKey(rev)); err != nil {
					return err
				}
			}
			return t.tx.Put(compactKey, be64(upto))
		})
		if err != nil {
			return err
		}
	}
	return nil
}
