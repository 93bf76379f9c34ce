package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/kvhost/kvhost/pluginapi"
)

func msTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// Get returns the live entry stored under key, or ErrNotFound.
func (s *Store) Get(ctx context.Context, key string) (kv.Entry, error) {
	if err := kv.ValidateKey(key); err != nil {
		return kv.Entry{}, fmt.Errorf("sqlite: get: %w", err)
	}
	if err := s.checkOpen(); err != nil {
		return kv.Entry{}, fmt.Errorf("sqlite: get %q: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return kv.Entry{}, fmt.Errorf("sqlite: get %q: %w", key, err)
	}
	growStack()
	e := kv.Entry{Key: key}
	var exp int64
	// One key is bounded work: see txn.ctx for why it is not cancellable.
	err := s.rs.get.QueryRowContext(context.WithoutCancel(ctx), sql.Named("key", key), sql.Named("now", s.now().UnixMilli())).
		Scan(&e.Value, &e.Version, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return kv.Entry{}, fmt.Errorf("sqlite: get %q: %w", key, kv.ErrNotFound)
	}
	if err != nil {
		return kv.Entry{}, fmt.Errorf("sqlite: get %q: %w", key, mapErr(err))
	}
	e.ExpiresAt = msTime(exp)
	return e, nil
}

// GetMany looks up keys in one statement, so the answer is one consistent
// snapshot, and answers in request order with nil for a missing key.
func (s *Store) GetMany(ctx context.Context, keys []string) ([]*kv.Entry, error) {
	if err := kv.ValidateGetMany(keys); err != nil {
		return nil, fmt.Errorf("sqlite: get-many: %w", err)
	}
	if err := s.checkOpen(); err != nil {
		return nil, fmt.Errorf("sqlite: get-many: %w", err)
	}
	out := make([]*kv.Entry, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	growStack()
	arg, err := json.Marshal(keys)
	if err != nil {
		return nil, fmt.Errorf("sqlite: get-many: %w: %v", kv.ErrInternal, err)
	}
	rows, err := s.rs.getMany.QueryContext(ctx, sql.Named("keys", string(arg)), sql.Named("now", s.now().UnixMilli()))
	if err != nil {
		return nil, fmt.Errorf("sqlite: get-many: %w", mapErr(err))
	}
	defer rows.Close()
	found := make(map[string]*kv.Entry, len(keys))
	for rows.Next() {
		e := &kv.Entry{}
		var exp int64
		if err := rows.Scan(&e.Key, &e.Value, &e.Version, &exp); err != nil {
			return nil, fmt.Errorf("sqlite: get-many: %w", mapErr(err))
		}
		e.ExpiresAt = msTime(exp)
		found[e.Key] = e
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: get-many: %w", mapErr(err))
	}
	handed := make(map[string]bool, len(found))
	for i, k := range keys {
		e, ok := found[k]
		if !ok {
			continue
		}
		if handed[k] { // a key asked for twice gets its own copy
			c := *e
			c.Value = bytes.Clone(e.Value)
			e = &c
		}
		handed[k] = true
		out[i] = e
	}
	return out, nil
}

// List returns one page of live entries under the prefix, in byte order,
// as a range scan on the primary key: key >= prefix AND key < PrefixEnd.
func (s *Store) List(ctx context.Context, req kv.ListRequest) (kv.ListResult, error) {
	req, err := kv.NormalizeList(req)
	if err != nil {
		return kv.ListResult{}, fmt.Errorf("sqlite: list: %w", err)
	}
	if err := s.checkOpen(); err != nil {
		return kv.ListResult{}, fmt.Errorf("sqlite: list %q: %w", req.Prefix, err)
	}
	lo, after := req.Prefix, 0
	if req.StartAfter >= req.Prefix {
		lo, after = req.StartAfter, 1
	}
	hi := kv.PrefixEnd(req.Prefix)
	end := 0
	if hi != "" {
		end = 1
		if lo >= hi {
			return kv.ListResult{}, nil // StartAfter is past the prefix
		}
	}
	keysOnly := 0
	if req.KeysOnly {
		keysOnly = 1
	}
	args := []any{sql.Named("lo", lo), sql.Named("now", s.now().UnixMilli()), sql.Named("limit", req.Limit+1)}
	if end == 1 {
		args = append(args, sql.Named("hi", hi))
	}
	growStack()
	rows, err := s.rs.list[end][after][keysOnly].QueryContext(ctx, args...)
	if err != nil {
		return kv.ListResult{}, fmt.Errorf("sqlite: list %q: %w", req.Prefix, mapErr(err))
	}
	defer rows.Close()
	var (
		res kv.ListResult
		acc entries
	)
	for rows.Next() {
		if acc.n == req.Limit {
			res.More = true
			break
		}
		var e kv.Entry
		var exp int64
		if req.KeysOnly {
			err = rows.Scan(&e.Key, &e.Version, &exp)
		} else {
			err = rows.Scan(&e.Key, &e.Value, &e.Version, &exp)
		}
		if err != nil {
			return kv.ListResult{}, fmt.Errorf("sqlite: list %q: %w", req.Prefix, mapErr(err))
		}
		e.ExpiresAt = msTime(exp)
		acc.add(e)
	}
	if err := rows.Err(); err != nil {
		return kv.ListResult{}, fmt.Errorf("sqlite: list %q: %w", req.Prefix, mapErr(err))
	}
	res.Entries = acc.all()
	return res, nil
}

// Count returns how many live keys start with prefix.
func (s *Store) Count(ctx context.Context, prefix string) (int64, error) {
	if err := kv.ValidatePrefix(prefix); err != nil {
		return 0, fmt.Errorf("sqlite: count: %w", err)
	}
	if err := s.checkOpen(); err != nil {
		return 0, fmt.Errorf("sqlite: count %q: %w", prefix, err)
	}
	args := []any{sql.Named("lo", prefix), sql.Named("now", s.now().UnixMilli())}
	st := s.rs.count[0]
	if hi := kv.PrefixEnd(prefix); hi != "" {
		st = s.rs.count[1]
		args = append(args, sql.Named("hi", hi))
	}
	growStack()
	var n int64
	if err := st.QueryRowContext(ctx, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: count %q: %w", prefix, mapErr(err))
	}
	return n, nil
}

// Stats counts live keys and their key plus value bytes.
func (s *Store) Stats(ctx context.Context) (kv.Stats, error) {
	if err := s.checkOpen(); err != nil {
		return kv.Stats{}, fmt.Errorf("sqlite: stats: %w", err)
	}
	st := kv.Stats{Backend: Name, Version: Version}
	growStack()
	if err := s.rs.stats.QueryRowContext(ctx, sql.Named("now", s.now().UnixMilli())).Scan(&st.Keys, &st.Bytes); err != nil {
		return kv.Stats{}, fmt.Errorf("sqlite: stats: %w", mapErr(err))
	}
	return st, nil
}

// entries accumulates a page of unknown size in chunks, so that a long
// page is copied once at the end instead of on every doubling, and a short
// one does not pay for a large limit.
type entries struct {
	full [][]kv.Entry
	cur  []kv.Entry
	n    int
}

func (a *entries) add(e kv.Entry) {
	if len(a.cur) == cap(a.cur) {
		if a.cur != nil {
			a.full = append(a.full, a.cur)
		}
		a.cur = make([]kv.Entry, 0, min(max(2*cap(a.cur), 64), 4096))
	}
	a.cur = append(a.cur, e)
	a.n++
}

func (a *entries) all() []kv.Entry {
	if len(a.full) == 0 {
		if a.cur == nil {
			return []kv.Entry{}
		}
		return a.cur
	}
	out := make([]kv.Entry, 0, a.n)
	for _, c := range a.full {
		out = append(out, c...)
	}
	return append(out, a.cur...)
}
