// Package memory is kvhost's in-memory backend: an ordered B-tree index
// (prefix scans are range walks), a second index by expiry for cleanup, a
// bounded history of recent changes for watches that resume, and a watch
// hub. Nothing survives the process; it is the reference backend for the
// contract and the fastest one for tests and caches. It is written by hand
// rather than on the backend kit (pluginapi/kit), which would make it
// 1.3 to 1.8 times slower (docs/RATIONALE.md, "The backend kit").
//
// Settings:
//   - watch_buffer: live events a watcher may fall behind (default
//     pluginapi.DefaultWatchBuffer).
//   - history: how many of the most recent revisions are kept for watches
//     that start at a revision (default DefaultHistory).
//   - revision_base: the revision before the first change (default the
//     wall clock in microseconds when the store is made; see New). "0"
//     numbers changes from 1, for demonstrations and tests whose store
//     lives as long as its watchers.
package memory

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/btree"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi"
)

// Name and Version identify the backend in Info and Stats.
const (
	Name    = "memory"
	Version = "2.0.0"
)

// DefaultHistory is how many recent revisions a Store keeps by default.
const DefaultHistory = 100_000

// Store is the in-memory backend. It is safe for concurrent use.
type Store struct {
	mu    sync.RWMutex
	byKey *btree.BTreeG[*item]
	byExp *btree.BTreeG[*item]
	rev   int64 // the store revision: the last change's
	// hist holds the events of the most recent revisions, one per
	// revision, contiguous: hist[i].Revision == hist[0].Revision+i.
	hist   []kv.Event
	keep   int
	hub    *pluginapi.WatchHub
	now    func() time.Time
	closed bool
}

var (
	_ kv.Backend         = (*Store)(nil)
	_ kv.Watcher         = (*Store)(nil)
	_ kv.Expirer         = (*Store)(nil)
	_ pluginapi.History  = (*Store)(nil)
	_ pluginapi.OpenFunc = Open
)

type item struct {
	key       string
	value     []byte
	version   int64
	expiresAt time.Time
}

func (it *item) live(now time.Time) bool { return !kv.Expired(it.expiresAt, now) }

func (it *item) entry(withValue bool) kv.Entry {
	e := kv.Entry{Key: it.key, Version: it.version, ExpiresAt: it.expiresAt}
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

// WithHistory sets how many recent revisions are kept for watches that
// start at a revision (at least 1).
func WithHistory(n int) Option { return func(s *Store) { s.keep = max(n, 1) } }

// WithRevisionBase numbers the store's changes from base+1 instead of
// from the clock (New's default; see New).
func WithRevisionBase(base int64) Option { return func(s *Store) { s.rev = max(base, 0) } }

// WithClock replaces the clock, for tests of expiry.
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// New returns an empty Store.
//
// Its revisions start at the wall clock in microseconds, not at 1: a
// memory store forgets everything when its process ends, and a watcher
// resuming after a restart from the revision it had reached must get a
// compacted error (its history is gone; list again), not wait for the
// new process to count up to it, and must not see revisions run
// backwards. This holds as long as a store made fewer than a million
// revisions per second of its life, which a memory store behind a plugin
// connection is far from.
func New(opts ...Option) *Store {
	s := &Store{
		byKey: btree.NewG(32, lessKey),
		byExp: btree.NewG(32, lessExp),
		hub:   pluginapi.NewWatchHub(0),
		now:   time.Now,
		keep:  DefaultHistory,
		rev:   time.Now().UnixMicro(),
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Open is the pluginapi.OpenFunc of the memory backend.
func Open(_ context.Context, settings map[string]string) (kv.Backend, error) {
	var opts []Option
	positive := func(k, v string) (int, error) {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("memory: setting %s=%q: %w: want a positive integer", k, v, kv.ErrInvalidArgument)
		}
		return n, nil
	}
	for k, v := range settings {
		switch k {
		case "watch_buffer":
			n, err := positive(k, v)
			if err != nil {
				return nil, err
			}
			opts = append(opts, WithWatchBuffer(n))
		case "history":
			n, err := positive(k, v)
			if err != nil {
				return nil, err
			}
			opts = append(opts, WithHistory(n))
		case "revision_base":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("memory: setting %s=%q: %w: want a revision, 0 or more", k, v, kv.ErrInvalidArgument)
			}
			opts = append(opts, WithRevisionBase(n))
		default:
			return nil, fmt.Errorf("memory: %w: unknown setting %q (known: history, revision_base, watch_buffer)", kv.ErrInvalidArgument, k)
		}
	}
	return New(opts...), nil
}

func (s *Store) check() error {
	if s.closed {
		return fmt.Errorf("memory: %w", kv.ErrClosed)
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

// commit records one operation's events, whose revisions follow s.rev, in
// the history and publishes them. Caller holds s.mu for writing.
func (s *Store) commit(events ...kv.Event) {
	if len(events) == 0 {
		return
	}
	s.rev = events[len(events)-1].Revision
	s.hist = append(s.hist, events...)
	// Trim in steps of a quarter so that appending stays amortised O(1).
	if over := len(s.hist) - s.keep; over > 0 && over >= s.keep/4 {
		s.hist = append([]kv.Event(nil), s.hist[over:]...)
	}
	s.hub.Publish(events...)
}

// oldest is the oldest revision a watch can start at. Caller holds s.mu.
func (s *Store) oldest() int64 {
	if len(s.hist) == 0 {
		return s.rev + 1
	}
	return s.hist[0].Revision
}

// ReadHistory implements pluginapi.History.
func (s *Store) ReadHistory(_ context.Context, prefix string, from int64, limit int) ([]kv.Event, int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(); err != nil {
		return nil, 0, err
	}
	// Trimming is lazy: only the last s.keep revisions are promised.
	oldest := max(s.oldest(), s.rev-int64(s.keep)+1, 1)
	if from < oldest {
		return nil, 0, &kv.CompactedError{Requested: from, Oldest: oldest}
	}
	var out []kv.Event
	size := 0
	if len(s.hist) > 0 {
		for i := max(int(from-s.hist[0].Revision), 0); i < len(s.hist); i++ {
			ev := s.hist[i]
			if !strings.HasPrefix(ev.Key, prefix) {
				continue
			}
			out = append(out, ev)
			if size += len(ev.Value); len(out) == limit || size >= pluginapi.HistoryPageBytes {
				return out, ev.Revision, nil // stopped early: covered up to here
			}
		}
	}
	return out, s.rev, nil
}

func checkCond(key string, cur *item, c kv.Condition, opIndex int) error {
	var curV int64
	if cur != nil {
		curV = cur.version
	}
	switch c.Kind {
	case kv.CondAbsent:
		if cur != nil {
			return &kv.ConflictError{Key: key, CurrentVersion: curV, OpIndex: opIndex}
		}
	case kv.CondVersion:
		if curV != c.Version {
			return &kv.ConflictError{Key: key, CurrentVersion: curV, OpIndex: opIndex}
		}
	}
	return nil
}

func (s *Store) Info(context.Context) (kv.Info, error) {
	return kv.Info{
		Name: Name, Version: Version, ProtocolVersion: pluginapi.ProtocolVersion,
		Capabilities: kv.Capabilities{Watch: true, WatchHistory: true, CleanupExpired: true, Exclusive: true},
	}, nil
}

func (s *Store) Get(_ context.Context, key string) (kv.GetResult, error) {
	if err := kv.ValidateKey(key); err != nil {
		return kv.GetResult{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(); err != nil {
		return kv.GetResult{}, err
	}
	res := kv.GetResult{Revision: s.rev}
	if it := s.lookup(key, s.now()); it != nil {
		res.Entry, res.Found = it.entry(true), true
	}
	return res, nil
}

func (s *Store) GetMany(_ context.Context, keys []string) (kv.GetManyResult, error) {
	if err := kv.ValidateGetMany(keys); err != nil {
		return kv.GetManyResult{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(); err != nil {
		return kv.GetManyResult{}, err
	}
	now := s.now()
	out := kv.GetManyResult{Entries: make([]*kv.Entry, len(keys)), Revision: s.rev}
	for i, k := range keys {
		if it := s.lookup(k, now); it != nil {
			e := it.entry(true)
			out.Entries[i] = &e
		}
	}
	return out, nil
}

func (s *Store) Put(_ context.Context, req kv.PutRequest) (kv.Entry, error) {
	if err := kv.ValidatePut(req); err != nil {
		return kv.Entry{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(); err != nil {
		return kv.Entry{}, err
	}
	now := s.now()
	if err := checkCond(req.Key, s.lookup(req.Key, now), req.Cond, -1); err != nil {
		return kv.Entry{}, err
	}
	it := &item{key: req.Key, value: bytes.Clone(req.Value), version: s.rev + 1, expiresAt: kv.ExpiryAt(now, req.TTL)}
	s.set(it)
	s.commit(putEvent(it))
	return it.entry(false), nil
}

func putEvent(it *item) kv.Event {
	return kv.Event{Type: kv.EventPut, Key: it.key, Value: it.value, Version: it.version, Revision: it.version, ExpiresAt: it.expiresAt}
}

func (s *Store) Delete(_ context.Context, key string, cond kv.Condition) (kv.DeleteResult, error) {
	if err := kv.ValidateKey(key); err != nil {
		return kv.DeleteResult{}, err
	}
	if err := kv.ValidateCondition(cond, false); err != nil {
		return kv.DeleteResult{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(); err != nil {
		return kv.DeleteResult{}, err
	}
	cur := s.lookup(key, s.now())
	if err := checkCond(key, cur, cond, -1); err != nil {
		return kv.DeleteResult{}, err
	}
	if cur == nil {
		return kv.DeleteResult{Revision: s.rev}, nil
	}
	s.remove(key)
	s.commit(kv.Event{Type: kv.EventDelete, Key: key, Version: cur.version, Revision: s.rev + 1})
	return kv.DeleteResult{Deleted: true, Revision: s.rev}, nil
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

func (s *Store) List(_ context.Context, req kv.ListRequest) (kv.ListResult, error) {
	var entries []kv.Entry
	res, err := s.listEach(req, func(it *item) { entries = append(entries, it.entry(!req.KeysOnly)) })
	res.Entries = entries
	return res, err
}

// ListPacked is List written straight into the plugin wire's packed page
// (pluginapi.PackedLister): the values are copied once, into the page,
// instead of into an entry each.
func (s *Store) ListPacked(_ context.Context, req kv.ListRequest, page *pluginapi.PackedPage) (kv.ListResult, error) {
	return s.listEach(req, func(it *item) {
		var value []byte
		if !req.KeysOnly {
			value = it.value
		}
		page.AppendString(it.key, value, it.version, kv.UnixMillis(it.expiresAt))
	})
}

// listEach hands add the live items of one list page, in key order, and
// says the page's More and Revision.
func (s *Store) listEach(req kv.ListRequest, add func(*item)) (kv.ListResult, error) {
	req, err := kv.NormalizeList(req)
	if err != nil {
		return kv.ListResult{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(); err != nil {
		return kv.ListResult{}, err
	}
	res := kv.ListResult{Revision: s.rev}
	n, size := 0, 0
	s.ascend(req.Prefix, req.StartAfter, s.now(), func(it *item) bool {
		next := req.EntrySize(it.key, it.value)
		if req.PageFull(n, size, next) {
			res.More = true
			return false
		}
		n, size = n+1, size+next
		add(it)
		return true
	})
	return res, nil
}

func (s *Store) Count(_ context.Context, prefix string) (kv.CountResult, error) {
	if err := kv.ValidatePrefix(prefix); err != nil {
		return kv.CountResult{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(); err != nil {
		return kv.CountResult{}, err
	}
	res := kv.CountResult{Revision: s.rev}
	s.ascend(prefix, "", s.now(), func(*item) bool { res.Count++; return true })
	return res, nil
}

func (s *Store) DeletePrefix(_ context.Context, prefix string) (kv.DeletePrefixResult, error) {
	if err := kv.ValidateDeletePrefix(prefix); err != nil {
		return kv.DeletePrefixResult{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(); err != nil {
		return kv.DeletePrefixResult{}, err
	}
	var doomed []*item
	s.ascend(prefix, "", s.now(), func(it *item) bool { doomed = append(doomed, it); return true })
	s.removeAll(doomed, kv.EventDelete)
	return kv.DeletePrefixResult{Deleted: int64(len(doomed)), Revision: s.rev}, nil
}

// removeAll removes items, each with its own revision in the given order,
// and commits their events. Caller holds s.mu for writing.
func (s *Store) removeAll(doomed []*item, typ kv.EventType) {
	events := make([]kv.Event, len(doomed))
	for i, it := range doomed {
		s.remove(it.key)
		events[i] = kv.Event{Type: typ, Key: it.key, Version: it.version, Revision: s.rev + 1 + int64(i)}
	}
	s.commit(events...)
}

func (s *Store) Increment(_ context.Context, key string, delta int64) (kv.Counter, error) {
	if err := kv.ValidateKey(key); err != nil {
		return kv.Counter{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(); err != nil {
		return kv.Counter{}, err
	}
	var n int64
	var expiresAt time.Time
	if cur := s.lookup(key, s.now()); cur != nil {
		var err error
		if n, err = kv.ParseCounter(key, cur.value); err != nil {
			return kv.Counter{}, fmt.Errorf("memory: increment: %w", err)
		}
		expiresAt = cur.expiresAt
	}
	n, err := kv.AddCounter(key, n, delta)
	if err != nil {
		return kv.Counter{}, fmt.Errorf("memory: increment: %w", err)
	}
	it := &item{key: key, value: strconv.AppendInt(nil, n, 10), version: s.rev + 1, expiresAt: expiresAt}
	s.set(it)
	s.commit(putEvent(it))
	return kv.Counter{Value: n, Version: it.version, ExpiresAt: expiresAt}, nil
}

func (s *Store) RefreshTTL(_ context.Context, req kv.RefreshRequest) (kv.RefreshResult, error) {
	if err := kv.ValidateRefresh(req); err != nil {
		return kv.RefreshResult{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(); err != nil {
		return kv.RefreshResult{}, err
	}
	now := s.now()
	cur := s.lookup(req.Key, now)
	if cur == nil {
		return kv.RefreshResult{}, fmt.Errorf("memory: refresh ttl %q: %w", req.Key, kv.ErrNotFound)
	}
	if err := checkCond(req.Key, cur, req.Cond, -1); err != nil {
		return kv.RefreshResult{}, err
	}
	it := &item{key: cur.key, value: cur.value, version: cur.version, expiresAt: kv.ExpiryAt(now, req.TTL)}
	s.set(it)
	s.commit(kv.Event{Type: kv.EventTTL, Key: it.key, Version: it.version, Revision: s.rev + 1, ExpiresAt: it.expiresAt})
	return kv.RefreshResult{Entry: it.entry(false), Revision: s.rev}, nil
}

func (s *Store) Batch(_ context.Context, ops []kv.Op) (kv.BatchResult, error) {
	if err := kv.ValidateBatch(ops); err != nil {
		return kv.BatchResult{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(); err != nil {
		return kv.BatchResult{}, err
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
	results := make([]kv.OpResult, len(ops))
	events := make([]kv.Event, 0, len(ops))
	rev := s.rev
	for i, op := range ops {
		cur := current(op.Key)
		if err := checkCond(op.Key, cur, op.Cond, i); err != nil {
			return kv.BatchResult{}, err
		}
		switch op.Kind {
		case kv.OpPut:
			rev++
			it := &item{key: op.Key, value: bytes.Clone(op.Value), version: rev, expiresAt: kv.ExpiryAt(now, op.TTL)}
			overlay[op.Key] = it
			results[i] = kv.OpResult{Version: rev, ExpiresAt: it.expiresAt, Revision: rev}
			events = append(events, putEvent(it))
		case kv.OpDelete:
			// A delete of a missing or expired key changes nothing; an
			// expired one stays for cleanup and its EXPIRE event.
			if cur != nil {
				overlay[op.Key] = nil
				rev++
				results[i] = kv.OpResult{Deleted: true, Revision: rev}
				events = append(events, kv.Event{Type: kv.EventDelete, Key: op.Key, Version: cur.version, Revision: rev})
			}
		}
	}
	for key, it := range overlay {
		if it == nil {
			s.remove(key)
		} else {
			s.set(it)
		}
	}
	s.commit(events...)
	return kv.BatchResult{Results: results, Revision: s.rev}, nil
}

func (s *Store) Stats(context.Context) (kv.Stats, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(); err != nil {
		return kv.Stats{}, err
	}
	st := kv.Stats{Backend: Name, Version: Version, Revision: s.rev, OldestRevision: max(s.oldest(), s.rev-int64(s.keep)+1, 1)}
	s.ascend("", "", s.now(), func(it *item) bool {
		st.Keys++
		st.Bytes += int64(len(it.key) + len(it.value))
		return true
	})
	return st, nil
}

// Watch subscribes to changes under req.Prefix, replaying from
// req.StartRevision when it is set.
func (s *Store) Watch(ctx context.Context, req kv.WatchRequest) (kv.WatchStream, error) {
	return s.hub.Subscribe(ctx, req, s)
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
	// Events in key order within one cleanup, as for delete-prefix.
	sort.Slice(doomed, func(i, j int) bool { return doomed[i].key < doomed[j].key })
	s.removeAll(doomed, kv.EventExpire)
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
