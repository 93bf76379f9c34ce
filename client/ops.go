package client

import (
	"context"
	"fmt"
	"iter"
	"time"

	apipb "github.com/kvhost/kvhost/api/kvhostv1"
	"github.com/kvhost/kvhost/kv"
)

// WriteOption qualifies a write: Put takes all of them; Delete and
// RefreshTTL take IfVersion only.
type WriteOption func(*writeOptions)

type writeOptions struct {
	ttl    time.Duration
	hasTTL bool
	cond   kv.Condition
}

// WithTTL makes a put expire after d (at millisecond precision, rounded
// up). Without it, or with 0, the key never expires, and a put clears an
// earlier expiry.
func WithTTL(d time.Duration) WriteOption {
	return func(o *writeOptions) { o.ttl, o.hasTTL = d, true }
}

// IfAbsent makes a put succeed only when no live key exists.
func IfAbsent() WriteOption {
	return func(o *writeOptions) { o.cond = kv.IfAbsent() }
}

// IfVersion makes a write succeed only when the live key is at version v
// (compare-and-set).
func IfVersion(v int64) WriteOption {
	return func(o *writeOptions) { o.cond = kv.IfVersion(v) }
}

func writeOpts(opts []WriteOption) writeOptions {
	var o writeOptions
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// ListOption shapes a List page or an All iteration.
type ListOption func(*kv.ListRequest)

// StartAfter lists keys strictly after k.
func StartAfter(k string) ListOption {
	return func(r *kv.ListRequest) { r.StartAfter = k }
}

// Limit caps a List page (0: the server's default; above
// kv.MaxListLimit is lowered to it). For All it is the page size.
func Limit(n int) ListOption {
	return func(r *kv.ListRequest) { r.Limit = n }
}

// MaxBytes caps a List page's key plus value bytes (0: the server's
// default, 4 MiB; the first entry always comes). For All it sizes pages.
func MaxBytes(n int) ListOption {
	return func(r *kv.ListRequest) { r.MaxBytes = n }
}

// KeysOnly leaves values out: entries carry key, version and expiry.
func KeysOnly() ListOption {
	return func(r *kv.ListRequest) { r.KeysOnly = true }
}

// Stats describes the server's store as the caller sees it.
type Stats struct {
	// Keys counts the live keys of the caller's tenant.
	Keys int64
	// BackendKeys and BackendBytes count the whole backend, all tenants;
	// the server gives them to admin principals only (BackendTotals).
	BackendKeys   int64
	BackendBytes  int64
	BackendTotals bool
	// Backend and BackendVersion name the backend plugin.
	Backend        string
	BackendVersion string
	// Revision is the store revision now; OldestRevision the oldest a
	// watch can start at (0 when the backend keeps no history).
	Revision       int64
	OldestRevision int64
}

// Get returns the live entry under key, or an error wrapping ErrNotFound.
// With a near cache (WithNearCache) it may be served from memory.
func (c *Client) Get(ctx context.Context, key string, opts ...ReadOption) (kv.Entry, error) {
	r, err := c.Read(ctx, key, opts...)
	if err != nil {
		return kv.Entry{}, err
	}
	if !r.Found {
		return kv.Entry{}, fmt.Errorf("%w: %q", ErrNotFound, key)
	}
	return r.Entry, nil
}

// Read looks key up and says at which store revision: a missing key is an
// answer (Found false), not an error. With a near cache (WithNearCache) it
// may be served from memory, at the revision the cache can vouch for.
func (c *Client) Read(ctx context.Context, key string, opts ...ReadOption) (kv.GetResult, error) {
	if err := c.check(); err != nil {
		return kv.GetResult{}, err
	}
	if err := kv.ValidateKey(key); err != nil {
		return kv.GetResult{}, err
	}
	var o readOptions
	if len(opts) > 0 { // applying options costs an allocation: not on the near cache's hit path
		o = readOpts(opts)
	}
	if c.near != nil && !o.linearizable {
		return c.near.read(ctx, c, key)
	}
	r, err := c.rpc.Get(ctx, &apipb.GetRequest{Key: key, Linearizable: o.linearizable, AllowMissing: true})
	if err != nil {
		return kv.GetResult{}, c.wireErr(err)
	}
	return getResult(r), nil
}

func getResult(r *apipb.GetResponse) kv.GetResult {
	if r.Entry == nil {
		return kv.GetResult{Revision: r.Revision}
	}
	return kv.GetResult{Found: true, Entry: entryFromPB(r.Entry), Revision: r.Revision}
}

// GetMany looks up to kv.MaxGetMany keys at once and answers in
// request order; a missing key is a nil element.
func (c *Client) GetMany(ctx context.Context, keys []string) ([]*kv.Entry, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	if err := kv.ValidateGetMany(keys); err != nil {
		return nil, err
	}
	r, err := c.rpc.GetMany(ctx, &apipb.GetManyRequest{Keys: keys})
	if err != nil {
		return nil, c.wireErr(err)
	}
	if len(r.Results) != len(keys) {
		return nil, fmt.Errorf("%w: get-many answered %d results for %d keys", ErrInternal, len(r.Results), len(keys))
	}
	out := make([]*kv.Entry, len(keys))
	for i, l := range r.Results {
		if l.Found {
			e := entryFromPB(l.Entry)
			out[i] = &e
		}
	}
	return out, nil
}

// Put stores value under key. The returned entry has the key's new version
// and expiry but not the value. A failed IfAbsent or IfVersion is a
// *ConflictError.
func (c *Client) Put(ctx context.Context, key string, value []byte, opts ...WriteOption) (kv.Entry, error) {
	if err := c.check(); err != nil {
		return kv.Entry{}, err
	}
	o := writeOpts(opts)
	req := kv.PutRequest{Key: key, Value: value, TTL: o.ttl, Cond: o.cond}
	if err := kv.ValidatePut(req); err != nil {
		return kv.Entry{}, err
	}
	defer c.writing(false, key)()
	r, err := c.rpc.Put(ctx, &apipb.PutRequest{
		Key: key, Value: value, TtlMs: kv.TTLMillis(o.ttl), Condition: condToPB(o.cond),
	})
	if err != nil {
		return kv.Entry{}, c.wireErr(err)
	}
	return entryFromPB(r.Entry), nil
}

// Delete removes key and reports whether there was a live key to remove; a
// missing key is not an error. It takes IfVersion only.
func (c *Client) Delete(ctx context.Context, key string, opts ...WriteOption) (bool, error) {
	if err := c.check(); err != nil {
		return false, err
	}
	o := writeOpts(opts)
	if err := kv.ValidateKey(key); err != nil {
		return false, err
	}
	if o.hasTTL {
		return false, fmt.Errorf("%w: delete %q takes no TTL", ErrInvalidArgument, key)
	}
	if err := kv.ValidateCondition(o.cond, false); err != nil {
		return false, err
	}
	defer c.writing(false, key)()
	r, err := c.rpc.Delete(ctx, &apipb.DeleteRequest{Key: key, Condition: condToPB(o.cond)})
	if err != nil {
		return false, c.wireErr(err)
	}
	return r.Deleted, nil
}

// List returns one page of live entries whose key starts with prefix, in
// ascending byte order; More says whether keys remain after the last one
// (continue with StartAfter(lastKey), or use All). Revision is the store
// revision the page was read at: watch from Revision+1 to follow every
// later change.
func (c *Client) List(ctx context.Context, prefix string, opts ...ListOption) (kv.ListResult, error) {
	if err := c.check(); err != nil {
		return kv.ListResult{}, err
	}
	req := kv.ListRequest{Prefix: prefix}
	for _, opt := range opts {
		opt(&req)
	}
	// Validate only: a limit of 0 goes out as 0 so the server applies its
	// own default.
	if _, err := kv.NormalizeList(req); err != nil {
		return kv.ListResult{}, err
	}
	r, err := c.rpc.List(ctx, &apipb.ListRequest{
		Prefix: prefix, StartAfter: req.StartAfter, Limit: int32(min(req.Limit, kv.MaxListLimit)), KeysOnly: req.KeysOnly,
		MaxBytes: int64(min(req.MaxBytes, kv.MaxListBytes)),
	})
	if err != nil {
		return kv.ListResult{}, c.wireErr(err)
	}
	out := kv.ListResult{Entries: make([]kv.Entry, len(r.Entries)), More: r.More, Revision: r.Revision}
	for i, e := range r.Entries {
		out.Entries[i] = entryFromPB(e)
	}
	return out, nil
}

// All iterates over every live entry under prefix, fetching a page at a
// time (Limit sets the page size; StartAfter and KeysOnly apply too). It is
// not a snapshot: each key comes at most once and in order, but a key
// written during the iteration may or may not appear. An error ends the
// iteration after it is yielded.
func (c *Client) All(ctx context.Context, prefix string, opts ...ListOption) iter.Seq2[kv.Entry, error] {
	return func(yield func(kv.Entry, error) bool) {
		var page kv.ListRequest
		for _, opt := range opts {
			opt(&page)
		}
		after := page.StartAfter
		for {
			paged := append(opts[:len(opts):len(opts)], StartAfter(after))
			res, err := c.List(ctx, prefix, paged...)
			if err != nil {
				yield(kv.Entry{}, err)
				return
			}
			for _, e := range res.Entries {
				if !yield(e, nil) {
					return
				}
			}
			if !res.More || len(res.Entries) == 0 {
				return
			}
			after = res.Entries[len(res.Entries)-1].Key
		}
	}
}

// Count returns how many live keys start with prefix ("" counts all of the
// tenant's keys).
func (c *Client) Count(ctx context.Context, prefix string) (int64, error) {
	if err := c.check(); err != nil {
		return 0, err
	}
	if err := kv.ValidatePrefix(prefix); err != nil {
		return 0, err
	}
	r, err := c.rpc.Count(ctx, &apipb.CountRequest{Prefix: prefix})
	if err != nil {
		return 0, c.wireErr(err)
	}
	return r.Count, nil
}

// DeletePrefix removes every live key under prefix and says how many. An
// empty prefix is refused with ErrInvalidArgument.
func (c *Client) DeletePrefix(ctx context.Context, prefix string) (int64, error) {
	if err := c.check(); err != nil {
		return 0, err
	}
	if err := kv.ValidateDeletePrefix(prefix); err != nil {
		return 0, err
	}
	defer c.writing(true)()
	r, err := c.rpc.DeletePrefix(ctx, &apipb.DeletePrefixRequest{Prefix: prefix})
	if err != nil {
		return 0, c.wireErr(err)
	}
	return r.Deleted, nil
}

// Increment atomically adds delta to the decimal int64 counter under key (a
// missing key counts as 0) and returns the new value. A key holding
// anything else, or an overflow, is ErrInvalidArgument.
func (c *Client) Increment(ctx context.Context, key string, delta int64) (kv.Counter, error) {
	if err := c.check(); err != nil {
		return kv.Counter{}, err
	}
	if err := kv.ValidateKey(key); err != nil {
		return kv.Counter{}, err
	}
	defer c.writing(false, key)()
	r, err := c.rpc.Increment(ctx, &apipb.IncrementRequest{Key: key, Delta: delta})
	if err != nil {
		return kv.Counter{}, c.wireErr(err)
	}
	return kv.Counter{Value: r.Value, Version: r.Version, ExpiresAt: kv.FromUnixMillis(r.ExpiresAtMs)}, nil
}

// RefreshTTL changes only the expiry of a live key: it expires ttl from now,
// or never when ttl is 0. The version does not change. A missing key is
// ErrNotFound. It takes IfVersion only.
func (c *Client) RefreshTTL(ctx context.Context, key string, ttl time.Duration, opts ...WriteOption) (kv.Entry, error) {
	if err := c.check(); err != nil {
		return kv.Entry{}, err
	}
	o := writeOpts(opts)
	if o.hasTTL {
		return kv.Entry{}, fmt.Errorf("%w: refresh-ttl %q takes its TTL as an argument, not WithTTL", ErrInvalidArgument, key)
	}
	if err := kv.ValidateRefresh(kv.RefreshRequest{Key: key, TTL: ttl, Cond: o.cond}); err != nil {
		return kv.Entry{}, err
	}
	defer c.writing(false, key)()
	r, err := c.rpc.RefreshTTL(ctx, &apipb.RefreshTTLRequest{Key: key, TtlMs: kv.TTLMillis(ttl), Condition: condToPB(o.cond)})
	if err != nil {
		return kv.Entry{}, c.wireErr(err)
	}
	return entryFromPB(r.Entry), nil
}

// Batch applies ops atomically, in order: all of them or none. A failed
// condition is a *ConflictError whose OpIndex names the op. Build ops with
// kv.PutOp and kv.DeleteOp.
func (c *Client) Batch(ctx context.Context, ops []kv.Op) ([]kv.OpResult, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	if err := kv.ValidateBatch(ops); err != nil {
		return nil, err
	}
	req := &apipb.BatchRequest{Ops: make([]*apipb.Op, len(ops))}
	keys := make([]string, len(ops))
	for i, op := range ops {
		keys[i] = op.Key
		req.Ops[i] = &apipb.Op{
			Kind: apipb.Op_Kind(op.Kind), Key: op.Key, Value: op.Value,
			TtlMs: kv.TTLMillis(op.TTL), Condition: condToPB(op.Cond),
		}
	}
	defer c.writing(false, keys...)()
	r, err := c.rpc.Batch(ctx, req)
	if err != nil {
		return nil, c.wireErr(err)
	}
	if len(r.Results) != len(ops) {
		return nil, fmt.Errorf("%w: batch answered %d results for %d ops", ErrInternal, len(r.Results), len(ops))
	}
	out := make([]kv.OpResult, len(ops))
	for i, res := range r.Results {
		out[i] = kv.OpResult{Version: res.Version, ExpiresAt: kv.FromUnixMillis(res.ExpiresAtMs), Deleted: res.Deleted, Revision: res.Revision}
	}
	return out, nil
}

// Stats reports the caller's key count and the backend's totals.
func (c *Client) Stats(ctx context.Context) (Stats, error) {
	if err := c.check(); err != nil {
		return Stats{}, err
	}
	r, err := c.rpc.Stats(ctx, &apipb.StatsRequest{})
	if err != nil {
		return Stats{}, c.wireErr(err)
	}
	return Stats{
		Keys: r.Keys, BackendKeys: r.BackendKeys, BackendBytes: r.BackendBytes,
		Backend: r.Backend, BackendVersion: r.BackendVersion,
		Revision: r.Revision, OldestRevision: r.OldestRevision, BackendTotals: r.BackendTotals,
	}, nil
}

func entryFromPB(e *apipb.Entry) kv.Entry {
	if e == nil {
		return kv.Entry{}
	}
	return kv.Entry{Key: e.Key, Value: e.Value, Version: e.Version, ExpiresAt: kv.FromUnixMillis(e.ExpiresAtMs)}
}

func condToPB(c kv.Condition) *apipb.Condition {
	if c.Kind == kv.CondNone {
		return nil
	}
	return &apipb.Condition{Kind: apipb.Condition_Kind(c.Kind), Version: c.Version}
}
