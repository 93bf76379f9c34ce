package conformance_test

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi"
	"github.com/kvhost/kvhost/plugins/memory"
)

// broken is the memory backend with some of its methods replaced by a
// tooth: each hook that is set breaks one rule of the contract.
type broken struct {
	s *memory.Store
	hooks
	mu       sync.Mutex
	streams  map[*tapped]struct{}
	expiring map[string]time.Time // keys put with a TTL, for teeth that remember them
}

type hooks struct {
	info         func(context.Context) (kv.Info, error)
	get          func(context.Context, string) (kv.GetResult, error)
	getMany      func(context.Context, []string) (kv.GetManyResult, error)
	put          func(context.Context, kv.PutRequest) (kv.Entry, error)
	delete       func(context.Context, string, kv.Condition) (kv.DeleteResult, error)
	list         func(context.Context, kv.ListRequest) (kv.ListResult, error)
	listPacked   func(context.Context, kv.ListRequest, *pluginapi.PackedPage) (kv.ListResult, error)
	count        func(context.Context, string) (kv.CountResult, error)
	deletePrefix func(context.Context, string) (kv.DeletePrefixResult, error)
	increment    func(context.Context, string, int64) (kv.Counter, error)
	refresh      func(context.Context, kv.RefreshRequest) (kv.RefreshResult, error)
	batch        func(context.Context, []kv.Op) (kv.BatchResult, error)
	stats        func(context.Context) (kv.Stats, error)
	watch        func(context.Context, kv.WatchRequest) (kv.WatchStream, error)
	cleanup      func(context.Context, int) (int64, error)
	// event rewrites each event a watch delivers into none, one or more.
	event func(*tapped, kv.Event) []kv.Event
	// recvErr rewrites the error that ends a watch.
	recvErr func(*tapped, error) (kv.Event, error)
}

func newBroken(retention int, tooth func(*broken)) *broken {
	b := &broken{s: memory.New(memory.WithHistory(retention)), streams: map[*tapped]struct{}{}, expiring: map[string]time.Time{}}
	tooth(b)
	return b
}

var (
	_ kv.Backend = (*broken)(nil)
	_ kv.Watcher = (*broken)(nil)
	_ kv.Expirer = (*broken)(nil)

	_ pluginapi.PackedLister = (*broken)(nil)
)

func or[F any](hook, fallback F, isSet bool) F {
	if isSet {
		return hook
	}
	return fallback
}

func (b *broken) Info(ctx context.Context) (kv.Info, error) {
	return or(b.info, b.s.Info, b.info != nil)(ctx)
}

func (b *broken) Get(ctx context.Context, key string) (kv.GetResult, error) {
	return or(b.get, b.s.Get, b.get != nil)(ctx, key)
}

func (b *broken) GetMany(ctx context.Context, keys []string) (kv.GetManyResult, error) {
	return or(b.getMany, b.s.GetMany, b.getMany != nil)(ctx, keys)
}

func (b *broken) Put(ctx context.Context, req kv.PutRequest) (kv.Entry, error) {
	return or(b.put, b.s.Put, b.put != nil)(ctx, req)
}

func (b *broken) Delete(ctx context.Context, key string, cond kv.Condition) (kv.DeleteResult, error) {
	return or(b.delete, b.s.Delete, b.delete != nil)(ctx, key, cond)
}

func (b *broken) List(ctx context.Context, req kv.ListRequest) (kv.ListResult, error) {
	return or(b.list, b.s.List, b.list != nil)(ctx, req)
}

// ListPacked writes List's page, as a backend whose two forms agree, unless
// a tooth replaces it.
func (b *broken) ListPacked(ctx context.Context, req kv.ListRequest, page *pluginapi.PackedPage) (kv.ListResult, error) {
	if b.listPacked != nil {
		return b.listPacked(ctx, req, page)
	}
	res, err := b.List(ctx, req)
	for _, e := range res.Entries {
		page.AppendString(e.Key, e.Value, e.Version, kv.UnixMillis(e.ExpiresAt))
	}
	res.Entries = nil
	return res, err
}

func (b *broken) Count(ctx context.Context, prefix string) (kv.CountResult, error) {
	return or(b.count, b.s.Count, b.count != nil)(ctx, prefix)
}

func (b *broken) DeletePrefix(ctx context.Context, prefix string) (kv.DeletePrefixResult, error) {
	return or(b.deletePrefix, b.s.DeletePrefix, b.deletePrefix != nil)(ctx, prefix)
}

func (b *broken) Increment(ctx context.Context, key string, delta int64) (kv.Counter, error) {
	return or(b.increment, b.s.Increment, b.increment != nil)(ctx, key, delta)
}

func (b *broken) RefreshTTL(ctx context.Context, req kv.RefreshRequest) (kv.RefreshResult, error) {
	return or(b.refresh, b.s.RefreshTTL, b.refresh != nil)(ctx, req)
}

func (b *broken) Batch(ctx context.Context, ops []kv.Op) (kv.BatchResult, error) {
	return or(b.batch, b.s.Batch, b.batch != nil)(ctx, ops)
}

func (b *broken) Stats(ctx context.Context) (kv.Stats, error) {
	return or(b.stats, b.s.Stats, b.stats != nil)(ctx)
}

func (b *broken) CleanupExpired(ctx context.Context, limit int) (int64, error) {
	return or(b.cleanup, b.s.CleanupExpired, b.cleanup != nil)(ctx, limit)
}

func (b *broken) Close() error { return b.s.Close() }

// Watch taps every stream, so that teeth can rewrite or inject events.
func (b *broken) Watch(ctx context.Context, req kv.WatchRequest) (kv.WatchStream, error) {
	ws, err := or(b.watch, b.s.Watch, b.watch != nil)(ctx, req)
	if err != nil {
		return nil, err
	}
	t := &tapped{b: b, ws: ws, ctx: ctx, req: req}
	b.mu.Lock()
	b.streams[t] = struct{}{}
	b.mu.Unlock()
	return t, nil
}

// burnKey is where teeth that waste revisions write; its events are never
// delivered, so only the revision counter shows them.
const burnKey = "~burn"

// burn wastes two revisions.
func (b *broken) burn(ctx context.Context) {
	if _, err := b.s.Put(ctx, kv.PutRequest{Key: burnKey}); err == nil {
		_, _ = b.s.Delete(ctx, burnKey, kv.Condition{})
	}
}

// inject queues events on every open stream whose prefix they match.
func (b *broken) inject(evs ...kv.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for t := range b.streams {
		for _, ev := range evs {
			if strings.HasPrefix(ev.Key, t.req.Prefix) {
				t.push(ev)
			}
		}
	}
}

func (b *broken) head(ctx context.Context) int64 {
	st, _ := b.s.Stats(ctx)
	return st.Revision
}

// tapped is a watch stream with a queue in front of it.
type tapped struct {
	b   *broken
	ws  kv.WatchStream
	ctx context.Context
	req kv.WatchRequest
	mu  sync.Mutex
	q   []kv.Event
	// seen counts the events of the stream underneath, for teeth that count.
	seen int
}

func (t *tapped) push(ev kv.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.q = append(t.q, ev)
}

func (t *tapped) pop() (kv.Event, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.q) == 0 {
		return kv.Event{}, false
	}
	ev := t.q[0]
	t.q = t.q[1:]
	return ev, true
}

func (t *tapped) Recv() (kv.Event, error) {
	for {
		if ev, ok := t.pop(); ok {
			return ev, nil
		}
		ev, err := t.under().Recv()
		if err != nil {
			if t.b.recvErr != nil {
				return t.b.recvErr(t, err)
			}
			return ev, err
		}
		if ev.Key == burnKey {
			continue
		}
		t.seen++
		if t.b.event == nil {
			return ev, nil
		}
		for _, e := range t.b.event(t, ev) {
			t.push(e)
		}
	}
}

func (t *tapped) Close() error {
	t.b.mu.Lock()
	delete(t.b.streams, t)
	t.b.mu.Unlock()
	return t.under().Close()
}

func (t *tapped) under() kv.WatchStream {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ws
}

// replace puts another stream underneath.
func (t *tapped) replace(ws kv.WatchStream) {
	t.mu.Lock()
	old := t.ws
	t.ws = ws
	t.mu.Unlock()
	_ = old.Close()
}
