package redis

import (
	"context"
	"fmt"
	"strconv"

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

// Get reads one key.
func (s *Store) Get(ctx context.Context, key string) (kv.GetResult, error) {
	if err := kv.ValidateKey(key); err != nil {
		return kv.GetResult{}, err
	}
	res, _, err := s.run(ctx, scriptGet, key)
	if err != nil {
		return kv.GetResult{}, fmt.Errorf("redis: get %q: %w", key, err)
	}
	out := kv.GetResult{Revision: asInt(res[1])}
	s.observe(out.Revision)
	if len(res) < 4 {
		return out, nil
	}
	m, _ := asString(res[2])
	v, ok := asString(res[3])
	if !ok {
		return kv.GetResult{}, fmt.Errorf("redis: get %q: %w: the key has metadata but no value", key, kv.ErrDataLoss)
	}
	if out.Entry, err = entry(key, m, &v); err != nil {
		return kv.GetResult{}, fmt.Errorf("redis: get %q: %w", key, err)
	}
	out.Found = true
	return out, nil
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
	args := make([]any, len(keys))
	for i, k := range keys {
		args[i] = k
	}
	res, _, err := s.run(ctx, scriptGetMany, args...)
	if err != nil {
		return kv.GetManyResult{}, fmt.Errorf("redis: get-many of %d keys: %w", len(keys), err)
	}
	out := kv.GetManyResult{Entries: make([]*kv.Entry, len(keys)), Revision: asInt(res[1])}
	s.observe(out.Revision)
	metas, values := asList(res[2]), asList(res[3])
	if len(metas) != len(keys) || len(values) != len(keys) {
		return kv.GetManyResult{}, fmt.Errorf("%w: redis: get-many of %d keys answered %d", kv.ErrInternal, len(keys), len(metas))
	}
	for i, k := range keys {
		m, ok := asString(metas[i])
		if !ok {
			continue
		}
		v, ok := asString(values[i])
		if !ok {
			return kv.GetManyResult{}, fmt.Errorf("redis: get-many %q: %w: the key has metadata but no value", k, kv.ErrDataLoss)
		}
		e, err := entry(k, m, &v)
		if err != nil {
			return kv.GetManyResult{}, fmt.Errorf("redis: get-many %q: %w", k, err)
		}
		out.Entries[i] = &e
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
	first, _ := asString(res[4])
	return kv.Stats{
		Keys:           asInt(res[2]),
		Bytes:          asInt(res[3]),
		Backend:        Name,
		Version:        Version,
		Revision:       rev,
		OldestRevision: s.oldest(rev, streamRevision(first)),
	}, nil
}

// oldest is the oldest revision a watch can start at, given the store
// revision and the stream's first entry (0 when the stream is empty).
// Entries past retention that trimming has not removed yet (it trims
// whole stream nodes) are not offered, so where a watch may start does
// not depend on when Redis trimmed.
func (s *Store) oldest(rev, first int64) int64 {
	if first == 0 {
		first = rev + 1
	}
	return max(first, rev-int64(s.cfg.History)+1, 1)
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
