package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	kv "github.com/kvhost/kvhost/api/kvhostv1"
	"github.com/kvhost/kvhost/pluginapi"
)

// Watch subscribes to changes under prefix ("" for all of the tenant's
// keys). It returns once the server says the subscription is live: every
// change committed after that arrives exactly once, in commit order. The
// stream ends when ctx is done (Recv returns the context's error) or on
// Close (ErrClosed); a watcher that fell behind gets ErrWatchOverflow.
// Close the stream when done with it: it holds a server-side subscription.
func (c *Client) Watch(ctx context.Context, prefix string) (kv.WatchStream, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	if err := kv.ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	st, err := c.rpc.Watch(ctx, &kv.WatchRequest{Prefix: prefix})
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
	return &watchStream{c: c, st: st, cancel: cancel}, nil
}

type watchStream struct {
	c       *Client
	st      kv.KV_WatchClient
	cancel  context.CancelFunc
	closed  atomic.Bool
	pending []*kv.Event // received, not yet returned
}

func (s *watchStream) Recv() (kv.Event, error) {
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
	return kv.Event{Type: kv.EventType(ev.Type), Key: ev.Key, Value: ev.Value, Version: ev.Version}, nil
}

func (s *watchStream) Close() error {
	s.closed.Store(true)
	s.cancel()
	return nil
}
