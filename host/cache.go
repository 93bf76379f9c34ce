package host

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/kvhost/kvhost/internal/cachemap"
	"github.com/kvhost/kvhost/kv"
)

// cached is the read cache: point gets served from memory, kept coherent
// by the backend's change stream and by this host's own writes. It sits
// below tenancy, on the backend's own keys, so all tenants share it.
//
// Coherence. Every write through the host invalidates the keys it
// touches before it reaches the backend and again after it returns, and
// while it is in flight no read of those keys is served from or fills the
// cache. Every change in the backend's stream (other hosts' writes,
// expiries, this host's own) invalidates its key. A fill — a get that
// missed and read the backend — is kept only if nothing invalidated its
// key's stripe while it read. On a backend only this host writes (SQLite,
// memory) a read served from the cache is therefore linearizable: no
// write acknowledged before it began can be missing from it. On a shared
// backend another host's write is seen once its event arrives: a read is
// at least as new as the caller's own writes and as every change the
// stream has delivered, and says the revision it was served at; a get
// whose context asks for a linearizable read (WithLinearizable) goes to
// the backend.
//
// Trust. The cache follows the host's change feed (feed.go) and serves
// only while it is up. When the feed's stream ends (the plugin died or
// restarted, a watcher overflow), the cache empties itself and stops
// serving and filling; fills resume once the feed is live again. An entry is never served at or past its
// expiry.
type cached struct {
	backend
	shared bool // other hosts write the backend too
	now    func() time.Time
	stats  *cacheStats
	m      *cachemap.Map[cacheEntry]
}

// DefaultCacheBytes is the read cache's default bound.
const DefaultCacheBytes = 64 << 20

// CacheConfig configures the read cache.
type CacheConfig struct {
	// MaxBytes bounds what the cache holds, keys, values and a per-entry
	// overhead counted (0: DefaultCacheBytes; negative: no cache).
	MaxBytes int64 `yaml:"max_bytes"`
	// Shared turns the cache on for a backend that other hosts write too
	// (PostgreSQL, Redis). Off by default: there a read served from the
	// cache can miss another host's write until its event arrives (a few
	// milliseconds), so it is not linearizable, and a read-modify-write
	// under a lock held through another host could lose an update. Reads
	// are still at least as new as this host's own writes and every event
	// it has received. On a backend only this host writes (SQLite,
	// memory: Capabilities.Exclusive) the cache is on by default and
	// linearizable.
	Shared bool `yaml:"shared"`
}

// on says whether a backend with caps gets the cache: it must be able to
// watch (nothing else keeps the cache coherent), and be exclusive unless
// Shared says otherwise.
func (c CacheConfig) on(caps kv.Capabilities) bool {
	return c.MaxBytes > 0 && caps.Watch && (caps.Exclusive || c.Shared)
}

// cacheEntry is what the backend held for a key at revision rev: found
// with its entry, or absent.
type cacheEntry struct {
	found bool
	entry kv.Entry
	rev   int64
}

func cacheEntrySize(key string, e cacheEntry) int64 { return int64(len(key) + len(e.entry.Value) + 64) }

// cacheStats are the cache's counters, read by the metrics.
type cacheStats struct {
	hits, misses atomic.Uint64
}

func (s *cacheStats) add(hit bool) {
	if hit {
		s.hits.Add(1)
	} else {
		s.misses.Add(1)
	}
}

// cacheFigures are what /metrics shows of the cache.
type cacheFigures struct {
	hits, misses, entries, bytes uint64
}

// figures reads the cache's counters and size.
func (c *cached) figures() cacheFigures {
	n, bytes := c.m.Size()
	return cacheFigures{hits: c.stats.hits.Load(), misses: c.stats.misses.Load(), entries: uint64(n), bytes: uint64(bytes)}
}

// newCached returns the cache over next, holding up to maxBytes. It
// serves nothing until it follows a change feed that is live.
func newCached(next backend, maxBytes int64, shared bool) *cached {
	return &cached{backend: next, shared: shared, now: time.Now, stats: &cacheStats{},
		m: cachemap.New(maxBytes, cacheEntrySize)}
}

// Get serves key from the cache when it can vouch for it, and otherwise
// reads the backend and keeps what it read if nothing changed the key
// meanwhile.
func (c *cached) Get(ctx context.Context, key string) (kv.GetResult, error) {
	if c.shared && isLinearizable(ctx) {
		return c.backend.Get(ctx, key)
	}
	e, pos, found, ticket := c.m.Lookup(key)
	hit := found && !kv.Expired(e.entry.ExpiresAt, c.now())
	c.stats.add(hit)
	if hit {
		rev := max(e.rev, pos)
		if !e.found {
			return kv.GetResult{Revision: rev}, nil
		}
		return kv.GetResult{Found: true, Entry: cloneEntry(e.entry), Revision: rev}, nil
	}
	res, err := c.backend.Get(ctx, key)
	if err == nil {
		c.m.Fill(ticket, cacheEntry{found: res.Found, entry: cloneEntry(res.Entry), rev: res.Revision})
	}
	return res, err
}

func cloneEntry(e kv.Entry) kv.Entry {
	if e.Value != nil {
		e.Value = append([]byte{}, e.Value...)
	}
	return e
}

// writing runs a write to keys (every key, when wide) with the cache
// kept out of the way (cachemap.Map.Begin).
func writing[T any](c *cached, keys []string, wide bool, write func() (T, error)) (T, error) {
	defer c.m.Begin(keys, wide)()
	return write()
}

func (c *cached) Put(ctx context.Context, req kv.PutRequest) (kv.Entry, error) {
	return writing(c, []string{req.Key}, false, func() (kv.Entry, error) { return c.backend.Put(ctx, req) })
}

func (c *cached) Delete(ctx context.Context, key string, cond kv.Condition) (kv.DeleteResult, error) {
	return writing(c, []string{key}, false, func() (kv.DeleteResult, error) { return c.backend.Delete(ctx, key, cond) })
}

func (c *cached) Increment(ctx context.Context, key string, delta int64) (kv.Counter, error) {
	return writing(c, []string{key}, false, func() (kv.Counter, error) { return c.backend.Increment(ctx, key, delta) })
}

func (c *cached) RefreshTTL(ctx context.Context, req kv.RefreshRequest) (kv.RefreshResult, error) {
	return writing(c, []string{req.Key}, false, func() (kv.RefreshResult, error) { return c.backend.RefreshTTL(ctx, req) })
}

func (c *cached) Batch(ctx context.Context, ops []kv.Op) (kv.BatchResult, error) {
	keys := make([]string, len(ops))
	for i, op := range ops {
		keys[i] = op.Key
	}
	return writing(c, keys, false, func() (kv.BatchResult, error) { return c.backend.Batch(ctx, ops) })
}

func (c *cached) DeletePrefix(ctx context.Context, prefix string) (kv.DeletePrefixResult, error) {
	return writing(c, nil, true, func() (kv.DeletePrefixResult, error) {
		res, err := c.backend.DeletePrefix(ctx, prefix)
		c.m.ForgetPrefix(prefix)
		return res, err
	})
}

// live: the feed is up, so the cache may serve and fill from now on —
// every change committed from now on reaches it.
func (c *cached) live() { c.m.Serve() }

// event forgets the key a change touched.
func (c *cached) event(ev kv.Event) {
	if ev.Type == kv.EventProgress {
		c.m.Changed(ev.Revision)
		return
	}
	c.m.Changed(ev.Revision, ev.Key)
}

// lost empties the cache and stops it serving until the feed is live
// again.
func (c *cached) lost() { c.m.Reset() }
