package kit

import (
	"context"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi"
)

// Get implements kv.Backend.
func (b *Backend) Get(ctx context.Context, key string) (kv.GetResult, error) {
	if err := kv.ValidateKey(key); err != nil {
		return kv.GetResult{}, b.errorf("get", "", err)
	}
	var res kv.GetResult
	err := b.view(ctx, "get", key, func(r *reader) error {
		e, ok, err := r.lookup(key)
		if ok {
			res.Entry, res.Found = e.kvEntry(key, true), true
		}
		res.Revision = r.rev
		return err
	})
	return res, err
}

// GetMany implements kv.Backend: every key from one snapshot.
func (b *Backend) GetMany(ctx context.Context, keys []string) (kv.GetManyResult, error) {
	if err := kv.ValidateGetMany(keys); err != nil {
		return kv.GetManyResult{}, b.errorf("get-many", "", err)
	}
	res := kv.GetManyResult{Entries: make([]*kv.Entry, len(keys))}
	err := b.view(ctx, "get-many", "", func(r *reader) error {
		res.Revision = r.rev
		for i, key := range keys {
			e, ok, err := r.lookup(key)
			if err != nil {
				return err
			}
			if ok {
				out := e.kvEntry(key, true)
				res.Entries[i] = &out
			}
		}
		return nil
	})
	return res, err
}

// scan calls fn with every live entry whose key starts with prefix and
// comes after startAfter, in key order, until fn returns false.
func (r *reader) scan(prefix, startAfter string, fn func(key []byte, e entry) bool) error {
	start, end := dataRange(prefix)
	if startAfter >= prefix {
		start = dataKey(startAfter + "\x00") // the smallest key after startAfter
	}
	var derr error
	err := r.tx.Scan(start, end, func(k, raw []byte) bool {
		e, err := decodeEntry(k, raw)
		if err != nil {
			derr = err
			return false
		}
		return !e.live(r.nowMs) || fn(k[1:], e)
	})
	if err != nil {
		return err
	}
	return derr
}

// List implements kv.Backend, paging by kv.ListRequest.PageFull.
func (b *Backend) List(ctx context.Context, req kv.ListRequest) (kv.ListResult, error) {
	req, err := kv.NormalizeList(req)
	if err != nil {
		return kv.ListResult{}, b.errorf("list", "", err)
	}
	var res kv.ListResult
	err = b.view(ctx, "list", req.Prefix, func(r *reader) error {
		res = kv.ListResult{Revision: r.rev}
		size := 0
		return r.scan(req.Prefix, req.StartAfter, func(k []byte, e entry) bool {
			next := len(k)
			if !req.KeysOnly {
				next += len(e.value)
			}
			if req.PageFull(len(res.Entries), size, next) {
				res.More = true
				return false
			}
			size += next
			res.Entries = append(res.Entries, e.kvEntry(string(k), !req.KeysOnly))
			return true
		})
	})
	return res, err
}

// Count implements kv.Backend.
func (b *Backend) Count(ctx context.Context, prefix string) (kv.CountResult, error) {
	if err := kv.ValidatePrefix(prefix); err != nil {
		return kv.CountResult{}, b.errorf("count", "", err)
	}
	var res kv.CountResult
	err := b.view(ctx, "count", prefix, func(r *reader) error {
		res = kv.CountResult{Revision: r.rev}
		return r.scan(prefix, "", func([]byte, entry) bool { res.Count++; return true })
	})
	return res, err
}

// Stats implements kv.Backend.
func (b *Backend) Stats(ctx context.Context) (kv.Stats, error) {
	st := kv.Stats{Backend: b.name, Version: b.version}
	err := b.view(ctx, "stats", "", func(r *reader) error {
		st.Keys, st.Bytes, st.Revision = 0, 0, r.rev
		oldest, err := b.oldest(r)
		if err != nil {
			return err
		}
		st.OldestRevision = oldest
		return r.scan("", "", func(k []byte, e entry) bool {
			st.Keys++
			st.Bytes += int64(len(k) + len(e.value))
			return true
		})
	})
	return st, err
}

// oldest is the oldest revision a watch can start at: revisions beyond
// the retention are not offered even before pruning removes them, so what
// a watch may start at does not depend on when cleanup last ran.
func (b *Backend) oldest(r *reader) (int64, error) {
	compact, err := readInt(r.tx, compactKey)
	return max(compact+1, r.rev-b.keep+1, 1), err
}

// ReadHistory implements pluginapi.History for the WatchHub.
func (b *Backend) ReadHistory(ctx context.Context, prefix string, from int64, limit int) ([]kv.Event, int64, error) {
	var events []kv.Event
	var through int64
	err := b.view(ctx, "read history", prefix, func(r *reader) error {
		oldest, err := b.oldest(r)
		if err != nil {
			return err
		}
		if from < oldest {
			return &kv.CompactedError{Requested: from, Oldest: oldest}
		}
		events, through = nil, r.rev
		size := 0
		var derr error
		err = r.tx.Scan(historyKey(from), historyKey(r.rev+1), func(k, raw []byte) bool {
			ev, ok, err := decodeEvent(k, raw, prefix)
			if err != nil {
				derr = err
				return false
			}
			if !ok {
				return true
			}
			events = append(events, ev)
			if size += len(ev.Value); len(events) == limit || size >= pluginapi.HistoryPageBytes {
				through = ev.Revision // stopped early: covered up to here
				return false
			}
			return true
		})
		if err != nil {
			return err
		}
		return derr
	})
	return events, through, err
}
