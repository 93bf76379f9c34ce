package pluginapi

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvhost/kvhost/kv"
)

// DefaultWatchBuffer is how many live events a subscriber may fall behind
// before its stream is ended with kv.ErrWatchOverflow.
const DefaultWatchBuffer = 4096

// historyPage is how many events a replaying watch reads at a time.
const historyPage = 1000

// HistoryPageBytes is the value bytes a ReadHistory page should stop
// after, so that replaying large values holds bounded memory.
const HistoryPageBytes = 4 << 20

// History is what a backend that keeps history gives WatchHub to replay
// from. ReadHistory returns, in revision order, the committed events under
// prefix with a revision at or after from, and through, the last revision
// its answer covers: every matching event with a revision from from to
// through is in events, none after. A read that goes to the store's head
// answers the head as through; one that stops early — at limit events,
// after HistoryPageBytes of values, or at a bound of its own on what it
// reads — answers the last revision it read (at least its last event's,
// and at least from when there was history to read). A from older than
// the history kept is a *kv.CompactedError.
type History interface {
	ReadHistory(ctx context.Context, prefix string, from int64, limit int) (events []kv.Event, through int64, err error)
}

// WatchHub fans committed events out to watch subscribers, and replays
// history to those that start at an earlier revision. It is the piece of
// a backend's watch support that does not depend on storage: a backend
// sets the revision it opened at (SetRevision), calls Publish after each
// commit with that commit's events in revision order (typically while
// still holding its write lock, which Publish never blocks on), and serves
// Watch with Subscribe.
//
// A subscriber that starts at an earlier revision first reads history
// page by page without holding anything, joins the live fan-out once it
// has caught up, and reads the few events committed in between: every
// event arrives once, in revision order, with no gap. A slow subscriber
// never blocks Publish: when its buffer is full its stream ends with
// kv.ErrWatchOverflow after the events it already holds. An idle
// subscriber gets a kv.EventProgress every progress interval. Published
// events are shared between subscribers and must not be mutated.
type WatchHub struct {
	mu     sync.Mutex
	subs   map[*hubStream]struct{}
	buffer int
	rev    int64 // the last revision published (or set)
	closed bool
}

// NewWatchHub returns a hub whose subscribers buffer up to buffer events
// (DefaultWatchBuffer when buffer <= 0).
func NewWatchHub(buffer int) *WatchHub {
	if buffer <= 0 {
		buffer = DefaultWatchBuffer
	}
	return &WatchHub{subs: make(map[*hubStream]struct{}), buffer: buffer}
}

// SetRevision tells the hub the store's current revision, when the
// backend opens (or when it learns of changes it has no events for).
func (h *WatchHub) SetRevision(rev int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rev = max(h.rev, rev)
}

// Revision returns the last revision published.
func (h *WatchHub) Revision() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rev
}

// Publish delivers one commit's events, in revision order, to every
// subscriber that wants them.
func (h *WatchHub) Publish(events ...kv.Event) {
	if len(events) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		for _, ev := range events {
			if !s.wants(ev) {
				continue
			}
			select {
			case s.ch <- ev:
			default:
				h.endLocked(s, kv.ErrWatchOverflow)
			}
			if s.err != nil {
				break
			}
		}
	}
	h.rev = max(h.rev, events[len(events)-1].Revision)
}

// Subscribers returns how many subscriptions are live.
func (h *WatchHub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// Close ends every subscription with kv.ErrClosed and refuses new ones.
func (h *WatchHub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.subs {
		h.endLocked(s, kv.ErrClosed)
	}
}

// Subscribe starts a subscription. With StartRevision 0 it is live when
// Subscribe returns: every event published afterwards is delivered. With a
// StartRevision it replays from history (nil history: kv.ErrNotSupported)
// and a start older than the history kept fails here with a
// *kv.CompactedError. It ends when ctx is done, on Close, or on overflow.
func (h *WatchHub) Subscribe(ctx context.Context, req kv.WatchRequest, history History) (kv.WatchStream, error) {
	if err := kv.ValidateWatch(req); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	interval := req.ProgressInterval
	if interval == 0 {
		interval = kv.DefaultProgressInterval
	}
	s := &hubStream{hub: h, ctx: ctx, req: req, history: history, interval: interval, ch: make(chan kv.Event, h.buffer)}
	if req.StartRevision == 0 {
		if err := h.register(s, 0); err != nil {
			return nil, err
		}
	} else {
		if history == nil {
			return nil, fmt.Errorf("%w: watch from a revision needs history, which this backend does not keep", kv.ErrNotSupported)
		}
		s.next = req.StartRevision
		if err := s.fill(); err != nil { // the first page: a compacted start fails Watch itself
			return nil, err
		}
	}
	return s, nil
}

// register adds s to the live fan-out: it receives every event after the
// hub's current revision, which register returns.
func (h *WatchHub) register(s *hubStream, from int64) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || s.closed.Load() {
		return kv.ErrClosed
	}
	s.minLive = max(h.rev+1, from)
	s.live = true
	h.subs[s] = struct{}{}
	s.stop = context.AfterFunc(s.ctx, func() { h.end(s, s.ctx.Err()) })
	return nil
}

func (h *WatchHub) end(s *hubStream, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.endLocked(s, err)
}

func (h *WatchHub) endLocked(s *hubStream, err error) {
	if _, ok := h.subs[s]; !ok {
		return
	}
	delete(h.subs, s)
	s.err = err
	close(s.ch)
}

// progress returns a progress event for s if nothing is waiting for it:
// under the hub's lock no publish is half done, so every event up to the
// hub's revision is in s's channel or was already received.
func (h *WatchHub) progress(s *hubStream) (kv.Event, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(s.ch) > 0 {
		return kv.Event{}, false
	}
	return kv.Event{Type: kv.EventProgress, Revision: h.rev}, true
}

var _ kv.BatchReceiver = (*hubStream)(nil)

type hubStream struct {
	hub      *WatchHub
	ctx      context.Context
	req      kv.WatchRequest
	history  History
	interval time.Duration

	// Replay state, used only by the receiving goroutine.
	next     int64 // the next revision to read from history
	caughtUp bool  // history has been read up to the head once
	replayed []kv.Event
	closed   atomic.Bool

	// Live state.
	live    bool  // registered with the hub (set under hub.mu)
	minLive int64 // the first revision the fan-out delivers
	ch      chan kv.Event
	stop    func() bool
	err     error // written under hub.mu before ch is closed
}

// wants says whether a published event is for s. Caller holds hub.mu.
func (s *hubStream) wants(ev kv.Event) bool {
	return ev.Revision >= s.minLive && strings.HasPrefix(ev.Key, s.req.Prefix) && (s.req.TTLEvents || ev.Type != kv.EventTTL)
}

// fill reads the next page of history into s.replayed, or, once history
// is read up to the head, joins the fan-out and reads what was committed
// in between.
func (s *hubStream) fill() error {
	if !s.caughtUp {
		evs, through, err := s.read()
		if err != nil {
			return err
		}
		// Caught up once the read reached what the hub has published:
		// joining then leaves only the few events committed meanwhile.
		s.caughtUp = through >= s.hub.Revision()
		s.replayed = s.keep(evs, 0)
		return nil
	}
	if err := s.hub.register(s, s.next); err != nil {
		return err
	}
	// Events from s.next up to minLive-1 were committed before joining:
	// read them from history; the fan-out brings everything after.
	head := s.minLive - 1
	for s.next <= head {
		from := s.next
		evs, through, err := s.read()
		if err != nil {
			return err
		}
		if through < from { // published, so readable: never spin on it
			return fmt.Errorf("%w: history from revision %d is not readable up to published revision %d", kv.ErrInternal, from, head)
		}
		s.replayed = append(s.replayed, s.keep(evs, head)...)
	}
	return nil
}

// read reads the next page of history from s.next and moves s.next past
// what it covered (a start in the future covers nothing yet).
func (s *hubStream) read() ([]kv.Event, int64, error) {
	from := s.next
	evs, through, err := s.history.ReadHistory(s.ctx, s.req.Prefix, from, historyPage)
	if err != nil {
		return nil, 0, err
	}
	s.next = max(from, through+1)
	return evs, through, nil
}

// keep drops the events s does not want (TTL changes unless asked for,
// anything after head when head > 0).
func (s *hubStream) keep(evs []kv.Event, head int64) []kv.Event {
	out := evs[:0:0]
	for _, ev := range evs {
		if head > 0 && ev.Revision > head {
			break
		}
		if ev.Type == kv.EventTTL && !s.req.TTLEvents {
			continue
		}
		out = append(out, ev)
	}
	return out
}

func (s *hubStream) Recv() (kv.Event, error) {
	for !s.live || len(s.replayed) > 0 {
		if s.closed.Load() {
			return kv.Event{}, kv.ErrClosed
		}
		if len(s.replayed) > 0 {
			ev := s.replayed[0]
			s.replayed = s.replayed[1:]
			return ev, nil
		}
		if err := s.ctx.Err(); err != nil {
			return kv.Event{}, err
		}
		if err := s.fill(); err != nil {
			return kv.Event{}, err
		}
	}
	select {
	case ev, ok := <-s.ch:
		return s.received(ev, ok)
	default:
	}
	if s.interval < 0 {
		ev, ok := <-s.ch
		return s.received(ev, ok)
	}
	timer := time.NewTimer(s.interval)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-s.ch:
			return s.received(ev, ok)
		case <-timer.C:
			if p, ok := s.hub.progress(s); ok {
				return p, nil
			}
			timer.Reset(s.interval)
		}
	}
}

func (s *hubStream) received(ev kv.Event, ok bool) (kv.Event, error) {
	if !ok {
		return kv.Event{}, s.err // happens-after the write: close(ch) follows it
	}
	return ev, nil
}

// RecvMore appends to buf the events already waiting, up to max, without
// blocking. The plugin server uses it to send events in batches.
func (s *hubStream) RecvMore(buf []kv.Event, max int) []kv.Event {
	for len(buf) < max && len(s.replayed) > 0 {
		buf = append(buf, s.replayed[0])
		s.replayed = s.replayed[1:]
	}
	if !s.live {
		return buf
	}
	for len(buf) < max {
		select {
		case ev, ok := <-s.ch:
			if !ok {
				return buf // Recv reports the end
			}
			buf = append(buf, ev)
		default:
			return buf
		}
	}
	return buf
}

func (s *hubStream) Close() error {
	if s.stop != nil {
		s.stop()
	}
	s.closed.Store(true)
	s.hub.end(s, kv.ErrClosed)
	return nil
}
