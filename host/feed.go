package host

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/kvhost/kvhost/kv"
)

// follower is what the change feed hands the backend's stream to: the read
// cache and the tracker of clients' near caches. The feed calls it from
// one goroutine, in order: live when a stream is up (every change
// committed from then on will be handed over), then the stream's events
// in revision order, then lost when the stream ends (nothing can be
// vouched for until live again).
type follower interface {
	live()
	event(ev kv.Event)
	lost()
}

// feed follows the backend's change stream — every key, TTL changes
// included — for as long as the host runs, resubscribing with backoff
// when it ends, and hands it to its followers. It starts with its first
// follower, so a host that neither caches nor tracks holds no stream.
type feed struct {
	backend backend
	log     *slog.Logger

	mu        sync.Mutex
	followers []follower
	stream    kv.WatchStream // the live stream, for cut
	started   bool
	stop      context.CancelFunc
	done      chan struct{}
}

func newFeed(b backend, log *slog.Logger) *feed {
	return &feed{backend: b, log: log, done: make(chan struct{})}
}

// add makes f a follower and starts the feed if it was idle. A follower
// added to a running feed hears nothing until the next stream is live,
// so that it never takes a stream for live that it did not see begin:
// add restarts the stream.
func (f *feed) add(fl follower) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.followers = append(f.followers, fl)
	if !f.started {
		f.started = true
		ctx, cancel := context.WithCancel(context.Background())
		f.stop = cancel
		go f.follow(ctx)
		return
	}
	if f.stream != nil {
		_ = f.stream.Close() // the followers hear lost, then live with the newcomer
	}
}

// close stops the feed and waits for it.
func (f *feed) close() {
	f.mu.Lock()
	started := f.started
	if started {
		f.stop()
	}
	f.mu.Unlock()
	if started {
		<-f.done
	}
}

func (f *feed) follow(ctx context.Context) {
	defer close(f.done)
	wait := 10 * time.Millisecond
	for ctx.Err() == nil {
		ws, err := f.backend.Watch(ctx, kv.WatchRequest{TTLEvents: true})
		if err == nil {
			wait = 10 * time.Millisecond
			err = f.consume(ws)
		}
		if ctx.Err() != nil {
			return
		}
		f.log.Debug("change feed ended; caches are empty until it is back", "err", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
		wait = min(2*wait, time.Second)
	}
}

// consume hands the stream's events to the followers it went live with,
// in the order they were added (the cache before the tracker: a client
// told of a change reads a cache that already forgot it), until it ends.
func (f *feed) consume(ws kv.WatchStream) error {
	f.mu.Lock()
	f.stream = ws
	fls := f.followers
	f.mu.Unlock()
	defer func() {
		_ = ws.Close()
		f.mu.Lock()
		f.stream = nil
		f.mu.Unlock()
		for _, fl := range fls {
			fl.lost()
		}
	}()
	for _, fl := range fls {
		fl.live()
	}
	for {
		ev, err := ws.Recv()
		if err != nil {
			return err
		}
		for _, fl := range fls {
			fl.event(ev)
		}
	}
}

// cut ends the stream as a lost connection would (tests).
func (f *feed) cut() bool {
	f.mu.Lock()
	ws := f.stream
	f.mu.Unlock()
	if ws != nil {
		_ = ws.Close()
	}
	return ws != nil
}
