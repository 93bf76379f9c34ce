package host

import (
	"context"
	"fmt"
	"time"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/kv/op"
)

// Check is one operation as a Guard sees it (Op is one of package kv/op's
// policy operations: a batch is checked op by op, a get-many key by key).
// Key is the tenant-relative key or prefix. A guard may change TTL (for
// op.Put and op.RefreshTTL).
type Check struct {
	Op       op.Op
	Key      string
	Value    []byte
	TTL      time.Duration
	Identity Identity
	// InBatch is set for the ops of a batch.
	InBatch bool
}

// Guard is the checkpoint every operation passes before it reaches the
// backend: the policy engine sits here. An error refuses the operation and
// reaches the caller as it is (wrap kv.ErrPermissionDenied).
type Guard interface {
	Check(ctx context.Context, c *Check) error
}

// ChangingGuard is a Guard whose rules change while the host runs (the
// policy engine reloads). Changed returns a channel closed at the next
// change: clients' near caches then forget everything they read, since
// the new rules might not allow them to read it.
type ChangingGuard interface {
	Guard
	Changed() <-chan struct{}
}

// guarded puts a Guard in front of every operation, for the identity the
// call acts for.
type guarded struct {
	next  backend
	guard Guard
	ids   identities
}

var _ backend = (*guarded)(nil)

// check vets one operation; it returns the check as the guard left it.
func (g *guarded) check(ctx context.Context, c Check) (Check, error) {
	id, err := g.ids.of(ctx)
	if err != nil {
		return c, err
	}
	c.Identity = id
	return c, g.guard.Check(ctx, &c)
}

func (g *guarded) Info(ctx context.Context) (kv.Info, error) { return g.next.Info(ctx) }

func (g *guarded) Get(ctx context.Context, key string) (kv.GetResult, error) {
	if _, err := g.check(ctx, Check{Op: op.Get, Key: key}); err != nil {
		return kv.GetResult{}, err
	}
	return g.next.Get(ctx, key)
}

func (g *guarded) GetMany(ctx context.Context, keys []string) (kv.GetManyResult, error) {
	for _, k := range keys {
		if _, err := g.check(ctx, Check{Op: op.Get, Key: k}); err != nil {
			return kv.GetManyResult{}, err
		}
	}
	return g.next.GetMany(ctx, keys)
}

func (g *guarded) Put(ctx context.Context, req kv.PutRequest) (kv.Entry, error) {
	c, err := g.check(ctx, Check{Op: op.Put, Key: req.Key, Value: req.Value, TTL: req.TTL})
	if err != nil {
		return kv.Entry{}, err
	}
	req.TTL = c.TTL
	return g.next.Put(ctx, req)
}

func (g *guarded) Delete(ctx context.Context, key string, cond kv.Condition) (kv.DeleteResult, error) {
	if _, err := g.check(ctx, Check{Op: op.Delete, Key: key}); err != nil {
		return kv.DeleteResult{}, err
	}
	return g.next.Delete(ctx, key, cond)
}

func (g *guarded) List(ctx context.Context, req kv.ListRequest) (kv.ListResult, error) {
	if _, err := g.check(ctx, Check{Op: op.List, Key: req.Prefix}); err != nil {
		return kv.ListResult{}, err
	}
	return g.next.List(ctx, req)
}

func (g *guarded) Count(ctx context.Context, prefix string) (kv.CountResult, error) {
	if _, err := g.check(ctx, Check{Op: op.Count, Key: prefix}); err != nil {
		return kv.CountResult{}, err
	}
	return g.next.Count(ctx, prefix)
}

func (g *guarded) DeletePrefix(ctx context.Context, prefix string) (kv.DeletePrefixResult, error) {
	if _, err := g.check(ctx, Check{Op: op.DeletePrefix, Key: prefix}); err != nil {
		return kv.DeletePrefixResult{}, err
	}
	return g.next.DeletePrefix(ctx, prefix)
}

func (g *guarded) Increment(ctx context.Context, key string, delta int64) (kv.Counter, error) {
	if _, err := g.check(ctx, Check{Op: op.Increment, Key: key}); err != nil {
		return kv.Counter{}, err
	}
	return g.next.Increment(ctx, key, delta)
}

func (g *guarded) RefreshTTL(ctx context.Context, req kv.RefreshRequest) (kv.RefreshResult, error) {
	c, err := g.check(ctx, Check{Op: op.RefreshTTL, Key: req.Key, TTL: req.TTL})
	if err != nil {
		return kv.RefreshResult{}, err
	}
	req.TTL = c.TTL
	return g.next.RefreshTTL(ctx, req)
}

// Batch vets each op on its own, as a put or a delete, and applies the TTL
// the guard decided for each put.
func (g *guarded) Batch(ctx context.Context, ops []kv.Op) (kv.BatchResult, error) {
	vetted := make([]kv.Op, len(ops))
	for i, o := range ops {
		c := Check{Op: op.Delete, Key: o.Key, InBatch: true}
		if o.Kind == kv.OpPut {
			c = Check{Op: op.Put, Key: o.Key, Value: o.Value, TTL: o.TTL, InBatch: true}
		}
		c, err := g.check(ctx, c)
		if err != nil {
			return kv.BatchResult{}, fmt.Errorf("batch op %d: %w", i, err)
		}
		o.TTL = c.TTL
		vetted[i] = o
	}
	return g.next.Batch(ctx, vetted)
}

func (g *guarded) Stats(ctx context.Context) (kv.Stats, error) {
	if _, err := g.check(ctx, Check{Op: op.Stats}); err != nil {
		return kv.Stats{}, err
	}
	return g.next.Stats(ctx)
}

func (g *guarded) Watch(ctx context.Context, req kv.WatchRequest) (kv.WatchStream, error) {
	if _, err := g.check(ctx, Check{Op: op.Watch, Key: req.Prefix}); err != nil {
		return nil, err
	}
	return g.next.Watch(ctx, req)
}

// CleanupExpired is the host's own housekeeping, never a caller's: no
// policy vets it.
func (g *guarded) CleanupExpired(ctx context.Context, limit int) (int64, error) {
	return g.next.CleanupExpired(ctx, limit)
}

// CompareAndSwap is vetted as what it does: it reads the key (a swap that
// does not happen answers with the current value) and it writes it, with
// the new value and TTL, whose TTL the guard may change as for a put. Both
// are checked before anything is read, so a caller without the right to
// write is refused whether or not the swap would have happened.
func (g *guarded) CompareAndSwap(ctx context.Context, req SwapRequest) (SwapResult, error) {
	if _, err := g.check(ctx, Check{Op: op.Get, Key: req.Key}); err != nil {
		return SwapResult{}, err
	}
	c, err := g.check(ctx, Check{Op: op.Put, Key: req.Key, Value: req.Value, TTL: req.TTL})
	if err != nil {
		return SwapResult{}, err
	}
	req.TTL = c.TTL
	return composed(g.next).CompareAndSwap(ctx, req)
}

// Exists is vetted as a get: it tells less than a get does, never more.
func (g *guarded) Exists(ctx context.Context, key string) (ExistsResult, error) {
	if _, err := g.check(ctx, Check{Op: op.Get, Key: key}); err != nil {
		return ExistsResult{}, err
	}
	return composed(g.next).Exists(ctx, key)
}

func (g *guarded) Close() error { return nil }
