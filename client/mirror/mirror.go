// Package mirror keeps a process's in-memory copy of everything under a
// prefix in step with a kvhost server: configuration, feature flags, a
// registry read on every request.
//
// A Mirror loads the prefix at one revision, then applies the watch's
// events from the next revision on. When the stream is cut (a network
// fault, a restarted host, a watcher that fell behind) it watches again
// from the last revision it applied, so it misses and repeats nothing;
// only when the server no longer has the history from there (the revision
// was compacted) does it load everything again. Whatever happens, once
// the server is reachable the copy converges to what is stored.
//
//	m := mirror.New(c, "config/")
//	go m.Run(ctx)
//	if err := m.Wait(ctx, 0); err != nil { ... } // loaded once
//	if e, ok := m.Get("config/flags/new-checkout"); ok && string(e.Value) == "on" { ... }
//
// Reads are served from memory without a call to the server. OnChange
// tells the process what changed, for a hot reload.
package mirror

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kvhost/kvhost/client"
	"github.com/kvhost/kvhost/kv"
)

// Mirror is an in-memory copy of the keys under a prefix.
type Mirror struct {
	c        *client.Client
	prefix   string
	onChange func(evs []kv.Event)
	retry    time.Duration
	now      func() time.Time

	mu      sync.Mutex
	entries map[string]kv.Entry
	rev     int64 // the revision the copy is at: every change up to it applied
	loaded  bool
	reloads int
	moved   chan struct{} // closed and replaced when rev moves
}

// Option configures a Mirror.
type Option func(*Mirror)

// OnChange calls fn after each batch of changes is applied, with the
// changes: a PUT, DELETE, EXPIRE or TTL event per key; after a full load,
// a PUT per key new or changed and a DELETE per key gone since the copy
// before it (the first load: a PUT per key). fn runs on the Mirror's goroutine: a slow fn
// delays the copy, not the server.
func OnChange(fn func(evs []kv.Event)) Option { return func(m *Mirror) { m.onChange = fn } }

// RetryEvery sets how long Run waits before watching again after a failed
// call (default 1s).
func RetryEvery(d time.Duration) Option { return func(m *Mirror) { m.retry = d } }

// New returns a Mirror of the keys under prefix; Run fills it.
func New(c *client.Client, prefix string, opts ...Option) *Mirror {
	m := &Mirror{c: c, prefix: prefix, retry: time.Second, now: time.Now, entries: map[string]kv.Entry{}, moved: make(chan struct{})}
	for _, o := range opts {
		o(m)
	}
	return m
}

// Get returns the live entry under key as of the copy's revision.
func (m *Mirror) Get(key string) (kv.Entry, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[key]
	if !ok || kv.Expired(e.ExpiresAt, m.now()) {
		return kv.Entry{}, false
	}
	return e, true
}

// Entries returns the live entries in key order, and the revision they
// are at.
func (m *Mirror) Entries() ([]kv.Entry, int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	out := make([]kv.Entry, 0, len(m.entries))
	for _, e := range m.entries {
		if !kv.Expired(e.ExpiresAt, now) {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, m.rev
}

// Revision is the revision the copy is at: every change up to it is
// applied. 0 before the first load.
func (m *Mirror) Revision() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rev
}

// Reloads is how many times the copy was loaded in full after the first
// time (each one a compacted resume).
func (m *Mirror) Reloads() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reloads
}

// Wait returns once the copy has been loaded and is at revision rev or
// later (rev 0: once loaded), or when ctx ends. After a write, waiting for
// its revision gives read-your-writes.
func (m *Mirror) Wait(ctx context.Context, rev int64) error {
	for {
		m.mu.Lock()
		done, moved := m.loaded && m.rev >= rev, m.moved
		m.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-moved:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Run loads the prefix and follows its changes until ctx ends, which is
// the only error it returns: every other failure is retried, and each
// retry resumes from the last revision applied.
func (m *Mirror) Run(ctx context.Context) error {
	for {
		err := m.follow(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, kv.ErrCompacted) {
			m.mu.Lock()
			m.loaded = false
			m.reloads++
			m.mu.Unlock()
			continue // load again at once
		}
		t := time.NewTimer(m.retry)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

// follow loads the copy if it is not loaded, then applies the watch's
// events until the stream ends, and says why it ended.
func (m *Mirror) follow(ctx context.Context) error {
	m.mu.Lock()
	loaded, from := m.loaded, m.rev+1
	m.mu.Unlock()
	if !loaded {
		rev, err := m.load(ctx)
		if err != nil {
			return err
		}
		from = rev + 1
	}
	ws, err := m.c.Watch(ctx, m.prefix, client.FromRevision(from), client.WithTTLEvents())
	if err != nil {
		return err
	}
	defer ws.Close()
	for {
		ev, err := ws.Recv()
		if err != nil {
			return err
		}
		m.apply([]kv.Event{ev})
	}
}

// load reads every page of the prefix into a fresh copy. Pages are read
// at successive revisions, so load then replays the changes made while it
// read, from the first page's revision on, up to the last page's: the
// copy is then the state at that one revision.
func (m *Mirror) load(ctx context.Context) (int64, error) {
	fresh := map[string]kv.Entry{}
	var first, last int64
	after, read := "", false
	for {
		opts := []client.ListOption{}
		if after != "" {
			opts = append(opts, client.StartAfter(after))
		}
		page, err := m.c.List(ctx, m.prefix, opts...)
		if err != nil {
			return 0, fmt.Errorf("mirror %q: load: %w", m.prefix, err)
		}
		if !read {
			first, read = page.Revision, true
		}
		last = page.Revision
		for _, e := range page.Entries {
			fresh[e.Key] = e
		}
		if !page.More || len(page.Entries) == 0 {
			break
		}
		after = page.Entries[len(page.Entries)-1].Key
	}
	if last > first {
		if err := m.catchUp(ctx, fresh, first+1, last); err != nil {
			return 0, err
		}
	}
	m.mu.Lock()
	evs := diff(m.entries, fresh, last)
	m.entries, m.rev, m.loaded = fresh, last, true
	m.signalLocked()
	m.mu.Unlock()
	if len(evs) > 0 && m.onChange != nil {
		m.onChange(evs)
	}
	return last, nil
}

// diff is what a load changed, as events at revision rev in key order: a
// PUT for each key new or changed, a DELETE for each key gone (its
// deletion or expiry fell in a gap the history no longer covers).
func diff(old, fresh map[string]kv.Entry, rev int64) []kv.Event {
	var evs []kv.Event
	for k, e := range fresh {
		if o, ok := old[k]; !ok || o.Version != e.Version || !o.ExpiresAt.Equal(e.ExpiresAt) {
			evs = append(evs, kv.Event{Type: kv.EventPut, Key: k, Value: e.Value, Version: e.Version, Revision: rev, ExpiresAt: e.ExpiresAt})
		}
	}
	for k, o := range old {
		if _, ok := fresh[k]; !ok {
			evs = append(evs, kv.Event{Type: kv.EventDelete, Key: k, Version: o.Version, Revision: rev})
		}
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].Key < evs[j].Key })
	return evs
}

// catchUp applies to a copy read page by page the changes from revision
// from to through: a page read later already holds some of them, which
// the versions tell apart (an entry's version is the revision of its last
// value change).
func (m *Mirror) catchUp(ctx context.Context, copy map[string]kv.Entry, from, through int64) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Progress events end the replay when no change under the prefix
	// reaches through; frequent ones end it soon.
	ws, err := m.c.Watch(wctx, m.prefix, client.FromRevision(from), client.WithTTLEvents(),
		client.WithProgressInterval(50*time.Millisecond))
	if err != nil {
		return fmt.Errorf("mirror %q: load: %w", m.prefix, err)
	}
	defer ws.Close()
	for {
		ev, err := ws.Recv()
		if err != nil {
			return fmt.Errorf("mirror %q: load: %w", m.prefix, err)
		}
		if ev.Revision > through {
			return nil
		}
		if ev.Type != kv.EventProgress {
			applyTo(copy, ev)
		}
		if ev.Revision == through {
			return nil
		}
	}
}

// applyTo applies one event to a copy, unless the copy already holds a
// later state of its key.
func applyTo(copy map[string]kv.Entry, ev kv.Event) {
	cur, ok := copy[ev.Key]
	switch ev.Type {
	case kv.EventPut:
		if !ok || cur.Version < ev.Version {
			copy[ev.Key] = kv.Entry{Key: ev.Key, Value: ev.Value, Version: ev.Version, ExpiresAt: ev.ExpiresAt}
		}
	case kv.EventDelete, kv.EventExpire:
		if ok && cur.Version < ev.Revision {
			delete(copy, ev.Key)
		}
	case kv.EventTTL:
		if ok && cur.Version == ev.Version {
			cur.ExpiresAt = ev.ExpiresAt
			copy[ev.Key] = cur
		}
	}
}

// apply applies watch events to the copy and moves its revision.
func (m *Mirror) apply(evs []kv.Event) {
	changed := evs[:0:0]
	m.mu.Lock()
	for _, ev := range evs {
		if ev.Revision <= m.rev {
			continue // replayed: already applied
		}
		if ev.Type != kv.EventProgress && strings.HasPrefix(ev.Key, m.prefix) {
			applyTo(m.entries, ev)
			changed = append(changed, ev)
		}
		m.rev = ev.Revision
	}
	m.signalLocked()
	m.mu.Unlock()
	if len(changed) > 0 && m.onChange != nil {
		m.onChange(changed)
	}
}

func (m *Mirror) signalLocked() {
	close(m.moved)
	m.moved = make(chan struct{})
}
