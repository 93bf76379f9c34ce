package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi"
)

// Watch across hosts. Every write script appends its events to the
// store's stream in the step that applies it, so the stream is the
// store's history in revision order, whoever wrote. One goroutine per
// Store, the follower, reads the stream (XREAD BLOCK from the last
// revision it published) and publishes every event to the Store's
// WatchHub, its own writes included: there is one order, the stream's.
// A watch from a revision replays the stream (ReadHistory, XRANGE)
// through the hub and then joins the fan-out.
//
// The follower reads only while someone watches: with no watcher it
// waits, and when a watch comes it jumps to the store's current revision
// (nothing in between had anyone to go to).
//
// The follower's connection may fail. It then reconnects and goes on from
// the last revision it published. If that revision has been trimmed from
// the stream meanwhile, or the store lost its data (its epoch changed, or
// its revision went back), the hub's generation ends: every open watch
// ends with a *kv.CompactedError (watch again from a list's revision) and
// a new hub takes over from the store's revision.

// followBlock is how long one XREAD waits for new entries; when it
// returns empty the follower checks that the store is still the one it
// follows, and stops if nobody watches any more.
const followBlock = 2 * time.Second

// followCount bounds the entries one XREAD returns: chunks of up to 1000
// changes and about 1 MiB each.
const followCount = 16

// historyPage and historyBytes bound one script's read of the history,
// in stream entries (chunks of up to 1000 changes) and value bytes.
const (
	historyPage  = 64
	historyBytes = pluginapi.HistoryPageBytes
)

// generation is one WatchHub and why it ended.
type generation struct {
	hub *pluginapi.WatchHub
	mu  sync.Mutex
	err error // why the generation ended; nil while it lives and when the store closed
}

func newGeneration(buffer int, rev int64) *generation {
	g := &generation{hub: pluginapi.NewWatchHub(buffer)}
	g.hub.SetRevision(rev)
	return g
}

// end ends every stream of the generation with err (kv.ErrClosed when
// err is nil).
func (g *generation) end(err error) {
	g.mu.Lock()
	g.err = err
	g.mu.Unlock()
	g.hub.Close()
}

// reason is why the generation ended, or nil.
func (g *generation) reason() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

// Watch subscribes to changes under req.Prefix, replaying them from
// req.StartRevision (from the stream) when it is set.
func (s *Store) Watch(ctx context.Context, req kv.WatchRequest) (kv.WatchStream, error) {
	if err := kv.ValidateWatch(req); err != nil {
		return nil, err
	}
	fail := func(err error) error {
		return fmt.Errorf("redis: watch %q from revision %d: %w", req.Prefix, req.StartRevision, err)
	}
	if s.closed.Load() {
		return nil, fail(kv.ErrClosed)
	}
	s.mu.Lock()
	s.watchers++
	s.wake.Broadcast()
	s.mu.Unlock()
	var once sync.Once
	release := func() {
		once.Do(func() {
			s.mu.Lock()
			s.watchers--
			s.mu.Unlock()
		})
	}
	gen, err := s.joinFollower(ctx, req.StartRevision == 0)
	if err != nil {
		release()
		return nil, fail(err)
	}
	ws, err := gen.hub.Subscribe(ctx, req, s)
	if err != nil {
		release()
		if r := gen.reason(); r != nil && errors.Is(err, kv.ErrClosed) {
			err = r
		}
		return nil, fail(err)
	}
	w := &stream{ws: ws, gen: gen, release: release}
	context.AfterFunc(ctx, release)
	return w, nil
}

// joinFollower waits until the follower reads the stream, and with
// caughtUp until it has published every change committed before the call,
// so that a watch from now starts after them. It returns the generation
// to subscribe to.
func (s *Store) joinFollower(ctx context.Context, caughtUp bool) (*generation, error) {
	target := int64(-1)
	if caughtUp {
		rev, err := s.head(ctx)
		if err != nil {
			return nil, err
		}
		target = rev
	}
	bound := s.cfg.DialTimeout + s.cfg.Timeout
	timer := time.NewTimer(bound)
	defer timer.Stop()
	for {
		s.mu.Lock()
		ready := s.following && s.gen.hub.Revision() >= target
		gen, advanced := s.gen, s.advanced
		s.mu.Unlock()
		if ready {
			return gen, nil
		}
		if s.closed.Load() {
			return nil, kv.ErrClosed
		}
		select {
		case <-advanced:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timer.C:
			return nil, fmt.Errorf("%w: the event stream could not be followed up to revision %d within %v", kv.ErrUnavailable, target, bound)
		}
	}
}

// stream is one watch: the hub's stream, which ends with the
// generation's reason when the generation ends under it.
type stream struct {
	ws      kv.WatchStream
	gen     *generation
	closed  atomic.Bool
	release func()
}

var _ kv.BatchReceiver = (*stream)(nil)

func (w *stream) Recv() (kv.Event, error) {
	ev, err := w.ws.Recv()
	if err != nil {
		w.release()
		if errors.Is(err, kv.ErrClosed) && !w.closed.Load() {
			if r := w.gen.reason(); r != nil {
				return kv.Event{}, r
			}
		}
	}
	return ev, err
}

func (w *stream) RecvMore(buf []kv.Event, max int) []kv.Event {
	if br, ok := w.ws.(kv.BatchReceiver); ok {
		return br.RecvMore(buf, max)
	}
	return buf
}

func (w *stream) Close() error {
	w.closed.Store(true)
	w.release()
	return w.ws.Close()
}

// replaceGen ends the current generation with err and starts a new one at
// rev. Caller holds s.mu.
func (s *Store) replaceGen(rev int64, err error) {
	old := s.gen
	s.gen = newGeneration(s.cfg.WatchBuffer, rev)
	old.end(err)
	if s.closed.Load() { // Close ended the old one already, or will find this one
		s.gen.end(nil)
	}
}

// advance wakes whoever waits for the follower. Caller holds s.mu.
func (s *Store) advance() {
	close(s.advanced)
	s.advanced = make(chan struct{})
}

// follow is the follower goroutine.
func (s *Store) follow() {
	defer close(s.followed)
	ctx := context.Background() // Close interrupts a blocked read by closing the client
	backoff := time.Duration(0)
	failing, resync := false, false
	for {
		s.mu.Lock()
		for s.watchers == 0 && !s.closed.Load() {
			s.following = false
			s.wake.Wait()
		}
		if s.closed.Load() {
			s.following = false
			s.mu.Unlock()
			return
		}
		resync = resync || !s.following
		s.mu.Unlock()

		got, err := s.readStream(ctx, resync)
		switch {
		case s.closed.Load():
			continue
		case errors.Is(err, errStoreChanged):
			resync = true
			continue
		case err != nil:
			resync = true
			if !failing {
				s.log.Warn("following the event stream failed; watches wait, and resume when Redis answers", "error", s.mapErr(err))
				failing = true
			}
			backoff = min(max(2*backoff, 50*time.Millisecond), 2*time.Second)
			s.pause(backoff)
			continue
		}
		if failing {
			s.log.Info("following the event stream again")
			failing = false
		}
		backoff, resync = 0, false
		if len(got) > 0 {
			s.publish(got)
		}
	}
}

// readStream resyncs when asked, then reads the stream's next entries,
// waiting up to followBlock for them. When none come it checks that the
// store is still the one it follows.
func (s *Store) readStream(ctx context.Context, resync bool) ([]any, error) {
	if resync {
		if err := s.resync(ctx); err != nil {
			return nil, err
		}
	}
	if s.beforeRead != nil {
		s.beforeRead()
	}
	s.mu.Lock()
	last := s.last
	s.mu.Unlock()
	block := min(followBlock, s.cfg.Timeout/2) // the read must not time out while Redis waits
	reply, err := s.rdb.Do(ctx, "XREAD", "COUNT", followCount, "BLOCK", block.Milliseconds(),
		"STREAMS", s.keys[keyEvents], strconv.FormatInt(last, 10)+"-0").Slice()
	switch {
	case errors.Is(err, goredis.Nil):
		return nil, s.checkStore(ctx)
	case err != nil:
		return nil, err
	}
	var entries []any
	if len(reply) == 1 {
		if st := asList(reply[0]); len(st) == 2 {
			entries = asList(st[1])
		}
	}
	if len(entries) == 0 {
		return nil, nil
	}
	// The entries are of the epoch the follower knows only if that is
	// still the store's epoch now: a store that lost its data gets a new
	// epoch before anything is written to it again.
	epoch, err := s.rdb.Get(ctx, s.keys[keyEpoch]).Result()
	if err != nil && !errors.Is(err, goredis.Nil) {
		return nil, err
	}
	s.mu.Lock()
	same := epoch == s.epoch
	s.mu.Unlock()
	if !same {
		return nil, errStoreChanged
	}
	return entries, nil
}

// pause sleeps for d or until the store closes.
func (s *Store) pause(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.stop:
	}
}

// checkStore runs while the stream is idle: it reports an error (so that
// the follower resyncs) if the store's epoch changed or its revision went
// back under the follower, as after a Redis that lost its data without
// the connection noticing (FLUSHALL).
func (s *Store) checkStore(ctx context.Context) error {
	vals, err := s.rdb.MGet(ctx, s.keys[keyEpoch], s.keys[keyRev]).Result()
	if err != nil {
		return err
	}
	epoch, _ := vals[0].(string)
	rev := int64(0)
	if r, ok := vals[1].(string); ok {
		rev, _ = strconv.ParseInt(r, 10, 64)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if epoch != s.epoch || rev < s.last {
		return errStoreChanged
	}
	return nil
}

var errStoreChanged = fmt.Errorf("%w: the store's epoch or revision changed under the follower", kv.ErrUnavailable)

// resync runs init and brings the follower in line with the store: on
// the first read after an idle spell it jumps to the store's revision;
// after the store lost its data it ends the generation.
func (s *Store) resync(ctx context.Context) error {
	epoch, rev, changed, err := s.state(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case epoch != s.epoch || changed || rev < s.last:
		s.log.Warn("the Redis store lost its data or changed under this host; open watches end with the compacted error",
			"last_revision_seen", s.last, "store_revision", rev)
		s.replaceGen(rev, &kv.CompactedError{Requested: s.last + 1, Oldest: rev + 1})
		s.epoch, s.last = epoch, rev
	case !s.following:
		s.gen.hub.SetRevision(rev)
		s.last = max(s.last, rev)
	}
	s.following = true
	s.advance()
	return nil
}

// state returns the store's epoch and revision, running init only when
// it must set one of them (so a Redis out of memory, which refuses
// scripts that may write, does not keep watches from starting).
func (s *Store) state(ctx context.Context) (epoch string, rev int64, changed bool, err error) {
	vals, err := s.rdb.MGet(ctx, s.keys[keyEpoch], s.keys[keyRev]).Result()
	if err != nil {
		return "", 0, false, err
	}
	epoch, _ = vals[0].(string)
	if r, ok := vals[1].(string); ok {
		rev, _ = strconv.ParseInt(r, 10, 64)
	}
	if epoch != "" && rev >= s.seen.Load() {
		return epoch, rev, false, nil
	}
	return s.init(ctx)
}

// publish hands the entries the follower read to the hub, in revision
// order. A gap (entries trimmed before the follower read them) ends the
// generation with the compacted error and starts a new one at the gap.
func (s *Store) publish(entries []any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, raw := range entries {
		var events []kv.Event
		c, err := readChunk(raw)
		if err == nil {
			err = c.events(func(ev kv.Event) bool {
				events = append(events, ev)
				return true
			})
		}
		if err != nil {
			rev := streamRevision(c.id)
			s.log.Error("a stream entry could not be read; open watches end", "error", err)
			s.replaceGen(max(s.last, rev), fmt.Errorf("redis: watch: %w", err))
			s.last = max(s.last, rev)
			continue
		}
		for len(events) > 0 && events[0].Revision <= s.last {
			events = events[1:] // already published (never expected: chunks start after the last)
		}
		if len(events) == 0 {
			continue
		}
		if next := events[0].Revision; next != s.last+1 {
			s.log.Warn("the event stream was trimmed past this host's position; open watches end with the compacted error",
				"last_revision_seen", s.last, "next_in_stream", next)
			s.replaceGen(next-1, &kv.CompactedError{Requested: s.last + 1, Oldest: next})
		}
		s.gen.hub.Publish(events...)
		s.last = events[len(events)-1].Revision
	}
	s.observe(s.last)
	s.advance()
}

// ReadHistory implements pluginapi.History from the stream: the events
// under prefix from revision from on, in revision order, and the last
// revision the answer covers. It reads to the store's head (and answers
// the head) unless it stops early, at limit events or once they hold
// pluginapi.HistoryPageBytes of values (and answers the last event's
// revision). A from older than the history kept is a *kv.CompactedError
// naming the oldest revision kept.
func (s *Store) ReadHistory(ctx context.Context, prefix string, from int64, limit int) ([]kv.Event, int64, error) {
	if err := kv.ValidatePrefix(prefix); err != nil {
		return nil, 0, fmt.Errorf("redis: read history: %w", err)
	}
	if limit <= 0 {
		limit = kv.DefaultListLimit
	}
	fail := func(err error) ([]kv.Event, int64, error) {
		return nil, 0, fmt.Errorf("redis: read history %q from revision %d: %w", prefix, from, err)
	}
	var out []kv.Event
	size := 0
	next := from
	for first := true; ; first = false {
		res, _, err := s.run(ctx, scriptHistory, next, historyPage, historyBytes)
		if err != nil {
			return fail(err)
		}
		rev := asInt(res[1])
		s.observe(rev)
		oldest := s.oldest(rev, asInt(res[2]))
		if first && from < oldest {
			return nil, 0, &kv.CompactedError{Requested: from, Oldest: oldest}
		}
		entries := asList(res[3])
		if len(entries) == 0 {
			if next <= rev { // the entries from next on went while we read
				return nil, 0, &kv.CompactedError{Requested: from, Oldest: oldest}
			}
			return out, rev, nil
		}
		full := false
		for _, raw := range entries {
			c, err := readChunk(raw)
			if err != nil {
				return fail(err)
			}
			if c.first > next { // trimmed while we read: the entries in between are gone
				return nil, 0, &kv.CompactedError{Requested: from, Oldest: max(oldest, c.first)}
			}
			err = c.events(func(ev kv.Event) bool {
				if ev.Revision < next {
					return true
				}
				next = ev.Revision + 1
				if strings.HasPrefix(ev.Key, prefix) {
					out = append(out, ev)
					size += len(ev.Value)
					if full = len(out) == limit || size >= pluginapi.HistoryPageBytes; full {
						return false
					}
				}
				return true
			})
			if err != nil {
				return fail(err)
			}
			if full {
				return out, next - 1, nil
			}
		}
		if next > rev {
			return out, rev, nil
		}
	}
}
