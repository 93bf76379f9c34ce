package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi"
	"github.com/kvhost/kvhost/plugins/internal/sqlkv"
)

// Get returns the live entry stored under key, and the revision it was
// read at, in one statement: the hot path stays one SQLite step.
func (s *Store) Get(ctx context.Context, key string) (kv.GetResult, error) {
	if err := kv.ValidateKey(key); err != nil {
		return kv.GetResult{}, fmt.Errorf("sqlite: get: %w", err)
	}
	if err := s.checkOpen(); err != nil {
		return kv.GetResult{}, fmt.Errorf("sqlite: get %q: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return kv.GetResult{}, fmt.Errorf("sqlite: get %q: %w", key, err)
	}
	growStack()
	var (
		res kv.GetResult
		exp int64
	)
	// One key is bounded work: see txn.ctx for why it is not cancellable.
	err := s.rs.get.QueryRowContext(context.WithoutCancel(ctx), sql.Named("key", key), sql.Named("now", s.now().UnixMilli())).
		Scan((*integer)(&res.Revision), &res.Entry.Value, (*integer)(&res.Entry.Version), (*integer)(&exp))
	if err != nil {
		return kv.GetResult{}, fmt.Errorf("sqlite: get %q: %w", key, mapErr(err))
	}
	if res.Entry.Version == 0 {
		return kv.GetResult{Revision: res.Revision}, nil
	}
	res.Found = true
	res.Entry.Key, res.Entry.ExpiresAt = key, kv.FromUnixMillis(exp)
	if res.Entry.Value == nil {
		res.Entry.Value = []byte{}
	}
	return res, nil
}

// scanEntry scans a row of revision, key, value, version and expiry, and
// says whether it holds an entry (the row of a read that matched nothing
// has an empty key).
func scanEntry(rows *sql.Rows, rev *int64, e *kv.Entry) (bool, error) {
	var exp int64
	if err := rows.Scan((*integer)(rev), &e.Key, &e.Value, (*integer)(&e.Version), (*integer)(&exp)); err != nil {
		return false, mapErr(err)
	}
	e.ExpiresAt = kv.FromUnixMillis(exp)
	return e.Key != "", nil
}

// integer scans a non-NULL INTEGER column. database/sql assigns an int64
// to an *int64 through reflection, which costs as much as the rest of a
// list row's scan; a Scanner is a method call. With it, the revision
// column every read row carries costs a list of 10K keys 3-6% instead of
// 15%.
type integer int64

func (i *integer) Scan(src any) error {
	v, ok := src.(int64)
	if !ok {
		return fmt.Errorf("%w: scanned %T where an integer should be", kv.ErrInternal, src)
	}
	*i = integer(v)
	return nil
}

// GetMany looks up keys in one statement, so the answer is one consistent
// snapshot, and answers in request order with nil for a missing key.
func (s *Store) GetMany(ctx context.Context, keys []string) (kv.GetManyResult, error) {
	if err := kv.ValidateGetMany(keys); err != nil {
		return kv.GetManyResult{}, fmt.Errorf("sqlite: get-many: %w", err)
	}
	if err := s.checkOpen(); err != nil {
		return kv.GetManyResult{}, fmt.Errorf("sqlite: get-many: %w", err)
	}
	growStack()
	arg, err := json.Marshal(keys)
	if err != nil {
		return kv.GetManyResult{}, fmt.Errorf("sqlite: get-many: %w: %v", kv.ErrInternal, err)
	}
	if len(keys) == 0 {
		arg = []byte("[]") // json.Marshal says null for a nil slice
	}
	rows, err := s.rs.getMany.QueryContext(ctx, sql.Named("keys", string(arg)), sql.Named("now", s.now().UnixMilli()))
	if err != nil {
		return kv.GetManyResult{}, fmt.Errorf("sqlite: get-many: %w", mapErr(err))
	}
	defer rows.Close()
	var res kv.GetManyResult
	found := make(map[string]*kv.Entry, len(keys))
	for rows.Next() {
		e := &kv.Entry{}
		ok, err := scanEntry(rows, &res.Revision, e)
		if err != nil {
			return kv.GetManyResult{}, fmt.Errorf("sqlite: get-many: %w", err)
		}
		if ok {
			if e.Value == nil {
				e.Value = []byte{}
			}
			found[e.Key] = e
		}
	}
	if err := rows.Err(); err != nil {
		return kv.GetManyResult{}, fmt.Errorf("sqlite: get-many: %w", mapErr(err))
	}
	res.Entries = sqlkv.InRequestOrder(keys, found)
	return res, nil
}

// List returns one page of live entries under the prefix, in byte order,
// as a range scan on the primary key: key >= prefix AND key < PrefixEnd.
// The page ends at req.Limit entries or req.MaxBytes bytes
// (kv.ListRequest.PageFull); one row past it says whether more remain.
func (s *Store) List(ctx context.Context, req kv.ListRequest) (kv.ListResult, error) {
	req, err := kv.NormalizeList(req)
	if err != nil {
		return kv.ListResult{}, fmt.Errorf("sqlite: list: %w", err)
	}
	return s.list(ctx, req, sqlkv.NewPage(req))
}

// ListPacked is List writing the page in the plugin wire's packed form
// (pluginapi.PackedLister), with no entry made of each row.
func (s *Store) ListPacked(ctx context.Context, req kv.ListRequest, dst *pluginapi.PackedPage) (kv.ListResult, error) {
	req, err := kv.NormalizeList(req)
	if err != nil {
		return kv.ListResult{}, fmt.Errorf("sqlite: list: %w", err)
	}
	return s.list(ctx, req, sqlkv.NewPackedPage(req, dst))
}

func (s *Store) list(ctx context.Context, req kv.ListRequest, page *sqlkv.Page) (kv.ListResult, error) {
	if err := s.checkOpen(); err != nil {
		return kv.ListResult{}, fmt.Errorf("sqlite: list %q: %w", req.Prefix, err)
	}
	lo, after := req.Prefix, 0
	if req.StartAfter >= req.Prefix {
		lo, after = req.StartAfter, 1
	}
	args := []any{sql.Named("lo", lo), sql.Named("now", s.now().UnixMilli()), sql.Named("limit", req.Limit+1)}
	end := 0
	if hi := kv.PrefixEnd(req.Prefix); hi != "" {
		end = 1
		args = append(args, sql.Named("hi", hi))
	}
	keysOnly := 0
	if req.KeysOnly {
		keysOnly = 1
	}
	growStack()
	rows, err := s.rs.list[end][after][keysOnly].QueryContext(ctx, args...)
	if err != nil {
		return kv.ListResult{}, fmt.Errorf("sqlite: list %q: %w", req.Prefix, mapErr(err))
	}
	defer rows.Close()
	var (
		rev, version, exp integer
		// the driver's bytes for the row, reused: AddRow copies them
		key, value sql.RawBytes
	)
	for rows.Next() {
		if err := rows.Scan(&rev, &key, &value, &version, &exp); err != nil {
			return kv.ListResult{}, fmt.Errorf("sqlite: list %q: %w", req.Prefix, mapErr(err))
		}
		// the row of a read that matched nothing has an empty key
		if len(key) > 0 && !page.AddRow(key, value, int64(version), int64(exp)) {
			break
		}
	}
	if err := rows.Err(); err != nil {
		return kv.ListResult{}, fmt.Errorf("sqlite: list %q: %w", req.Prefix, mapErr(err))
	}
	return page.Result(int64(rev)), nil
}

// Count returns how many live keys start with prefix.
func (s *Store) Count(ctx context.Context, prefix string) (kv.CountResult, error) {
	if err := kv.ValidatePrefix(prefix); err != nil {
		return kv.CountResult{}, fmt.Errorf("sqlite: count: %w", err)
	}
	if err := s.checkOpen(); err != nil {
		return kv.CountResult{}, fmt.Errorf("sqlite: count %q: %w", prefix, err)
	}
	args := []any{sql.Named("lo", prefix), sql.Named("now", s.now().UnixMilli())}
	st := s.rs.count[0]
	if hi := kv.PrefixEnd(prefix); hi != "" {
		st = s.rs.count[1]
		args = append(args, sql.Named("hi", hi))
	}
	growStack()
	var res kv.CountResult
	if err := st.QueryRowContext(ctx, args...).Scan(&res.Revision, &res.Count); err != nil {
		return kv.CountResult{}, fmt.Errorf("sqlite: count %q: %w", prefix, mapErr(err))
	}
	return res, nil
}

// Stats counts live keys and their key plus value bytes, and says the
// store revision and the oldest revision a watch can start at.
func (s *Store) Stats(ctx context.Context) (kv.Stats, error) {
	if err := s.checkOpen(); err != nil {
		return kv.Stats{}, fmt.Errorf("sqlite: stats: %w", err)
	}
	st := kv.Stats{Backend: Name, Version: Version}
	var compact int64
	growStack()
	if err := s.rs.stats.QueryRowContext(ctx, sql.Named("now", s.now().UnixMilli())).
		Scan(&st.Revision, &compact, &st.Keys, &st.Bytes); err != nil {
		return kv.Stats{}, fmt.Errorf("sqlite: stats: %w", mapErr(err))
	}
	st.OldestRevision = s.retention().Oldest(st.Revision, compact)
	return st, nil
}
