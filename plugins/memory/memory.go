// Package memory is kvhost's in-memory backend: an ordered B-tree index
// (prefix scans are range walks), a second index by expiry for cleanup, and
// a watch hub. Nothing survives the process; it is the reference backend
// for the contract and the fastest one for tests and caches.
//
// Settings: watch_buffer (events a watcher may fall behind, default
// pluginapi.DefaultWatchBuffer).
package memory

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/btree"

	"github.com/kvhost/kvhost/pluginapi"
)

// Name and Version identify the backend in Info and Stats.
const (
	Name    = "memory"
	Version = "1.0.0"
)

// Store is the in-memory backend. It is safe for concurrent use.
type Store struct {
	mu      sync.RWMutex
	byKey   *btree.BTreeG[*item]
	byExp   *btree.BTreeG[*item]
	version int64
	hub     *pluginapi.WatchHub
	now     func() time.Time
	closed  bool
}

var (
	_ pluginapi.Backend = (*Store)(nil)
	_ pluginapi.Watcher = (*Store)(nil)
	_ pluginapi.Expirer = (*Store)(nil)
)

type item struct {
	key       string
	value     []byte
	version   int64
	expiresAt time.Time
}

func (it *item) live(now time.Time) bool { return !pluginapi.Expired(it.expiresAt, now) }

func (it *item) entry(withValue bool) pluginapi.Entry {
	e := pluginapi.Entry{Key: it.key, Version: it.version, ExpiresAt: it.expiresAt}
	if withValue {
		e.Value = bytes.Clone(it.value)
		if e.Value == nil {
			e.Value = []byte{}
		}
	}
	return e
}

func lessKey(a, b *item) bool { return a.key < b.key }

func lessExp(a, b *item) bool {
	if !a.expiresAt.Equal(b.expiresAt) {
		return a.expiresAt.Before(b.expiresAt)
	}
	return a.key < b.key
}

// Option configures a Store.
type Option func(*Store)

// WithWatchBuffer sets how many events a watcher may fall behind.
func WithWatchBuffer(n int) Option { return func(s *Store) { s.hub = pluginapi.NewWatchHub(n) } }

// WithClock replaces the clock, for tests of expiry.
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// New returns an empty Store.
func New(opts ...Option) *Store {
	s := &Store{
		byKey: btree.NewG(32, lessKey),
		byExp: btree.NewG(32, lessExp),
		hub:   pluginapi.NewWatchHub(0),
		now:   time.Now,
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Open is the pluginapi.OpenFunc of the memory backend.
func Open(_ context.Context, settings map[string]string) (pluginapi.Backend, error) {
	var opts []Option
	for k, v := range settings {
		switch k {
		case "watch_buffer":
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("memory: setting watch_buffer=%q: %w: want a positive integer", v, pluginapi.ErrInvalidArgument)
			}
			opts = append(opts, WithWatchBuffer(n))
		default:
			return nil, fmt.Errorf("memory: %w: unknown setting %q (known: watch_buffer)", pluginapi.ErrInvalidArgument, k)
		}
	}
	return New(opts...), nil
}

func (s *Store) check() error {
	if s.closed {
		return fmt.Errorf("memory: %w", pluginapi.ErrClosed)
	}
	return nil
}

// lookup returns the live item under key, or nil. Caller holds s.mu.
func (s *Store) lookup(key string, now time.Time) *item {
	it, ok := s.byKey.Get(&item{key: key})
	if !ok || !it.live(now) {
		return nil
	}
	return it
}

// set replaces key's item. Caller holds s.mu for writing.
func (s *Store) set(it *item) {
	if old, ok := s.byKey.ReplaceOrInsert(it); ok && !old.expiresAt.IsZero() {
		s.byExp.Delete(old)
	}
	if !it.expiresAt.IsZero() {
		s.byExp.ReplaceOrInsert(it)
	}
}

// remove deletes key's item. Caller holds s.mu for writing.
func (s *Store) remove(key string) (*item, bool) {
	old, ok := s.byKey.Delete(&item{key: key})
	if ok && !old.expiresAt.IsZero() {
		s.byExp.Delete(old)
	}
	return old, ok
}

func (s *Store) nextVersion() int64 {
	s.version++
	return s.version
}

func checkCond(key string, cur *item, c pluginapi.Condition, opIndex int) error {
	var curV int64
	if cur != nil {
		curV = cur.version
	}
	switch c.Kind {
	case pluginapi.CondAbsent:
		if cur != nil {
			return &pluginapi.ConflictError{Key: key, CurrentVersion: curV, OpIndex: opIndex}
		}
	case pluginapi.CondVersion:
		if curV != c.Version {
			return &pluginapi.ConflictError{Key: key, CurrentVersion: curV, OpIndex: opIndex}
		}
	}
	return nil
}

func (s *Store) Info(context.Context) (pluginapi.Info, error) {
	return pluginapi.Info{
		Name: Name, Version: Version, ProtocolVersion: pluginapi.ProtocolVersion,
		Capabilities: pluginapi.Capabilities{Watch: true, CleanupExpired: true},
	}, nil
}

func (s *Store) Get(_ context.Context, key string) (pluginapi.Entry, error) {
	if err := pluginapi.ValidateKey(key); err != nil {
		return pluginapi.Entry{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(); err != nil {
		return pluginapi.Entry{}, err
	}
	it := s.lookup(key, s.now())
	if it == nil {
		return pluginapi.Entry{}, fmt.Errorf("memory: get %q: %w", key, pluginapi.ErrNotFound)
	}
	return it.entry(true), nil
}

func (s *Store) GetMany(_ context.Context, keys []string) ([]*pluginapi.Entry, error) {
	if err := pluginapi.ValidateGetMany(keys); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(); err != nil {
		return nil, err
	}
	now := s.now()
	out := make([]*pluginapi.Entry, len(keys))
	for i, k := range keys {
		if it := s.lookup(k, now); it != nil {
			e := it.entry(true)
			out[i] = &e
		}
	}
	return out, nil
}

func (s *Store) Put(_ context.Context, req pluginapi.PutRequest) (pluginapi.Entry, error) {
	if err := pluginapi.ValidatePut(req); err != nil {
		return pluginapi.Entry{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(); err != nil {
		return pluginapi.Entry{}, err
	}
	now := s.now()
	if err := checkCond(req.Key, s.lookup(req.Key, now), req.Cond, -1); err != nil {
		return pluginapi.Entry{}, err
	}
	it := &item{key: req.Key, value: bytes.Clone(req.Value), version: s.nextVersion(), expiresAt: pluginapi.ExpiryAt(now, req.TTL)}
	s.set(it)
	s.hub.Publish(pluginapi.Event{Type: pluginapi.EventPut, Key: it.key, Value: it.value, Version: it.version})
	return it.entry(false), nil
}

func (s *Store) Delete(_ context.Context, key string, cond pluginapi.Condition) (bool, error) {
	if err := pluginapi.ValidateKey(key); err != nil {
		return false, err
	}
	if err := pluginapi.ValidateCondition(cond, false); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(); err != nil {
		return false, err
	}
	cur := s.lookup(key, s.now())
	if err := checkCond(key, cur, cond, -1); err != nil {
		return false, err
	}
	if cur == nil {
		return false, nil
	}
	s.remove(key)
	s.hub.Publish(pluginapi.Event{Type: pluginapi.EventDelete, Key: key, Version: cur.version})
	return true, nil
}

// ascend walks live items under prefix after startAfter in key order until
// fn returns false. Caller holds s.mu.
func (s *Store) ascend(prefix, startAfter string, now time.Time, fn func(*item) bool) {
	from := prefix
	if startAfter >= from {
		from = startAfter + "\x00" // the smallest key after startAfter
	}
	s.byKey.AscendGreaterOrEqual(&item{key: from}, func(it *item) bool {
		if !strings.HasPrefix(it.key, prefix) {
			return false
		}
		if !it.live(now) {
			return true
		}
		return fn(it)
	})
}

func (s *Store) List(_ context.Context, req pluginapi.ListRequest) (pluginapi.ListResult, error) {
	req, err := pluginapi.NormalizeList(req)
	if err != nil {
		return pluginapi.ListResult{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(); err != nil {
		return pluginapi.ListResult{}, err
	}
	var res pluginapi.ListResult
	s.ascend(req.Prefix, req.StartAfter, s.now(), func(it *item) bool {
		if len(res.Entries) == req.Limit {
			res.More = true
			return false
		}
		res.Entries = append(res.Entries, it.entry(!req.KeysOnly))
		return true
	})
	return res, nil
}

func (s *Store) Count(_ context.Context, prefix string) (int64, error) {
	if err := pluginapi.ValidatePrefix(prefix); err != nil {
		return 0, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(); err != nil {
		return 0, err
	}
	var n int64
	s.ascend(prefix, "", s.now(), func(*item) bool { n++; return true })
	return n, nil
}

func (s *Store) DeletePrefix(_ context.Context, prefix string) (int64, error) {
	if err := pluginapi.ValidateDeletePrefix(prefix); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(); err != nil {
		return 0, err
	}
	var doomed []*item
	s.ascend(prefix, "", s.now(), func(it *item) bool { doomed = append(doomed, it); return true })
	events := make([]pluginapi.Event, len(doomed))
	for i, it := range doomed {
		s.remove(it.key)
		events[i] = pluginapi.Event{Type: pluginapi.EventDelete, Key: it.key, Version: it.version}
	}
	s.hub.Publish(events...)
	return int64(len(doomed)), nil
}

func (s *Store) Increment(_ context.Context, key string, delta int64) (pluginapi.Counter, error) {
	if err := pluginapi.ValidateKey(key); err != nil {
		return pluginapi.Counter{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(); err != nil {
		return pluginapi.Counter{}, err
	}
	var n int64
	var expiresAt time.Time
	if cur := s.lookup(key, s.now()); cur != nil {
		var err error
		if n, err = pluginapi.ParseCounter(key, cur.value); err != nil {
			return pluginapi.Counter{}, fmt.Errorf("memory: increment: %w", err)
		}
		expiresAt = cur.expiresAt
	}
	n, err := pluginapi.AddCounter(key, n, delta)
	if err != nil {
		return pluginapi.Counter{}, fmt.Errorf("memory: increment: %w", err)
	}
	it := &item{key: key, value: strconv.AppendInt(nil, n, 10), version: s.nextVersion(), expiresAt: expiresAt}
	s.set(it)
	s.hub.Publish(pluginapi.Event{Type: pluginapi.EventPut, Key: key, Value: it.value, Version: it.version})
	return pluginapi.Counter{Value: n, Version: it.version, ExpiresAt: expiresAt}, nil
}

func (s *Store) RefreshTTL(_ context.Context, req pluginapi.RefreshRequest) (pluginapi.Entry, error) {
	if err := pluginapi.ValidateRefresh(req); err != nil {
		return pluginapi.Entry{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(); err != nil {
		return pluginapi.Entry{}, err
	}
	now := s.now()
	cur := s.lookup(req.Key, now)
	if cur == nil {
		return pluginapi.Entry{}, fmt.Errorf("memory: refresh ttl %q: %w", req.Key, pluginapi.ErrNotFound)
	}
	if err := checkCond(req.Key, cur, req.Cond, -1); err != nil {
		return pluginapi.Entry{}, err
	}
	it := &item{key: cur.key, value: cur.value, version: cur.version, expiresAt: pluginapi.ExpiryAt(now, req.TTL)}
	s.set(it)
	return it.entry(false), nil
}

func (s *Store) Batch(_ context.Context, ops []pluginapi.Op) ([]pluginapi.OpResult, error) {
	if err := pluginapi.ValidateBatch(ops); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(); err != nil {
		return nil, err
	}
	now := s.now()
	// Plan against an overlay first, so a failed condition leaves nothing applied.
	overlay := make(map[string]*item, len(ops)) // nil value: deleted within the batch
	current := func(key string) *item {
		if it, ok := overlay[key]; ok {
			return it
		}
		return s.lookup(key, now)
	}
	results := make([]pluginapi.OpResult, len(ops))
	events := make([]pluginapi.Event, 0, len(ops))
	version := s.version
	for i, op := range ops {
		cur := current(op.Key)
		if err := checkCond(op.Key, cur, op.Cond, i); err != nil {
			return nil, err
		}
		switch op.Kind {
		case pluginapi.OpPut:
			version++
			it := &item{key: op.Key, value: bytes.Clone(op.Value), version: version, expiresAt: pluginapi.ExpiryAt(now, op.TTL)}
			overlay[op.Key] = it
			results[i] = pluginapi.OpResult{Version: version, ExpiresAt: it.expiresAt}
			events = append(events, pluginapi.Event{Type: pluginapi.EventPut, Key: op.Key, Value: it.value, Version: version})
		case pluginapi.OpDelete:
			overlay[op.Key] = nil
			if cur != nil {
				results[i] = pluginapi.OpResult{Deleted: true}
				events = append(events, pluginapi.Event{Type: pluginapi.EventDelete, Key: op.Key, Version: cur.version})
			}
		}
	}
	s.version = version
	for key, it := range overlay {
		if it == nil {
			s.remove(key)
		} else {
			s.set(it)
		}
	}
	s.hub.Publish(events...)
	return results, nil
}

func (s *Store) Stats(context.Context) (pluginapi.Stats, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(); err != nil {
		return pluginapi.Stats{}, err
	}
	st := pluginapi.Stats{Backend: Name, Version: Version}
	s.ascend("", "", s.now(), func(it *item) bool {
		st.Keys++
		st.Bytes += int64(len(it.key) + len(it.value))
		return true
	})
	return st, nil
}

// Watch subscribes to changes under prefix.
func (s *Store) Watch(ctx context.Context, prefix string) (pluginapi.WatchStream, error) {
	return s.hub.Subscribe(ctx, prefix)
}

// CleanupExpired removes up to limit expired keys, oldest expiry first.
func (s *Store) CleanupExpired(_ context.Context, limit int) (int64, error) {
	if limit <= 0 {
		limit = 1000
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(); err != nil {
		return 0, err
	}
	now := s.now()
	var doomed []*item
	s.byExp.Ascend(func(it *item) bool {
		if it.live(now) || len(doomed) == limit {
			return false
		}
		doomed = append(doomed, it)
		return true
	})
	events := make([]pluginapi.Event, len(doomed))
	for i, it := range doomed {
		s.remove(it.key)
		events[i] = pluginapi.Event{Type: pluginapi.EventExpire, Key: it.key, Version: it.version}
	}
	s.hub.Publish(events...)
	return int64(len(doomed)), nil
}

// Close ends watches and refuses further calls.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.hub.Close()
	return nil
}
