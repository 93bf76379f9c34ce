// Package cachemap is the bookkeeping the host's read cache and the Go
// client's near cache share: entries bounded in bytes, and the rules that
// decide whether a read may be served from them or kept in them while
// writes and change reports race with it.
//
// The rules. A cache serves only while the change stream that keeps it
// coherent is up (Serve; Reset when it ends, which also empties it). A
// write the cache's owner makes itself is bracketed by Begin and its end:
// its keys are forgotten before and after, and while it is in flight no
// read of them is served or kept. Every reported change forgets its key
// (Changed). A read that missed takes a Ticket and may keep what it then
// read (Fill) only if nothing forgot its key's stripe, began a write on
// it, or reset the cache meanwhile: a fill can never bring back what a
// change made stale.
package cachemap

import (
	"hash/maphash"
	"strings"
	"sync"
)

// stripes is how many groups of keys share an invalidation counter: a
// fill is refused when any key of its stripe changed while it read.
const stripes = 256

// Map is a coherent cache of V by key. Its methods are safe for
// concurrent use.
type Map[V any] struct {
	max  int64
	size func(key string, v V) int64
	seed maphash.Seed

	mu      sync.Mutex
	entries map[string]V
	bytes   int64
	// gen counts invalidations per stripe of keys; inflight counts the
	// writes in flight per stripe. A prefix write touches every stripe:
	// wide and wideInflight.
	gen          [stripes]uint64
	inflight     [stripes]int32
	wide         uint64
	wideInflight int32
	// serving is true while the change stream is up; pos is the revision
	// it has reported up to; epoch counts the stream's lives.
	serving bool
	pos     int64
	epoch   uint64
}

// New returns an empty map that holds up to maxBytes, counting each
// entry as size says, and serves nothing until Serve.
func New[V any](maxBytes int64, size func(key string, v V) int64) *Map[V] {
	return &Map[V]{max: maxBytes, size: size, seed: maphash.MakeSeed(), entries: map[string]V{}}
}

func (m *Map[V]) stripe(key string) int { return int(maphash.String(m.seed, key) % stripes) }

// Ticket is what a read that missed needs to keep what it read.
type Ticket struct {
	stripe    int
	gen, wide uint64
	epoch     uint64
	usable    bool
	key       string
}

// Lookup returns key's entry if the map may serve it now (found), with
// the revision the stream has reported up to: the entry is still what the
// store holds at that revision. The ticket is for a fill, when there is no
// entry or the caller finds it stale (expired).
func (m *Map[V]) Lookup(key string) (v V, pos int64, found bool, t Ticket) {
	s := m.stripe(key)
	m.mu.Lock()
	defer m.mu.Unlock()
	usable := m.serving && m.inflight[s] == 0 && m.wideInflight == 0
	t = Ticket{stripe: s, gen: m.gen[s], wide: m.wide, epoch: m.epoch, usable: usable, key: key}
	if usable {
		v, found = m.entries[key]
	}
	return v, m.pos, found, t
}

// Fill keeps v, what a read with ticket t found, unless something may
// have changed the key since t was taken; it says whether it kept it.
func (m *Map[V]) Fill(t Ticket, v V) bool {
	if !t.usable {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.serving || m.epoch != t.epoch || m.gen[t.stripe] != t.gen || m.wide != t.wide || m.inflight[t.stripe] != 0 || m.wideInflight != 0 {
		return false
	}
	return m.putLocked(t.key, v)
}

// putLocked keeps an entry, making room by dropping others. Map iteration
// order is random, so the dropped entries are a random sample: no
// bookkeeping on the hit path, which an LRU list would need under the
// lock. One value that would crowd out many (over an eighth of the bound)
// is not kept. It says whether it kept v.
func (m *Map[V]) putLocked(key string, v V) bool {
	if old, ok := m.entries[key]; ok {
		m.bytes -= m.size(key, old)
		delete(m.entries, key)
	}
	size := m.size(key, v)
	if size > m.max/8 {
		return false
	}
	for k, old := range m.entries {
		if m.bytes+size <= m.max {
			break
		}
		m.bytes -= m.size(k, old)
		delete(m.entries, k)
	}
	m.entries[key] = v
	m.bytes += size
	return true
}

// forgetLocked drops key and voids any fill of its stripe in progress.
func (m *Map[V]) forgetLocked(key string) {
	s := m.stripe(key)
	m.gen[s]++
	if old, ok := m.entries[key]; ok {
		m.bytes -= m.size(key, old)
		delete(m.entries, key)
	}
}

// Changed records reported changes: each key is forgotten, and the
// stream has reported everything up to rev (the revision only moves
// forward).
func (m *Map[V]) Changed(rev int64, keys ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range keys {
		m.forgetLocked(k)
	}
	m.pos = max(m.pos, rev)
}

// ForgetPrefix forgets every key under prefix.
func (m *Map[V]) ForgetPrefix(prefix string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.wide++
	for k := range m.entries {
		if strings.HasPrefix(k, prefix) {
			m.forgetLocked(k)
		}
	}
}

// Begin marks a write to keys (to every key, when wide) in flight: they
// are forgotten now and again when the returned end is called, and
// neither served nor kept in between.
func (m *Map[V]) Begin(keys []string, wide bool) (end func()) {
	m.mu.Lock()
	m.markLocked(keys, wide, 1)
	m.mu.Unlock()
	return func() {
		m.mu.Lock()
		m.markLocked(keys, wide, -1)
		m.mu.Unlock()
	}
}

func (m *Map[V]) markLocked(keys []string, wide bool, delta int32) {
	if wide {
		m.wideInflight += delta
		m.wide++
		return
	}
	for _, k := range keys {
		m.inflight[m.stripe(k)] += delta
		m.forgetLocked(k)
	}
}

// Serve says the change stream is up: every change from now on will be
// reported, so the map may serve and keep entries.
func (m *Map[V]) Serve() {
	m.mu.Lock()
	m.serving = true
	m.mu.Unlock()
}

// Reset says the change stream ended: the map forgets everything, its
// position included (a store that lost its data starts its revisions
// again), and serves and keeps nothing until Serve.
func (m *Map[V]) Reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.serving = false
	m.pos = 0
	m.epoch++
	clear(m.entries)
	m.bytes = 0
}

// Size reports the entries held and their bytes.
func (m *Map[V]) Size() (entries int, bytes int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries), m.bytes
}
