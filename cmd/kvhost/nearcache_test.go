package main_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kvhost/kvhost/client"
	"github.com/kvhost/kvhost/internal/netproxy"
	"github.com/kvhost/kvhost/kv"
)

// The caches that are not linearizable — clients' near caches, and the
// host's read cache on a backend several hosts share — promise that every
// read is what the store held at the revision the read says, and is at
// least as new as the reader's own last write. These tests hold them to
// it: writers on every host, readers with near caches on every host
// (through proxies the test cuts), the plugin of one host killed, and
// every read checked against the store's own history of the keys (a
// watch from before the first write).

// freshRead is one read a reader made, with the reader's own last
// acknowledged write to the key before the read began.
type freshRead struct {
	reader, key string
	res         kv.GetResult
	own         int64
}

// keyHistory is the store's history of one key: its changes in revision
// order.
type keyHistory []kv.Event

// at returns what the key held at revision rev.
func (h keyHistory) at(rev int64) (kv.Event, bool) {
	i := sort.Search(len(h), func(i int) bool { return h[i].Revision > rev })
	if i == 0 || h[i-1].Type != kv.EventPut {
		return kv.Event{}, false
	}
	return h[i-1], true
}

// check says what is wrong with a read, or "".
func (r freshRead) check(h keyHistory) string {
	switch want, found := h.at(r.res.Revision); {
	case r.res.Revision < r.own:
		return fmt.Sprintf("served at revision %d, older than the reader's own write at %d", r.res.Revision, r.own)
	case found != r.res.Found:
		return fmt.Sprintf("found=%v, but at revision %d the store had found=%v (%q)", r.res.Found, r.res.Revision, found, want.Value)
	case found && (string(want.Value) != string(r.res.Entry.Value) || want.Version != r.res.Entry.Version):
		return fmt.Sprintf("read %q version %d, but at revision %d the store had %q version %d", r.res.Entry.Value, r.res.Entry.Version, r.res.Revision, want.Value, want.Version)
	}
	return ""
}

func TestCachedReadsAreFresh(t *testing.T) {
	const shared = "cache: {shared: true}\n"
	for _, b := range []struct {
		name  string
		hosts func(t testing.TB) []*server
	}{
		{"sqlite", backendHosts[1].hosts},
		{"postgres", func(t testing.TB) []*server {
			dsn := pgDSN(t)
			schema := pgSchema(t, dsn)
			return []*server{startPGHost(t, dsn, schema, shared), startPGHost(t, dsn, schema, shared)}
		}},
		{"redis", func(t testing.TB) []*server {
			addr := redisAddr(t)
			prefix := redisStore(t, addr)
			return []*server{startRedisHost(t, addr, prefix, shared), startRedisHost(t, addr, prefix, shared)}
		}},
	} {
		t.Run(b.name, func(t *testing.T) { checkFreshReads(t, b.hosts(t)) })
	}
}

// freshBound ends a run that would otherwise hang: the run takes seconds,
// but reconnect backoffs and a plugin restart on a loaded machine can
// stretch it far.
const freshBound = 3 * time.Minute

func checkFreshReads(t *testing.T, hosts []*server) {
	ctx, cancel := context.WithTimeout(t.Context(), freshBound)
	defer cancel()
	const keys, writesPerWriter = 16, 1500
	key := func(rng *rand.Rand) string { return fmt.Sprintf("fresh/k%02d", rng.IntN(keys)) }

	start, err := hosts[0].client(t, "").Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hist := recordHistory(t, ctx, hosts[0].client(t, ""), start.Revision+1)

	var (
		readers []*client.Client
		proxies []*netproxy.Proxy
	)
	for _, h := range hosts {
		p := netproxy.Start(t, h.addr)
		proxies = append(proxies, p)
		for range 2 {
			c, err := client.New(p.Addr(), client.WithNearCache(1<<20))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			readers = append(readers, c)
		}
	}
	for i, c := range readers {
		within(t, time.Minute, fmt.Sprintf("reader %d's tracking session", i), func() bool { return c.NearCacheStats().Serving })
	}

	// Writers, one per host: puts of unique values and deletes.
	var written atomic.Int64
	var writers sync.WaitGroup
	for w, h := range hosts {
		c := h.client(t, "")
		writers.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for i := range writesPerWriter {
				var err error
				if rng.IntN(5) == 0 {
					_, err = c.Delete(ctx, key(rng))
				} else {
					_, err = c.Put(ctx, key(rng), fmt.Appendf(nil, "w%d-%d", w, i))
				}
				if err != nil && !errors.Is(err, client.ErrUnavailable) {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				written.Add(1)
			}
		})
	}

	// Readers: mostly reads, now and then a write of their own.
	var mu sync.Mutex
	var reads []freshRead
	stop := make(chan struct{})
	var readersDone sync.WaitGroup
	for r, c := range readers {
		readersDone.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r), 2))
			own := map[string]int64{}
			var mine []freshRead
			defer func() { mu.Lock(); reads = append(reads, mine...); mu.Unlock() }()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := key(rng)
				if rng.IntN(10) == 0 {
					e, err := c.Put(ctx, k, fmt.Appendf(nil, "r%d-%d", r, i))
					if err == nil {
						own[k] = e.Version
					} else if !errors.Is(err, client.ErrUnavailable) {
						t.Errorf("reader %d's put: %v", r, err)
						return
					}
					continue
				}
				res, err := c.Read(ctx, k)
				if err == nil {
					mine = append(mine, freshRead{reader: fmt.Sprint(r), key: k, res: res, own: own[k]})
				} else if !errors.Is(err, client.ErrUnavailable) {
					t.Errorf("reader %d's read: %v", r, err)
					return
				}
			}
		})
	}

	// Faults, a third and two thirds of the way: every reader's
	// connections cut (tracking sessions and all), then the first host's
	// plugin killed (its change feed lost and found again).
	total := int64(len(hosts) * writesPerWriter)
	waitWritten := func(n int64) {
		within(t, freshBound, fmt.Sprintf("%d writes", n), func() bool { return written.Load() >= n })
	}
	waitWritten(total / 3)
	for _, p := range proxies {
		p.Cut()
	}
	waitWritten(2 * total / 3)
	<-hosts[0].pidChanged // the first start
	if err := syscall.Kill(int(hosts[0].pluginPid.Load()), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-hosts[0].pidChanged:
	case <-ctx.Done():
		t.Fatal("the killed plugin was not restarted")
	}
	writers.Wait()
	close(stop)
	readersDone.Wait()

	end, err := hosts[0].client(t, "").Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h := hist.through(t, end.Revision)
	var hits uint64
	for _, c := range readers {
		hits += c.NearCacheStats().Hits
	}
	bad := 0
	for _, r := range reads {
		if msg := r.check(h[r.key]); msg != "" {
			if bad++; bad <= 10 {
				t.Errorf("reader %s, key %s: %s", r.reader, r.key, msg)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d reads were not what the store held at their revision", bad, len(reads))
	}
	if hits == 0 {
		t.Fatalf("no read of %d was served from a near cache: the run tested nothing", len(reads))
	}
	t.Logf("%d reads checked (%d from near caches) against %d revisions", len(reads), hits, end.Revision-start.Revision)
}

// history is the store's history of changes, recorded by a watch that
// resumes after every break.
type history struct {
	mu    sync.Mutex
	byKey map[string]keyHistory
	last  int64
}

func recordHistory(t *testing.T, ctx context.Context, c *client.Client, from int64) *history {
	h := &history{byKey: map[string]keyHistory{}, last: from - 1}
	go func() {
		for ctx.Err() == nil {
			h.mu.Lock()
			next := h.last + 1
			h.mu.Unlock()
			ws, err := c.Watch(ctx, "fresh/", client.FromRevision(next), client.WithProgressInterval(50*time.Millisecond))
			if err != nil {
				time.Sleep(10 * time.Millisecond) // the host is restarting its plugin: try again
				continue
			}
			for {
				ev, err := ws.Recv()
				if err != nil {
					break
				}
				h.mu.Lock()
				if ev.Type != kv.EventProgress {
					h.byKey[ev.Key] = append(h.byKey[ev.Key], ev)
				}
				h.last = max(h.last, ev.Revision)
				h.mu.Unlock()
			}
			ws.Close()
		}
	}()
	return h
}

// through waits until the history holds every change up to rev.
func (h *history) through(t *testing.T, rev int64) map[string]keyHistory {
	within(t, freshBound, fmt.Sprintf("the history up to revision %d", rev), func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.last >= rev
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]keyHistory, len(h.byKey))
	for k, evs := range h.byKey {
		out[k] = append(keyHistory{}, evs...)
	}
	return out
}
