package host

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/kvhost/kvhost/kv"
)

// Tracking is how a client keeps a near cache — entries in its own memory
// — coherent, as Redis's client-side caching does: the client opens a
// tracking session (Store.Track), reads through it (a get whose context
// carries the session, ReadOptions.Tracking), and the session reports
// every later change to a key read that way, once, then stops tracking
// the key until it is read again.
//
// Correctness rests on one order: a tracked read registers its key
// before it reads, so every change committed after the value it read is
// reported. A change the read already saw may be reported too (the client
// drops a fresh entry; harmless). The tracker follows the host's change
// feed after the read cache, so a client told of a change and reading
// again gets a cache that has forgotten it too. While the feed is down
// nothing is tracked: sessions get Reset (forget everything), and Ready
// when the feed is back.

// TrackMessage is what a tracking session tells its client, in order.
type TrackMessage struct {
	// Ready: the host follows the backend's changes; reads tracked from
	// now on will be reported, so the client may cache them.
	Ready bool
	// Reset: the host lost the backend's change stream: forget every
	// tracked read and cache nothing until Ready.
	Reset bool
	// Keys changed since the client read them (the tenant's keys, without
	// its prefix): forget them. Each is tracked again only when read
	// again.
	Keys []string
	// Revision: every change up to this revision to a key the session
	// tracks has been reported (0: nothing is known yet).
	Revision int64
}

// Limits of a tracking session.
const (
	// maxTrackedKeys bounds the keys one session tracks: past it, the
	// session reports one of its keys as changed and stops tracking it,
	// so that the client forgets it too (Redis's tracking-table-max-keys).
	maxTrackedKeys = 1 << 17
	// maxPendingKeys bounds the reports waiting for a slow client; past
	// it the session ends with kv.ErrWatchOverflow.
	maxPendingKeys = 1 << 16
	// trackProgressEvery is how often sessions may hear of progress.
	trackProgressEvery = 20 * time.Millisecond
)

// tracker holds the tracking sessions of one host and follows its change
// feed.
type tracker struct {
	feed *feed

	mu       sync.Mutex
	joined   bool  // a follower of the feed
	serving  bool  // the feed is live
	pos      int64 // the feed's revision
	sessions map[string]*TrackSession
	byKey    map[string]map[*TrackSession]struct{} // backend key → sessions tracking it
	// tick is closed (and replaced) when pos has advanced, at most every
	// trackProgressEvery, to wake idle sessions for a progress report.
	tick        chan struct{}
	tickPending bool
}

func newTracker(f *feed) *tracker {
	return &tracker{feed: f, sessions: map[string]*TrackSession{}, byKey: map[string]map[*TrackSession]struct{}{}, tick: make(chan struct{})}
}

// TrackSession is one client's tracking session. Its methods are safe for
// concurrent use.
type TrackSession struct {
	t      *tracker
	id     string
	prefix string // the tenant's key prefix
	// keys are the backend keys tracked, each with the revision its read
	// was served at once known: changes up to it are already in what the
	// client read, and are not reported.
	keys map[string]int64
	// What Next has to tell, guarded by t.mu.
	pending      []string
	reset, ready bool
	told         int64 // the revision last reported
	err          error
	wake         chan struct{} // cap 1: something to tell, or the end
}

// open starts a session for the tenant whose keys start with prefix.
func (t *tracker) open(prefix string) (*TrackSession, error) {
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, fmt.Errorf("tracking session id: %w", err)
	}
	s := &TrackSession{t: t, id: hex.EncodeToString(raw[:]), prefix: prefix, keys: map[string]int64{}, wake: make(chan struct{}, 1)}
	t.mu.Lock()
	t.sessions[s.id] = s
	s.ready = t.serving
	join := !t.joined
	t.joined = true
	t.mu.Unlock()
	if join {
		t.feed.add(t)
	}
	return s, nil
}

// ID names the session for tracked reads (ReadOptions.Tracking).
func (s *TrackSession) ID() string { return s.id }

// Next waits for what the client must be told next: Ready or Reset, the
// keys that changed, or progress (Revision alone). It fails when ctx ends
// and when the session did (kv.ErrWatchOverflow: the client fell too far
// behind; kv.ErrClosed).
func (s *TrackSession) Next(ctx context.Context) (TrackMessage, error) {
	t := s.t
	for {
		t.mu.Lock()
		msg, ok := s.take()
		err, tick := s.err, t.tick
		t.mu.Unlock()
		if ok {
			return msg, nil
		}
		if err != nil {
			return TrackMessage{}, err
		}
		select {
		case <-s.wake:
		case <-tick:
		case <-ctx.Done():
			return TrackMessage{}, ctx.Err()
		}
	}
}

// take returns what there is to tell, if anything. Keys changed up to
// t.pos are all in pending by the time pos is set (event), so a message
// may say every change up to pos has been reported.
func (s *TrackSession) take() (TrackMessage, bool) {
	t := s.t
	switch {
	case s.reset:
		s.reset = false
		return TrackMessage{Reset: true}, true
	case s.ready:
		s.ready = false
		s.told = t.pos
		return TrackMessage{Ready: true, Revision: t.pos}, true
	case len(s.pending) > 0:
		keys := make([]string, len(s.pending))
		for i, k := range s.pending {
			keys[i] = strings.TrimPrefix(k, s.prefix)
		}
		s.pending = s.pending[:0]
		s.told = t.pos
		return TrackMessage{Keys: keys, Revision: t.pos}, true
	case t.serving && t.pos > s.told:
		s.told = t.pos
		return TrackMessage{Revision: t.pos}, true
	}
	return TrackMessage{}, false
}

// Close ends the session and forgets what it tracked.
func (s *TrackSession) Close() {
	t := s.t
	t.mu.Lock()
	defer t.mu.Unlock()
	s.endLocked(kv.ErrClosed)
}

// endLocked ends the session with err.
func (s *TrackSession) endLocked(err error) {
	t := s.t
	if s.err != nil {
		return
	}
	s.err = err
	delete(t.sessions, s.id)
	for k := range s.keys {
		t.untrackLocked(k, s)
	}
	s.keys, s.pending = nil, nil
	s.signal()
}

func (s *TrackSession) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// track registers a read of key (a backend key) by session id, before
// the read, and says whether it is tracked: the session exists, belongs
// to the key's tenant and the feed is live.
func (t *tracker) track(id, key string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.sessions[id]
	if s == nil || !t.serving || !strings.HasPrefix(key, s.prefix) {
		return false
	}
	if _, ok := s.keys[key]; ok {
		return true
	}
	if len(s.keys) >= maxTrackedKeys {
		for old := range s.keys { // a random one: map order
			t.reportLocked(old, s)
			break
		}
		if s.err != nil {
			return false
		}
	}
	s.keys[key] = 0
	subs := t.byKey[key]
	if subs == nil {
		subs = map[*TrackSession]struct{}{}
		t.byKey[key] = subs
	}
	subs[s] = struct{}{}
	return true
}

// served records the revision a tracked read of key was served at.
func (t *tracker) served(id, key string, rev int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.sessions[id]; s != nil {
		if seen, ok := s.keys[key]; ok && rev > seen {
			s.keys[key] = rev
		}
	}
}

// reportLocked tells s that key changed and stops tracking it for s.
func (t *tracker) reportLocked(key string, s *TrackSession) {
	t.untrackLocked(key, s)
	delete(s.keys, key)
	if len(s.pending) >= maxPendingKeys {
		s.endLocked(fmt.Errorf("%w: the client read fewer reports of changed keys than were made", kv.ErrWatchOverflow))
		return
	}
	s.pending = append(s.pending, key)
	s.signal()
}

func (t *tracker) untrackLocked(key string, s *TrackSession) {
	if subs := t.byKey[key]; subs != nil {
		delete(subs, s)
		if len(subs) == 0 {
			delete(t.byKey, key)
		}
	}
}

// live: the feed is up; sessions may cache what they read from now on.
func (t *tracker) live() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.serving = true
	for _, s := range t.sessions {
		s.ready = true
		s.signal()
	}
}

// event reports a change to the sessions tracking its key.
func (t *tracker) event(ev kv.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if ev.Type != kv.EventProgress {
		for s := range t.byKey[ev.Key] {
			if ev.Revision > s.keys[ev.Key] {
				t.reportLocked(ev.Key, s)
			}
		}
	}
	if ev.Revision > t.pos {
		t.pos = ev.Revision
		if !t.tickPending {
			t.tickPending = true
			time.AfterFunc(trackProgressEvery, t.tock)
		}
	}
}

// tock wakes idle sessions to report progress.
func (t *tracker) tock() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.tickPending = false
	close(t.tick)
	t.tick = make(chan struct{})
}

// lost: the feed ended, and with it every guarantee: sessions forget all
// they tracked and are told to reset.
func (t *tracker) lost() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.serving = false
	t.pos = 0 // a backend that lost its data (memory) starts again from 0
	t.resetAllLocked()
	for _, s := range t.sessions {
		s.told = 0
	}
}

// resetAll tells every session to forget what it tracked and, if the
// feed is live, that it may cache again: what a client read under rules
// that have since changed must be read again.
func (t *tracker) resetAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.resetAllLocked()
}

func (t *tracker) resetAllLocked() {
	clear(t.byKey)
	for _, s := range t.sessions {
		clear(s.keys)
		s.pending = s.pending[:0]
		s.reset, s.ready = true, t.serving
		s.signal()
	}
}

// followGuard resets every session each time g's rules change, until
// stop is closed.
func (t *tracker) followGuard(g ChangingGuard, stop <-chan struct{}) {
	for {
		select {
		case <-g.Changed():
			t.resetAll()
		case <-stop:
			return
		}
	}
}

// figures reports the sessions and the keys they track.
func (t *tracker) figures() trackingFigures {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := trackingFigures{sessions: len(t.sessions)}
	for _, s := range t.sessions {
		f.keys += len(s.keys)
	}
	return f
}
