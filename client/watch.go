package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	apipb "github.com/kvhost/kvhost/api/kvhostv1"
	"github.com/kvhost/kvhost/kv"
)

// WatchOption shapes a Watch.
type WatchOption func(*apipb.WatchRequest)

// FromRevision replays every change from revision rev on (resume with the
// last revision seen plus one; after a List, its Revision plus one), then
// continues live. A revision older than the history the server keeps fails
// with an error wrapping ErrCompacted (a *kv.CompactedError naming the
// oldest revision still available).
func FromRevision(rev int64) WatchOption {
	return func(r *apipb.WatchRequest) { r.StartRevision = rev }
}

// WithTTLEvents also delivers kv.EventTTL events: a key's expiry changed
// (RefreshTTL) while its value and version did not.
func WithTTLEvents() WatchOption {
	return func(r *apipb.WatchRequest) { r.TtlEvents = true }
}

// WithProgressInterval sets how often an idle watch receives a
// kv.EventProgress (default 5s; negative: never).
func WithProgressInterval(d time.Duration) WatchOption {
	return func(r *apipb.WatchRequest) {
		r.ProgressIntervalMs = kv.TTLMillis(d)
		if d < 0 {
			r.ProgressIntervalMs = -1
		}
	}
}

// ExactKey narrows a Watch to the one key equal to its prefix: changes to
// longer keys ("key/child", "keyx") are not delivered. Progress events
// still are, also while only those other keys change, so a resume point
// stays fresh. The prefix must not be empty.
func ExactKey() WatchOption {
	return func(r *apipb.WatchRequest) { r.Exact = true }
}

// Watch subscribes to changes under prefix ("" for all of the tenant's
// keys). It returns once the server says the subscription is live: every
// change from FromRevision (or, without it, committed after Watch returns)
// arrives exactly once, in revision order, with no gap. An idle watch
// receives a kv.EventProgress now and then, saying every change up to its
// Revision has been delivered. The stream ends when ctx is done (Recv
// returns the context's error) or on Close (ErrClosed); a watcher that fell
// behind gets ErrWatchOverflow and watches again from its last revision
// plus one. Close the stream when done with it: it holds a server-side
// subscription.
func (c *Client) Watch(ctx context.Context, prefix string, opts ...WatchOption) (kv.WatchStream, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	req := &apipb.WatchRequest{Prefix: prefix}
	for _, opt := range opts {
		opt(req)
	}
	if err := kv.ValidateWatch(kv.WatchRequest{Prefix: prefix, StartRevision: req.StartRevision}); err != nil {
		return nil, err
	}
	if req.Exact && prefix == "" {
		return nil, fmt.Errorf("%w: an exact-key watch needs a key, not the empty prefix", ErrInvalidArgument)
	}
	ctx, cancel := context.WithCancel(ctx)
	st, err := c.rpc.Watch(ctx, req)
	if err != nil {
		cancel()
		return nil, c.wireErr(err)
	}
	first, err := st.Recv()
	if err != nil {
		cancel()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: watch stream ended before it was ready", ErrUnavailable)
		}
		return nil, c.wireErr(err)
	}
	if !first.Ready {
		cancel()
		return nil, fmt.Errorf("%w: watch stream did not start with ready", ErrInternal)
	}
	ws := &watchStream{c: c, st: st, cancel: cancel}
	if req.Exact {
		ws.exact = &prefix
	}
	return ws, nil
}

type watchStream struct {
	c       *Client
	st      apipb.KV_WatchClient
	cancel  context.CancelFunc
	closed  atomic.Bool
	pending []*apipb.Event // received, not yet returned
	// exact, for an exact-key watch, is the key: the stream drops other
	// keys' events too, in case the server predates exact watches and
	// sent the whole prefix.
	exact *string
}

func (s *watchStream) Recv() (kv.Event, error) {
	for {
		for len(s.pending) == 0 {
			m, err := s.st.Recv()
			if err != nil {
				if s.closed.Load() {
					return kv.Event{}, ErrClosed
				}
				if errors.Is(err, io.EOF) {
					return kv.Event{}, fmt.Errorf("%w: watch stream ended by the server", ErrUnavailable)
				}
				return kv.Event{}, s.c.wireErr(err)
			}
			s.pending = m.Events
		}
		ev := s.pending[0]
		s.pending = s.pending[1:]
		if s.exact != nil && ev.Type != apipb.Event_TYPE_PROGRESS && ev.Key != *s.exact {
			continue
		}
		return kv.Event{Type: kv.EventType(ev.Type), Key: ev.Key, Value: ev.Value, Version: ev.Version,
			Revision: ev.Revision, ExpiresAt: kv.FromUnixMillis(ev.ExpiresAtMs)}, nil
	}
}

func (s *watchStream) Close() error {
	s.closed.Store(true)
	s.cancel()
	return nil
}
