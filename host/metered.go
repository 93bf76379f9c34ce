package host

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/kv/op"
)

// metered is the top layer: it times every operation — refused ones too,
// since the layers below refuse them — counts errors by code, logs slow
// ones, and counts open watches.
type metered struct {
	next    backend
	metrics *Metrics
	log     *slog.Logger
	slow    time.Duration
	name    func() string // the backend's name, a metrics label
}

var _ backend = (*metered)(nil)

// measure runs fn as operation o and records it.
func measure[T any](m *metered, o op.Op, fn func() (T, error)) (T, error) {
	start := time.Now()
	res, err := fn()
	d := time.Since(start)
	m.metrics.observe(o.String(), m.name(), d, err, m.slow)
	if m.slow > 0 && d >= m.slow {
		m.log.Warn("slow operation", "op", o.String(), "duration", d, "error", err)
	}
	return res, err
}

func (m *metered) Info(ctx context.Context) (kv.Info, error) { return m.next.Info(ctx) }

func (m *metered) Get(ctx context.Context, key string) (kv.GetResult, error) {
	return measure(m, op.Get, func() (kv.GetResult, error) { return m.next.Get(ctx, key) })
}

func (m *metered) GetMany(ctx context.Context, keys []string) (kv.GetManyResult, error) {
	return measure(m, op.Get, func() (kv.GetManyResult, error) { return m.next.GetMany(ctx, keys) })
}

func (m *metered) Put(ctx context.Context, req kv.PutRequest) (kv.Entry, error) {
	return measure(m, op.Put, func() (kv.Entry, error) { return m.next.Put(ctx, req) })
}

func (m *metered) Delete(ctx context.Context, key string, cond kv.Condition) (kv.DeleteResult, error) {
	return measure(m, op.Delete, func() (kv.DeleteResult, error) { return m.next.Delete(ctx, key, cond) })
}

func (m *metered) List(ctx context.Context, req kv.ListRequest) (kv.ListResult, error) {
	return measure(m, op.List, func() (kv.ListResult, error) { return m.next.List(ctx, req) })
}

func (m *metered) Count(ctx context.Context, prefix string) (kv.CountResult, error) {
	return measure(m, op.Count, func() (kv.CountResult, error) { return m.next.Count(ctx, prefix) })
}

func (m *metered) DeletePrefix(ctx context.Context, prefix string) (kv.DeletePrefixResult, error) {
	return measure(m, op.DeletePrefix, func() (kv.DeletePrefixResult, error) { return m.next.DeletePrefix(ctx, prefix) })
}

func (m *metered) Increment(ctx context.Context, key string, delta int64) (kv.Counter, error) {
	return measure(m, op.Increment, func() (kv.Counter, error) { return m.next.Increment(ctx, key, delta) })
}

func (m *metered) RefreshTTL(ctx context.Context, req kv.RefreshRequest) (kv.RefreshResult, error) {
	return measure(m, op.RefreshTTL, func() (kv.RefreshResult, error) { return m.next.RefreshTTL(ctx, req) })
}

func (m *metered) Batch(ctx context.Context, ops []kv.Op) (kv.BatchResult, error) {
	return measure(m, op.Batch, func() (kv.BatchResult, error) { return m.next.Batch(ctx, ops) })
}

func (m *metered) Stats(ctx context.Context) (kv.Stats, error) {
	return measure(m, op.Stats, func() (kv.Stats, error) { return m.next.Stats(ctx) })
}

func (m *metered) CleanupExpired(ctx context.Context, limit int) (int64, error) {
	return measure(m, op.CleanupExpired, func() (int64, error) { return m.next.CleanupExpired(ctx, limit) })
}

func (m *metered) Watch(ctx context.Context, req kv.WatchRequest) (kv.WatchStream, error) {
	ws, err := measure(m, op.Watch, func() (kv.WatchStream, error) { return m.next.Watch(ctx, req) })
	if err != nil {
		return nil, err
	}
	m.metrics.watch(1)
	return &countedStream{WatchStream: ws, done: func() { m.metrics.watch(-1) }}, nil
}

// CompareAndSwap and Exists are timed under their own names: a swap's
// reads and writes below are one operation to whoever watches the
// metrics.
func (m *metered) CompareAndSwap(ctx context.Context, req SwapRequest) (SwapResult, error) {
	return measure(m, op.CompareAndSwap, func() (SwapResult, error) { return composed(m.next).CompareAndSwap(ctx, req) })
}

func (m *metered) Exists(ctx context.Context, key string) (ExistsResult, error) {
	return measure(m, op.Exists, func() (ExistsResult, error) { return composed(m.next).Exists(ctx, key) })
}

func (m *metered) Close() error { return nil }

// countedStream calls done once, when the stream ends or is closed.
type countedStream struct {
	kv.WatchStream
	once sync.Once
	done func()
}

func (c *countedStream) Recv() (kv.Event, error) {
	ev, err := c.WatchStream.Recv()
	if err != nil {
		c.once.Do(c.done)
	}
	return ev, err
}

// RecvMore hands over events already waiting, when the stream below can,
// so the server batches them into one message.
func (c *countedStream) RecvMore(buf []kv.Event, max int) []kv.Event {
	if br, ok := c.WatchStream.(kv.BatchReceiver); ok {
		return br.RecvMore(buf, max)
	}
	return buf
}

func (c *countedStream) Close() error {
	c.once.Do(c.done)
	return c.WatchStream.Close()
}
