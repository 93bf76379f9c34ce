package host

import (
	"context"
	"errors"
	"strings"

	"github.com/kvhost/kvhost/kv"
)

// tenantView scopes every operation to the caller's tenant: keys go down
// as "t/<tenant>/<key>" and come back without the prefix, in results,
// events and error messages alike (vault's physical View). A tenant name
// cannot contain '/', so the mapping is injective and keeps prefixes:
// tenants never meet.
type tenantView struct {
	next backend
	ids  identities
}

var _ backend = (*tenantView)(nil)

// prefix returns the caller's tenant prefix.
func (v *tenantView) prefix(ctx context.Context) (string, error) {
	id, err := v.ids.of(ctx)
	if err != nil {
		return "", err
	}
	return tenantPrefix(id.Tenant), nil
}

// scoped runs fn with the caller's tenant prefix and hides the prefix in
// its error.
func scoped[T any](v *tenantView, ctx context.Context, fn func(tp string) (T, error)) (T, error) {
	tp, err := v.prefix(ctx)
	if err != nil {
		var zero T
		return zero, err
	}
	res, err := fn(tp)
	return res, unscopeErr(tp, err)
}

func (v *tenantView) Info(ctx context.Context) (kv.Info, error) { return v.next.Info(ctx) }

func (v *tenantView) Get(ctx context.Context, key string) (kv.GetResult, error) {
	return scoped(v, ctx, func(tp string) (kv.GetResult, error) {
		res, err := v.next.Get(ctx, tp+key)
		res.Entry = unscope(tp, res.Entry)
		return res, err
	})
}

func (v *tenantView) GetMany(ctx context.Context, keys []string) (kv.GetManyResult, error) {
	return scoped(v, ctx, func(tp string) (kv.GetManyResult, error) {
		full := make([]string, len(keys))
		for i, k := range keys {
			full[i] = tp + k
		}
		res, err := v.next.GetMany(ctx, full)
		for _, e := range res.Entries {
			if e != nil {
				*e = unscope(tp, *e)
			}
		}
		return res, err
	})
}

func (v *tenantView) Put(ctx context.Context, req kv.PutRequest) (kv.Entry, error) {
	return scoped(v, ctx, func(tp string) (kv.Entry, error) {
		req.Key = tp + req.Key
		e, err := v.next.Put(ctx, req)
		return unscope(tp, e), err
	})
}

func (v *tenantView) Delete(ctx context.Context, key string, cond kv.Condition) (kv.DeleteResult, error) {
	return scoped(v, ctx, func(tp string) (kv.DeleteResult, error) { return v.next.Delete(ctx, tp+key, cond) })
}

func (v *tenantView) List(ctx context.Context, req kv.ListRequest) (kv.ListResult, error) {
	return scoped(v, ctx, func(tp string) (kv.ListResult, error) {
		req.Prefix = tp + req.Prefix
		if req.StartAfter != "" {
			req.StartAfter = tp + req.StartAfter
		}
		res, err := v.next.List(ctx, req)
		for i := range res.Entries {
			res.Entries[i] = unscope(tp, res.Entries[i])
		}
		return res, err
	})
}

func (v *tenantView) Count(ctx context.Context, prefix string) (kv.CountResult, error) {
	return scoped(v, ctx, func(tp string) (kv.CountResult, error) { return v.next.Count(ctx, tp+prefix) })
}

func (v *tenantView) DeletePrefix(ctx context.Context, prefix string) (kv.DeletePrefixResult, error) {
	return scoped(v, ctx, func(tp string) (kv.DeletePrefixResult, error) { return v.next.DeletePrefix(ctx, tp+prefix) })
}

func (v *tenantView) Increment(ctx context.Context, key string, delta int64) (kv.Counter, error) {
	return scoped(v, ctx, func(tp string) (kv.Counter, error) { return v.next.Increment(ctx, tp+key, delta) })
}

func (v *tenantView) RefreshTTL(ctx context.Context, req kv.RefreshRequest) (kv.RefreshResult, error) {
	return scoped(v, ctx, func(tp string) (kv.RefreshResult, error) {
		req.Key = tp + req.Key
		res, err := v.next.RefreshTTL(ctx, req)
		res.Entry = unscope(tp, res.Entry)
		return res, err
	})
}

func (v *tenantView) Batch(ctx context.Context, ops []kv.Op) (kv.BatchResult, error) {
	return scoped(v, ctx, func(tp string) (kv.BatchResult, error) {
		full := make([]kv.Op, len(ops))
		for i, o := range ops {
			o.Key = tp + o.Key
			full[i] = o
		}
		return v.next.Batch(ctx, full)
	})
}

// Stats gives the tenant its own key count; Bytes is not kept per tenant
// and is left 0. The backend's totals are the store's to give (Store.Stats).
func (v *tenantView) Stats(ctx context.Context) (kv.Stats, error) {
	return scoped(v, ctx, func(tp string) (kv.Stats, error) {
		n, err := v.next.Count(ctx, tp)
		if err != nil {
			return kv.Stats{}, err
		}
		info, err := v.next.Info(ctx)
		return kv.Stats{Keys: n.Count, Backend: info.Name, Version: info.Version, Revision: n.Revision}, err
	})
}

func (v *tenantView) Watch(ctx context.Context, req kv.WatchRequest) (kv.WatchStream, error) {
	return scoped(v, ctx, func(tp string) (kv.WatchStream, error) {
		req.Prefix = tp + req.Prefix
		ws, err := v.next.Watch(ctx, req)
		if err != nil {
			return nil, err
		}
		return &tenantStream{WatchStream: ws, prefix: tp}, nil
	})
}

// CleanupExpired is the host's housekeeping across all tenants.
func (v *tenantView) CleanupExpired(ctx context.Context, limit int) (int64, error) {
	return v.next.CleanupExpired(ctx, limit)
}

// CompareAndSwap and Exists run on the backend below, in the tenant's
// keys: this is where the host builds them (cas.go).
func (v *tenantView) CompareAndSwap(ctx context.Context, req SwapRequest) (SwapResult, error) {
	return scoped(v, ctx, func(tp string) (SwapResult, error) {
		req.Key = tp + req.Key
		res, err := compareAndSwap(ctx, v.next, req)
		res.Entry = unscope(tp, res.Entry)
		return res, err
	})
}

func (v *tenantView) Exists(ctx context.Context, key string) (ExistsResult, error) {
	return scoped(v, ctx, func(tp string) (ExistsResult, error) {
		res, err := exists(ctx, v.next, tp+key)
		res.Entry = unscope(tp, res.Entry)
		return res, err
	})
}

func (v *tenantView) Close() error { return nil }

func unscope(tp string, e kv.Entry) kv.Entry {
	e.Key = strings.TrimPrefix(e.Key, tp)
	return e
}

// unscopeErr hides the tenant prefix in an error: a conflict names the
// caller's key, and a message that names the stored key names the caller's
// key instead, keeping the error's identity.
func unscopeErr(tp string, err error) error {
	if err == nil {
		return nil
	}
	var ce *kv.ConflictError
	if errors.As(err, &ce) {
		c := *ce
		c.Key = strings.TrimPrefix(c.Key, tp)
		return &c
	}
	if !strings.Contains(err.Error(), tp) {
		return err
	}
	return &renamed{err: err, msg: strings.ReplaceAll(err.Error(), tp, "")}
}

type renamed struct {
	err error
	msg string
}

func (r *renamed) Error() string { return r.msg }
func (r *renamed) Unwrap() error { return r.err }

// tenantStream strips the tenant prefix from the keys of events.
type tenantStream struct {
	kv.WatchStream
	prefix string
}

func (t *tenantStream) Recv() (kv.Event, error) {
	ev, err := t.WatchStream.Recv()
	if err != nil {
		return ev, unscopeErr(t.prefix, err)
	}
	ev.Key = strings.TrimPrefix(ev.Key, t.prefix)
	return ev, nil
}

// RecvMore hands over events already waiting, when the stream below can,
// so the server batches them into one message.
func (t *tenantStream) RecvMore(buf []kv.Event, max int) []kv.Event {
	br, ok := t.WatchStream.(kv.BatchReceiver)
	if !ok {
		return buf
	}
	n := len(buf)
	buf = br.RecvMore(buf, max)
	for i := n; i < len(buf); i++ {
		buf[i].Key = strings.TrimPrefix(buf[i].Key, t.prefix)
	}
	return buf
}
