package client

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	apipb "github.com/kvhost/kvhost/api/kvhostv1"
	"github.com/kvhost/kvhost/internal/cachemap"
	"github.com/kvhost/kvhost/kv"
)

// WithNearCache keeps what this client reads with Get and Read in its own
// memory, up to maxBytes (keys, values and about 64 bytes per entry), so
// that a hot key is read without a round trip: a hit costs well under a
// microsecond.
//
// The server keeps it coherent: every key read into the cache is
// tracked by a session the client holds open (the Track RPC), and the
// server pushes a report when the key changes, whichever client or host
// changed it; the client then forgets the key. The client's own writes
// forget their keys before they are sent and after they return, and
// nothing is served or kept for a key while a write to it is in flight,
// so a client always reads its own writes. What the cache serves is at
// least as new as the client's own last write of the key and as every
// report delivered to it; it is not linearizable (another client's write
// is seen once its report arrives, typically well under a millisecond
// later on one machine). Ask Linearizable for a read that goes to the
// server.
//
// While the tracking stream is down (the server restarted, the network
// failed) the cache is empty and every read goes to the server, until the
// client has a new session. An entry is never served at or past its
// expiry by this machine's clock. GetMany, List and the other reads are
// not cached.
func WithNearCache(maxBytes int64) Option {
	return func(o *options) { o.nearBytes = maxBytes }
}

// ReadOption configures Get and Read.
type ReadOption func(*readOptions)

type readOptions struct{ linearizable bool }

func readOpts(opts []ReadOption) readOptions {
	var o readOptions
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// Linearizable asks for a read that no acknowledged write can be missing
// from: it skips the near cache, and a host that caches reads of a
// backend it shares with other hosts reads the backend.
func Linearizable() ReadOption {
	return func(o *readOptions) { o.linearizable = true }
}

// NearCacheStats describe the near cache (WithNearCache).
type NearCacheStats struct {
	// Hits and Misses count reads served from it and passed to the server.
	Hits, Misses uint64
	// Entries and Bytes are what it holds.
	Entries int
	Bytes   int64
	// Serving says whether its tracking session is up, so that it serves.
	Serving bool
}

// NearCacheStats reports the near cache's figures (zero without one).
func (c *Client) NearCacheStats() NearCacheStats {
	n := c.near
	if n == nil {
		return NearCacheStats{}
	}
	entries, bytes := n.m.Size()
	n.mu.Lock()
	serving := n.serving
	n.mu.Unlock()
	return NearCacheStats{Hits: n.hits.Load(), Misses: n.misses.Load(), Entries: entries, Bytes: bytes, Serving: serving}
}

// nearCache is the client's side of tracking: the entries (a
// cachemap.Map kept by the tracking session's reports) and the session.
type nearCache struct {
	rpc          apipb.KVClient
	m            *cachemap.Map[kv.GetResult]
	now          func() time.Time
	hits, misses atomic.Uint64

	mu      sync.Mutex
	id      string // the tracking session's id, "" while there is none
	serving bool

	stop context.CancelFunc
	done chan struct{}
}

func newNearCache(rpc apipb.KVClient, maxBytes int64) *nearCache {
	ctx, cancel := context.WithCancel(context.Background())
	n := &nearCache{rpc: rpc, now: time.Now, stop: cancel, done: make(chan struct{}),
		m: cachemap.New(maxBytes, func(key string, r kv.GetResult) int64 { return int64(len(key) + len(r.Entry.Value) + 64) })}
	go n.follow(ctx)
	return n
}

func (n *nearCache) close() {
	n.stop()
	<-n.done
}

// read serves key from the cache when it can, and otherwise asks the
// server (registering the key with the session) and keeps the answer if
// the server tracks it and nothing changed it meanwhile.
func (n *nearCache) read(ctx context.Context, c *Client, key string) (kv.GetResult, error) {
	r, pos, found, ticket := n.m.Lookup(key)
	if found && !kv.Expired(r.Entry.ExpiresAt, n.now()) {
		n.hits.Add(1)
		r.Revision = max(r.Revision, pos)
		r.Entry.Value = append([]byte{}, r.Entry.Value...)
		return r, nil
	}
	n.misses.Add(1)
	n.mu.Lock()
	id := n.id
	n.mu.Unlock()
	resp, err := c.rpc.Get(ctx, &apipb.GetRequest{Key: key, TrackingId: id, AllowMissing: true})
	if err != nil {
		return kv.GetResult{}, c.wireErr(err)
	}
	res := getResult(resp)
	if resp.Tracked {
		kept := res
		kept.Entry.Value = append([]byte{}, res.Entry.Value...)
		n.m.Fill(ticket, kept)
	}
	return res, nil
}

// follow keeps a tracking session open for the client's lifetime.
func (n *nearCache) follow(ctx context.Context) {
	defer close(n.done)
	wait := 10 * time.Millisecond
	for ctx.Err() == nil {
		served, _ := n.session(ctx)
		n.mu.Lock()
		n.id, n.serving = "", false
		n.mu.Unlock()
		n.m.Reset()
		if served {
			wait = 10 * time.Millisecond
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// session runs one tracking session until its stream ends, and says
// whether it ever served.
func (n *nearCache) session(ctx context.Context) (served bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := n.rpc.Track(ctx, &apipb.TrackRequest{})
	if err != nil {
		return false, err
	}
	first, err := st.Recv()
	if err != nil {
		return false, err
	}
	n.mu.Lock()
	n.id = first.TrackingId
	n.mu.Unlock()
	for {
		m, err := st.Recv()
		if err != nil {
			return served, err
		}
		switch {
		case m.Reset_:
			n.setServing(false)
			n.m.Reset()
		case m.Ready:
			served = true
			n.m.Serve()
			n.setServing(true)
		}
		n.m.Changed(m.Revision, m.Keys...)
	}
}

func (n *nearCache) setServing(on bool) {
	n.mu.Lock()
	n.serving = on
	n.mu.Unlock()
}

// writing brackets a write to keys (every key, when wide) for the near
// cache, if there is one: call the returned function when it returned.
func (c *Client) writing(wide bool, keys ...string) func() {
	if c.near == nil {
		return func() {}
	}
	return c.near.m.Begin(keys, wide)
}
