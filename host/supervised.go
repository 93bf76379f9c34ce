package host

import (
	"context"
	"fmt"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi"
)

// The supervisor is the bottom layer of the store: every call goes to the
// plugin process serving now, and a call that finds it dead tells the
// supervisor, which restarts it.

var _ backend = (*supervisor)(nil)

// use runs fn on the live plugin and reports a failure to the supervisor.
func use[T any](s *supervisor, fn func(*pluginapi.Plugin) (T, error)) (T, error) {
	p, gen, err := s.backend()
	if err != nil {
		var zero T
		return zero, err
	}
	res, err := fn(p)
	if err != nil {
		s.report(gen, err)
	}
	return res, err
}

func (s *supervisor) Info(context.Context) (kv.Info, error) { return s.currentInfo(), nil }

func (s *supervisor) Get(ctx context.Context, key string) (kv.GetResult, error) {
	return use(s, func(p *pluginapi.Plugin) (kv.GetResult, error) { return p.Get(ctx, key) })
}

func (s *supervisor) GetMany(ctx context.Context, keys []string) (kv.GetManyResult, error) {
	return use(s, func(p *pluginapi.Plugin) (kv.GetManyResult, error) { return p.GetMany(ctx, keys) })
}

func (s *supervisor) Put(ctx context.Context, req kv.PutRequest) (kv.Entry, error) {
	return use(s, func(p *pluginapi.Plugin) (kv.Entry, error) { return p.Put(ctx, req) })
}

func (s *supervisor) Delete(ctx context.Context, key string, cond kv.Condition) (kv.DeleteResult, error) {
	return use(s, func(p *pluginapi.Plugin) (kv.DeleteResult, error) { return p.Delete(ctx, key, cond) })
}

func (s *supervisor) List(ctx context.Context, req kv.ListRequest) (kv.ListResult, error) {
	return use(s, func(p *pluginapi.Plugin) (kv.ListResult, error) { return p.List(ctx, req) })
}

func (s *supervisor) Count(ctx context.Context, prefix string) (kv.CountResult, error) {
	return use(s, func(p *pluginapi.Plugin) (kv.CountResult, error) { return p.Count(ctx, prefix) })
}

func (s *supervisor) DeletePrefix(ctx context.Context, prefix string) (kv.DeletePrefixResult, error) {
	return use(s, func(p *pluginapi.Plugin) (kv.DeletePrefixResult, error) { return p.DeletePrefix(ctx, prefix) })
}

func (s *supervisor) Increment(ctx context.Context, key string, delta int64) (kv.Counter, error) {
	return use(s, func(p *pluginapi.Plugin) (kv.Counter, error) { return p.Increment(ctx, key, delta) })
}

func (s *supervisor) RefreshTTL(ctx context.Context, req kv.RefreshRequest) (kv.RefreshResult, error) {
	return use(s, func(p *pluginapi.Plugin) (kv.RefreshResult, error) { return p.RefreshTTL(ctx, req) })
}

func (s *supervisor) Batch(ctx context.Context, ops []kv.Op) (kv.BatchResult, error) {
	return use(s, func(p *pluginapi.Plugin) (kv.BatchResult, error) { return p.Batch(ctx, ops) })
}

func (s *supervisor) Stats(ctx context.Context) (kv.Stats, error) {
	return use(s, func(p *pluginapi.Plugin) (kv.Stats, error) { return p.Stats(ctx) })
}

// Watch refuses, by the backend's capabilities, what it cannot do before
// asking it.
func (s *supervisor) Watch(ctx context.Context, req kv.WatchRequest) (kv.WatchStream, error) {
	info := s.currentInfo()
	if !info.Capabilities.Watch {
		return nil, fmt.Errorf("%w: the %s backend cannot watch", kv.ErrNotSupported, info.Name)
	}
	if req.StartRevision > 0 && !info.Capabilities.WatchHistory {
		return nil, fmt.Errorf("%w: the %s backend keeps no history to watch from revision %d", kv.ErrNotSupported, info.Name, req.StartRevision)
	}
	return use(s, func(p *pluginapi.Plugin) (kv.WatchStream, error) { return p.Watch(ctx, req) })
}

func (s *supervisor) CleanupExpired(ctx context.Context, limit int) (int64, error) {
	if !s.currentInfo().Capabilities.CleanupExpired {
		return 0, fmt.Errorf("%w: cleanup-expired", kv.ErrNotSupported)
	}
	return use(s, func(p *pluginapi.Plugin) (int64, error) { return p.CleanupExpired(ctx, limit) })
}

// Close is the store's to call (it ends the plugin); a layer above never
// closes what it wraps.
func (s *supervisor) Close() error {
	s.close()
	return nil
}
