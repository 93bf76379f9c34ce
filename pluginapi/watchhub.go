package pluginapi

import (
	"context"
	"strings"
	"sync"
)

// DefaultWatchBuffer is how many events a subscriber may fall behind
// before its stream is ended with ErrWatchOverflow.
const DefaultWatchBuffer = 4096

// WatchHub fans committed events out to watch subscribers. It is the piece
// of a backend's watch support that does not depend on storage: a backend
// calls Publish after each commit, in commit order (typically while still
// holding its write lock, which Publish never blocks), and serves Watch with
// Subscribe.
//
// A slow subscriber never blocks Publish: when its buffer is full its
// stream ends with ErrWatchOverflow after the events it already holds.
// Published events are shared between subscribers and must not be mutated.
type WatchHub struct {
	mu     sync.Mutex
	subs   map[*hubStream]struct{}
	buffer int
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

// Subscribe starts a subscription to events under prefix. It is live when
// Subscribe returns: every event published afterwards is delivered. It ends
// when ctx is done, on Close, or on overflow.
func (h *WatchHub) Subscribe(ctx context.Context, prefix string) (WatchStream, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := &hubStream{hub: h, prefix: prefix, ch: make(chan Event, h.buffer)}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrClosed
	}
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	s.stop = context.AfterFunc(ctx, func() { h.end(s, ctx.Err()) })
	return s, nil
}

// Publish delivers events to every subscriber whose prefix matches.
func (h *WatchHub) Publish(events ...Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		for _, ev := range events {
			if !strings.HasPrefix(ev.Key, s.prefix) {
				continue
			}
			select {
			case s.ch <- ev:
			default:
				h.endLocked(s, ErrWatchOverflow)
			}
			if s.err != nil {
				break
			}
		}
	}
}

// Subscribers returns how many subscriptions are live.
func (h *WatchHub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// Close ends every subscription with ErrClosed and refuses new ones.
func (h *WatchHub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.subs {
		h.endLocked(s, ErrClosed)
	}
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

// BatchReceiver is implemented by watch streams that can hand over the
// events already waiting without blocking; the plugin server then sends
// them in one message. WatchHub's streams implement it.
type BatchReceiver interface {
	RecvMore(buf []Event, max int) []Event
}

var _ BatchReceiver = (*hubStream)(nil)

type hubStream struct {
	hub    *WatchHub
	prefix string
	ch     chan Event
	stop   func() bool
	err    error // written under hub.mu before ch is closed
}

func (s *hubStream) Recv() (Event, error) {
	ev, ok := <-s.ch
	if !ok {
		return Event{}, s.err // happens-after the write: close(ch) follows it
	}
	return ev, nil
}

// RecvMore appends to buf the events already waiting, up to max, without
// blocking. The plugin server uses it to send events in batches.
func (s *hubStream) RecvMore(buf []Event, max int) []Event {
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
	s.hub.end(s, ErrClosed)
	return nil
}
