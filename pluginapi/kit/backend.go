package kit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi"
)

// DefaultHistory is how many of the most recent revisions a Backend keeps
// for watches that start at a revision, as the memory and SQLite backends
// do: at a thousand writes a second, a watcher may be away for over a
// minute and a half and still resume.
const DefaultHistory = 100_000

// DefaultCleanupBatch is how many expired keys one CleanupExpired call
// removes when its limit is 0, and pruneBatch how many history rows one
// pruning transaction deletes: both keep a write transaction short.
const (
	DefaultCleanupBatch = 1000
	pruneBatch          = 10_000
)

// Backend is the whole v2 contract (kv.Backend, kv.Watcher, kv.Expirer)
// over a Store. It is safe for concurrent use.
type Backend struct {
	store         Store
	name, version string
	keep          int64
	hub           *pluginapi.WatchHub
	now           func() time.Time

	// wmu holds one write at a time, from its transaction to its publish,
	// so events reach the hub in revision order and rev stays exact.
	wmu    sync.Mutex
	rev    int64 // the last committed revision, under wmu
	closed atomic.Bool
}

var (
	_ kv.Backend        = (*Backend)(nil)
	_ kv.Watcher        = (*Backend)(nil)
	_ kv.Expirer        = (*Backend)(nil)
	_ pluginapi.History = (*Backend)(nil)
)

// Option configures a Backend.
type Option func(*Backend)

// WithHistory sets how many of the most recent revisions are kept for
// watches that start at a revision (at least 1; DefaultHistory unless set).
func WithHistory(revisions int) Option {
	return func(b *Backend) { b.keep = int64(max(revisions, 1)) }
}

// WithWatchBuffer sets how many events a watcher may fall behind.
func WithWatchBuffer(events int) Option {
	return func(b *Backend) { b.hub = pluginapi.NewWatchHub(events) }
}

// WithClock replaces the clock, for tests of expiry.
func WithClock(now func() time.Time) Option { return func(b *Backend) { b.now = now } }

// Settings turns the settings the kit understands into options — history
// (revisions kept) and watch_buffer (events a watcher may fall behind),
// positive integers — and refuses a setting that neither the kit nor the
// backend knows; own names the backend's settings, which it reads itself.
// name prefixes the errors.
func Settings(name string, settings map[string]string, own ...string) ([]Option, error) {
	var opts []Option
	for k, v := range settings {
		var opt func(int) Option
		switch k {
		case "history":
			opt = WithHistory
		case "watch_buffer":
			opt = WithWatchBuffer
		default:
			if slices.Contains(own, k) {
				continue
			}
			known := append([]string{"history", "watch_buffer"}, own...)
			slices.Sort(known)
			return nil, fmt.Errorf("%s: %w: unknown setting %q (known: %v)", name, kv.ErrInvalidArgument, k, known)
		}
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%s: setting %s=%q: %w: want a positive integer", name, k, v, kv.ErrInvalidArgument)
		}
		opts = append(opts, opt(n))
	}
	return opts, nil
}

// New returns the backend over store, named name at version version in
// Info and Stats. It takes store over: Close closes it, and so does New
// when it fails. The store must be written only through this Backend,
// which is what lets it announce every change (Capabilities.Exclusive).
func New(ctx context.Context, store Store, name, version string, opts ...Option) (*Backend, error) {
	b := &Backend{store: store, name: name, version: version, keep: DefaultHistory, hub: pluginapi.NewWatchHub(0), now: time.Now}
	for _, o := range opts {
		o(b)
	}
	err := store.Update(ctx, func(tx Tx) error {
		format, err := tx.Get(formatKey)
		switch {
		case err != nil:
			return err
		case format == nil:
			return tx.Put(formatKey, []byte(layoutVersion))
		case string(format) != layoutVersion:
			return fmt.Errorf("%w: the store's layout is version %q; this kit reads version %s", kv.ErrInvalidArgument, format, layoutVersion)
		}
		b.rev, err = readInt(tx, revKey)
		return err
	})
	if err != nil {
		_ = store.Close()
		return nil, fmt.Errorf("%s: open: %w", name, err)
	}
	b.hub.SetRevision(b.rev)
	return b, nil
}

// Info implements kv.Backend.
func (b *Backend) Info(context.Context) (kv.Info, error) {
	return kv.Info{
		Name: b.name, Version: b.version, ProtocolVersion: pluginapi.ProtocolVersion,
		Capabilities: kv.Capabilities{Watch: true, WatchHistory: true, CleanupExpired: true, Exclusive: true},
	}, nil
}

// Watch implements kv.Watcher: live events from the hub, history from the
// store.
func (b *Backend) Watch(ctx context.Context, req kv.WatchRequest) (kv.WatchStream, error) {
	if b.closed.Load() {
		return nil, b.errorf("watch", "", kv.ErrClosed)
	}
	return b.hub.Subscribe(ctx, req, b)
}

// Close ends every watch, refuses further calls and closes the store.
func (b *Backend) Close() error {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	if b.closed.Swap(true) {
		return nil
	}
	b.hub.Close()
	if err := b.store.Close(); err != nil {
		return b.errorf("close", "", err)
	}
	return nil
}

// errorf names the backend, the operation and the key (when there is one)
// in err, and reports any failure after Close as kv.ErrClosed.
func (b *Backend) errorf(op, key string, err error) error {
	if b.closed.Load() && !errors.Is(err, kv.ErrClosed) {
		err = fmt.Errorf("%w (%w)", kv.ErrClosed, err)
	}
	if key == "" {
		return fmt.Errorf("%s: %s: %w", b.name, op, err)
	}
	return fmt.Errorf("%s: %s %q: %w", b.name, op, key, err)
}

// reader is one read transaction: the snapshot's revision and the time.
type reader struct {
	tx    Tx
	rev   int64
	nowMs int64
}

// view runs fn in a read transaction.
func (b *Backend) view(ctx context.Context, op, key string, fn func(r *reader) error) error {
	if b.closed.Load() {
		return b.errorf(op, key, kv.ErrClosed)
	}
	err := b.store.View(ctx, func(tx Tx) error {
		rev, err := readInt(tx, revKey)
		if err != nil {
			return err
		}
		return fn(&reader{tx: tx, rev: rev, nowMs: b.now().UnixMilli()})
	})
	if err != nil {
		return b.errorf(op, key, err)
	}
	return nil
}

// lookup returns key's live entry; ok false when it is missing or expired.
func (r *reader) lookup(key string) (e entry, ok bool, err error) {
	k := dataKey(key)
	raw, err := r.tx.Get(k)
	if err != nil || raw == nil {
		return entry{}, false, err
	}
	if e, err = decodeEntry(k, raw); err != nil {
		return entry{}, false, err
	}
	return e, e.live(r.nowMs), nil
}

// update runs fn in a write transaction and, when it commits, stores the
// revision it reached and publishes its events.
func (b *Backend) update(ctx context.Context, op, key string, fn func(t *txn) error) error {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	if b.closed.Load() {
		return b.errorf(op, key, kv.ErrClosed)
	}
	var t *txn
	err := b.store.Update(ctx, func(tx Tx) error {
		now := b.now()
		t = &txn{reader: reader{tx: tx, rev: b.rev, nowMs: now.UnixMilli()}, now: now}
		if err := fn(t); err != nil {
			return err
		}
		if len(t.events) == 0 {
			return nil
		}
		return tx.Put(revKey, be64(t.rev))
	})
	if err != nil {
		return b.errorf(op, key, err)
	}
	if len(t.events) > 0 {
		b.rev = t.rev
		b.hub.Publish(t.events...)
	}
	return nil
}
