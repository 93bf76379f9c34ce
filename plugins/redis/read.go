package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kvhost/kvhost/kv"
)

// Every read is one script, so Redis serves it at one instant: the
// revision it reports and the data agree, and the expiry check uses the
// server's clock at that instant.

// entry builds an entry from a key's metadata and value (nil: keys only).
func entry(key, meta string, value *string) (kv.Entry, error) {
	ver, exp, _, err := parseMeta(meta)
	if err != nil {
		return kv.Entry{}, err
	}
	e := kv.Entry{Key: key, Version: ver, ExpiresAt: kv.FromUnixMillis(exp)}
	if value != nil {
		e.Value = []byte(*value)
	}
	return e, nil
}

// Get and GetMany are one MULTI/EXEC transaction each, with no script:
// Redis runs the commands of a transaction together, as it runs a
// script, and a point get then costs Redis a few microseconds instead of
// the 30 a script call costs (docs/RATIONALE.md, "Redis backend"). The
// transaction reads the server's time too, and the expiry check is made
// here against it.

// point is what a transaction read: metadata and values of keys (nil
// when missing), the revision, the server's time.
type point struct {
	metas, vals []any
	rev         int64
	now         int64
}

// readPoint reads keys' metadata and values at one instant.
func (s *Store) readPoint(ctx context.Context, keys ...string) (point, error) {
	if s.closed.Load() {
		return point{}, kv.ErrClosed
	}
	for attempt := 0; ; attempt++ {
		seen := s.seen.Load()
		var (
			metas, vals *goredis.SliceCmd
			rev         *goredis.StringCmd
			now         *goredis.TimeCmd
		)
		cmds, err := s.rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			metas = p.HMGet(ctx, s.keys[keyMeta], keys...)
			vals = p.HMGet(ctx, s.keys[keyVal], keys...)
			rev = p.Get(ctx, s.keys[keyRev])
			now = p.Time(ctx)
			return nil
		})
		if err = queuedErr(cmds, err); isOOM(err) {
			return s.readPointScript(ctx, keys)
		}
		if err != nil && !errors.Is(err, goredis.Nil) { // Nil: a store with no revision yet
			return point{}, s.ctxErr(ctx, err)
		}
		pt := point{metas: metas.Val(), vals: vals.Val(), now: now.Val().UnixMilli()}
		if r := rev.Val(); r != "" {
			pt.rev = asInt(r)
		}
		// The store's revision is below one seen before this read began:
		// Redis lost the store's data. init sets a new epoch and takes the
		// revision back up.
		if pt.rev < seen && attempt == 0 {
			if _, _, _, err := s.init(ctx); err != nil {
				return point{}, err
			}
			continue
		}
		if len(pt.metas) != len(keys) || len(pt.vals) != len(keys) {
			return point{}, fmt.Errorf("%w: redis: a read of %d keys answered %d", kv.ErrInternal, len(keys), len(pt.metas))
		}
		s.observe(pt.rev)
		return pt, nil
	}
}

// readPointScript reads keys with scriptGet: a Redis out of memory
// refuses every command queued in a transaction, reads too, but runs
// read-only scripts.
func (s *Store) readPointScript(ctx context.Context, keys []string) (point, error) {
	args := make([]any, len(keys))
	for i, k := range keys {
		args[i] = k
	}
	res, _, err := s.run(ctx, scriptGet, args...)
	if err != nil {
		return point{}, err
	}
	pt := point{metas: asList(res[2]), vals: asList(res[3]), rev: asInt(res[1]), now: asInt(res[4])}
	if len(pt.metas) != len(keys) || len(pt.vals) != len(keys) {
		return point{}, fmt.Errorf("%w: redis: a read of %d keys answered %d", kv.ErrInternal, len(keys), len(pt.metas))
	}
	s.observe(pt.rev)
	return pt, nil
}

// entryAt returns key i of a point read if it is live then.
func (pt point) entryAt(i int, key string) (kv.Entry, bool, error) {
	m, ok := pt.metas[i].(string)
	if !ok {
		return kv.Entry{}, false, nil
	}
	v, ok := pt.vals[i].(string)
	if !ok {
		return kv.Entry{}, false, fmt.Errorf("%w: the key has metadata but no value", kv.ErrDataLoss)
	}
	e, err := entry(key, m, &v)
	if err != nil || (!e.ExpiresAt.IsZero() && e.ExpiresAt.UnixMilli() <= pt.now) {
		return kv.Entry{}, false, err
	}
	return e, true, nil
}

// Get reads one key.
func (s *Store) Get(ctx context.Context, key string) (kv.GetResult, error) {
	if err := kv.ValidateKey(key); err != nil {
		return kv.GetResult{}, err
	}
	pt, err := s.readPoint(ctx, key)
	if err != nil {
		return kv.GetResult{}, fmt.Errorf("redis: get %q: %w", key, err)
	}
	e, found, err := pt.entryAt(0, key)
	if err != nil {
		return kv.GetResult{}, fmt.Errorf("redis: get %q: %w", key, err)
	}
	return kv.GetResult{Entry: e, Found: found, Revision: pt.rev}, nil
}

// GetMany reads up to kv.MaxGetMany keys at one instant.
func (s *Store) GetMany(ctx context.Context, keys []string) (kv.GetManyResult, error) {
	if err := kv.ValidateGetMany(keys); err != nil {
		return kv.GetManyResult{}, err
	}
	if len(keys) == 0 {
		rev, err := s.head(ctx)
		if err != nil {
			return kv.GetManyResult{}, fmt.Errorf("redis: get-many: %w", err)
		}
		return kv.GetManyResult{Entries: []*kv.Entry{}, Revision: rev}, nil
	}
	pt, err := s.readPoint(ctx, keys...)
	if err != nil {
		return kv.GetManyResult{}, fmt.Errorf("redis: get-many of %d keys: %w", len(keys), err)
	}
	out := kv.GetManyResult{Entries: make([]*kv.Entry, len(keys)), Revision: pt.rev}
	for i, k := range keys {
		e, found, err := pt.entryAt(i, k)
		if err != nil {
			return kv.GetManyResult{}, fmt.Errorf("redis: get-many %q: %w", k, err)
		}
		if found {
			out.Entries[i] = &e
		}
	}
	return out, nil
}

// head reads the store revision.
func (s *Store) head(ctx context.Context) (int64, error) {
	res, _, err := s.run(ctx, scriptHead)
	if err != nil {
		return 0, err
	}
	rev := asInt(res[1])
	s.observe(rev)
	return rev, nil
}

// lexRange returns the ZRANGE BYLEX bounds of the keys that start with
// prefix and come after startAfter.
func lexRange(prefix, startAfter string) (lo, hi string) {
	switch {
	case startAfter != "" && startAfter >= prefix:
		lo = "(" + startAfter
	case prefix == "":
		lo = "-"
	default:
		lo = "[" + prefix
	}
	hi = "+"
	if end := kv.PrefixEnd(prefix); end != "" {
		hi = "(" + end
	}
	return lo, hi
}

// List reads one page of live keys under a prefix, from the index.
func (s *Store) List(ctx context.Context, req kv.ListRequest) (kv.ListResult, error) {
	req, err := kv.NormalizeList(req)
	if err != nil {
		return kv.ListResult{}, err
	}
	lo, hi := lexRange(req.Prefix, req.StartAfter)
	if s.closed.Load() {
		return kv.ListResult{}, fmt.Errorf("redis: list %q: %w", req.Prefix, kv.ErrClosed)
	}
	for range s.listAttempts {
		out, err := s.listWatched(ctx, req, lo, hi)
		if errors.Is(err, errRetry) {
			continue
		}
		if isOOM(err) {
			break // the script reads on a Redis out of memory
		}
		if err != nil {
			return kv.ListResult{}, fmt.Errorf("redis: list %q: %w", req.Prefix, s.ctxErr(ctx, err))
		}
		s.observe(out.Revision)
		return out, nil
	}
	return s.listScript(ctx, req, lo, hi)
}

// listScript reads one page with scriptList: one atomic step, whatever
// the writers do.
func (s *Store) listScript(ctx context.Context, req kv.ListRequest, lo, hi string) (kv.ListResult, error) {
	keysOnly := "0"
	if req.KeysOnly {
		keysOnly = "1"
	}
	res, _, err := s.run(ctx, scriptList, lo, hi, req.Limit, req.MaxBytes, keysOnly)
	if err != nil {
		return kv.ListResult{}, fmt.Errorf("redis: list %q: %w", req.Prefix, err)
	}
	out := kv.ListResult{Revision: asInt(res[1]), More: asInt(res[5]) == 1}
	s.observe(out.Revision)
	keys, metas, values := asList(res[2]), asList(res[3]), asList(res[4])
	if len(metas) != len(keys) || (!req.KeysOnly && len(values) != len(keys)) {
		return kv.ListResult{}, fmt.Errorf("%w: redis: list %q: %d keys, %d metadata, %d values", kv.ErrInternal, req.Prefix, len(keys), len(metas), len(values))
	}
	out.Entries = make([]kv.Entry, len(keys))
	for i := range keys {
		k, _ := asString(keys[i])
		m, _ := asString(metas[i])
		var vp *string
		if !req.KeysOnly {
			v, ok := asString(values[i])
			if !ok {
				return kv.ListResult{}, fmt.Errorf("redis: list %q: key %q: %w: the key has metadata but no value", req.Prefix, k, kv.ErrDataLoss)
			}
			vp = &v
		}
		if out.Entries[i], err = entry(k, m, vp); err != nil {
			return kv.ListResult{}, fmt.Errorf("redis: list %q: key %q: %w", req.Prefix, k, err)
		}
	}
	return out, nil
}

// Count counts live keys under a prefix, from the index.
func (s *Store) Count(ctx context.Context, prefix string) (kv.CountResult, error) {
	if err := kv.ValidatePrefix(prefix); err != nil {
		return kv.CountResult{}, err
	}
	lo, hi := lexRange(prefix, "")
	res, _, err := s.run(ctx, scriptCount, lo, hi, prefix)
	if err != nil {
		return kv.CountResult{}, fmt.Errorf("redis: count %q: %w", prefix, err)
	}
	out := kv.CountResult{Revision: asInt(res[1]), Count: asInt(res[2])}
	s.observe(out.Revision)
	return out, nil
}

// Stats reports live keys and bytes from the index and the running byte
// total, never from INFO, and the oldest revision a watch can start at.
func (s *Store) Stats(ctx context.Context) (kv.Stats, error) {
	res, _, err := s.run(ctx, scriptStats)
	if err != nil {
		return kv.Stats{}, fmt.Errorf("redis: stats: %w", err)
	}
	rev := asInt(res[1])
	s.observe(rev)
	return kv.Stats{
		Keys:           asInt(res[2]),
		Bytes:          asInt(res[3]),
		Backend:        Name,
		Version:        Version,
		Revision:       rev,
		OldestRevision: s.oldest(rev, asInt(res[4])),
	}, nil
}

// oldest is the oldest revision a watch can start at, given the store
// revision and the base of its history (the first revision it holds
// since the store's epoch began). Trimming keeps at least the last
// History revisions (it removes whole stream nodes, whose entries are
// all older); revisions past retention that are still in the stream are
// not offered, so where a watch may start does not depend on when Redis
// trimmed.
func (s *Store) oldest(rev, base int64) int64 {
	return max(base, rev-int64(s.cfg.History)+1, 1)
}

// streamRevision reads the revision of a stream entry ID "<rev>-0".
func streamRevision(id string) int64 {
	for i := 0; i < len(id); i++ {
		if id[i] == '-' {
			id = id[:i]
			break
		}
	}
	n, _ := strconv.ParseInt(id, 10, 64)
	return n
}
