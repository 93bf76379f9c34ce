package host

import (
	"context"
	"fmt"

	"github.com/kvhost/kvhost/kv"
)

// backend is what every layer of the store is and wraps: the contract with
// its optional parts. The store is a stack of small layers over one
// backend, each with one job (vault's physical View and Cache, go-kit's
// middlewares):
//
//	metered   metrics and slow-operation logs, refused calls included
//	limited   the operator's key, value and batch limits
//	guarded   the checkpoint where policies vet every operation
//	tenantView  one tenant's keys, prefixed in and stripped out
//	supervised  the backend plugin process, restarted when it dies
//
// New builds the stack over any backend (an in-process one in tests); Open
// starts a plugin and builds it over the supervised plugin.
type backend interface {
	kv.Backend
	kv.Watcher
	kv.Expirer
}

// complete makes a kv.Backend a backend: optional parts it lacks are
// refused with kv.ErrNotSupported.
func complete(b kv.Backend) backend {
	if full, ok := b.(backend); ok {
		return full
	}
	return partial{b}
}

type partial struct{ kv.Backend }

func (p partial) Watch(ctx context.Context, req kv.WatchRequest) (kv.WatchStream, error) {
	if w, ok := p.Backend.(kv.Watcher); ok {
		return w.Watch(ctx, req)
	}
	return nil, fmt.Errorf("%w: this backend cannot watch", kv.ErrNotSupported)
}

func (p partial) CleanupExpired(ctx context.Context, limit int) (int64, error) {
	if x, ok := p.Backend.(kv.Expirer); ok {
		return x.CleanupExpired(ctx, limit)
	}
	return 0, fmt.Errorf("%w: cleanup-expired", kv.ErrNotSupported)
}
