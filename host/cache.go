package host

import (
	"context"
	"hash/maphash"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
// stream has delivered, and says the revision it was served at.
//
// Trust. The cache serves only while its stream is up. When the stream
// ends (the plugin died or restarted, a watcher overflow), it empties
// itself, stops serving and filling, and subscribes again; fills resume
// once the new stream is live. An entry is never served at or past its
// expiry.
type cached struct {
	backend
	maxBytes int64
	now      func() time.Time
	log      *slog.Logger
	stats    *cacheStats

	seed maphash.Seed

	mu      sync.Mutex
	entries map[string]cacheEntry
	bytes   int64
	// gen counts invalidations per stripe of keys; inflight counts the
	// writes in flight per stripe. A prefix delete touches every stripe:
	// wide and wideInflight.
	gen          [cacheStripes]uint64
	inflight     [cacheStripes]int32
	wide         uint64
	wideInflight int32
	// live is true while the change stream is up; streamRev is the
	// revision it has delivered up to; epoch counts the stream's lives.
	live      bool
	streamRev int64
	epoch     uint64
	stream    kv.WatchStream // the live stream, for cut

	stop func()
	done chan struct{}
}

const cacheStripes = 256

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

func (e cacheEntry) size(key string) int64 { return int64(len(key) + len(e.entry.Value) + 64) }

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
	f := cacheFigures{hits: c.stats.hits.Load(), misses: c.stats.misses.Load()}
	c.mu.Lock()
	f.entries, f.bytes = uint64(len(c.entries)), uint64(c.bytes)
	c.mu.Unlock()
	return f
}

// newCached starts the cache over next, holding up to maxBytes.
func newCached(next backend, maxBytes int64, log *slog.Logger) *cached {
	ctx, cancel := context.WithCancel(context.Background())
	c := &cached{backend: next, maxBytes: maxBytes, now: time.Now, log: log, stats: &cacheStats{},
		seed: maphash.MakeSeed(), entries: map[string]cacheEntry{}, stop: cancel, done: make(chan struct{})}
	go c.follow(ctx)
	return c
}

func (c *cached) stripe(key string) int { return int(maphash.String(c.seed, key) % cacheStripes) }

// Close stops following the stream and closes the backend.
func (c *cached) Close() error {
	c.stop()
	<-c.done
	return c.backend.Close()
}

// Get serves key from the cache when it can vouch for it, and otherwise
// reads the backend and keeps what it read if nothing changed the key
// meanwhile.
func (c *cached) Get(ctx context.Context, key string) (kv.GetResult, error) {
	s := c.stripe(key)
	c.mu.Lock()
	usable := c.live && c.inflight[s] == 0 && c.wideInflight == 0
	if usable {
		if e, ok := c.entries[key]; ok && !kv.Expired(e.entry.ExpiresAt, c.now()) {
			rev := max(e.rev, c.streamRev)
			c.mu.Unlock()
			c.stats.add(true)
			if !e.found {
				return kv.GetResult{Revision: rev}, nil
			}
			return kv.GetResult{Found: true, Entry: cloneEntry(e.entry), Revision: rev}, nil
		}
	}
	gen, wide, epoch := c.gen[s], c.wide, c.epoch
	c.mu.Unlock()
	c.stats.add(false)
	res, err := c.backend.Get(ctx, key)
	if err != nil || !usable {
		return res, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.live || c.epoch != epoch || c.gen[s] != gen || c.wide != wide || c.inflight[s] != 0 || c.wideInflight != 0 {
		return res, nil // something changed the key, or may have, while it was read
	}
	c.put(key, cacheEntry{found: res.Found, entry: cloneEntry(res.Entry), rev: res.Revision})
	return res, nil
}

func cloneEntry(e kv.Entry) kv.Entry {
	if e.Value != nil {
		e.Value = append([]byte{}, e.Value...)
	}
	return e
}

// put keeps an entry, making room by dropping others. Map iteration order
// is random, so the dropped entries are a random sample: no bookkeeping on
// the hit path, which an LRU list would need under the lock.
func (c *cached) put(key string, e cacheEntry) {
	if old, ok := c.entries[key]; ok {
		c.bytes -= old.size(key)
	}
	size := e.size(key)
	if size > c.maxBytes/8 {
		delete(c.entries, key)
		return // one value that would crowd out many is not kept
	}
	for k, old := range c.entries {
		if c.bytes+size <= c.maxBytes {
			break
		}
		c.bytes -= old.size(k)
		delete(c.entries, k)
	}
	c.entries[key] = e
	c.bytes += size
}

// invalidateLocked forgets key and makes any fill of its stripe in
// progress void.
func (c *cached) invalidateLocked(key string) {
	s := c.stripe(key)
	c.gen[s]++
	if old, ok := c.entries[key]; ok {
		c.bytes -= old.size(key)
		delete(c.entries, key)
	}
}

// writing runs a write to keys (every key, when wide) with the cache
// kept out of the way: the keys are forgotten before and after, and
// neither served nor filled while the write is in flight.
func writing[T any](c *cached, keys []string, wide bool, write func() (T, error)) (T, error) {
	c.mu.Lock()
	c.mark(keys, wide, 1)
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.mark(keys, wide, -1)
		c.mu.Unlock()
	}()
	return write()
}

// mark counts a write in or out of flight and invalidates what it touches.
func (c *cached) mark(keys []string, wide bool, delta int32) {
	if wide {
		c.wideInflight += delta
		c.wide++
		return
	}
	for _, k := range keys {
		c.inflight[c.stripe(k)] += delta
		c.invalidateLocked(k)
	}
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
		c.mu.Lock()
		for k := range c.entries {
			if strings.HasPrefix(k, prefix) {
				c.invalidateLocked(k)
			}
		}
		c.mu.Unlock()
		return res, err
	})
}

// follow keeps the change stream up for the cache's lifetime.
func (c *cached) follow(ctx context.Context) {
	defer close(c.done)
	wait := 10 * time.Millisecond
	for ctx.Err() == nil {
		ws, err := c.backend.Watch(ctx, kv.WatchRequest{TTLEvents: true})
		if err == nil {
			wait = 10 * time.Millisecond
			err = c.consume(ws)
			_ = ws.Close()
		}
		c.distrust()
		if ctx.Err() != nil {
			return
		}
		c.log.Debug("cache: change stream ended; the cache is empty until it is back", "err", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
		wait = min(2*wait, time.Second)
	}
}

// consume applies the stream's events until it ends. The cache serves
// from the moment the stream is live: every change committed from then on
// reaches it.
func (c *cached) consume(ws kv.WatchStream) error {
	c.mu.Lock()
	c.live, c.stream = true, ws
	c.mu.Unlock()
	for {
		ev, err := ws.Recv()
		if err != nil {
			return err
		}
		c.mu.Lock()
		if ev.Type != kv.EventProgress {
			c.invalidateLocked(ev.Key)
		}
		c.streamRev = max(c.streamRev, ev.Revision)
		c.mu.Unlock()
	}
}

// distrust empties the cache and stops it serving until the stream is
// live again.
func (c *cached) distrust() {
	c.mu.Lock()
	c.live, c.stream = false, nil
	c.epoch++
	c.entries = map[string]cacheEntry{}
	c.bytes = 0
	c.mu.Unlock()
}

// cut ends the change stream as a lost connection would (tests).
func (c *cached) cut() {
	c.mu.Lock()
	ws := c.stream
	c.mu.Unlock()
	if ws != nil {
		_ = ws.Close()
	}
}
