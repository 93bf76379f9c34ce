package postgres_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/plugins/postgres"
)

// Cleanup may run on every host at once: with three stores on one schema
// each cleaning up concurrently, every expired key is removed once and its
// EXPIRE event is recorded once, at one revision, which a watcher on each
// store receives exactly once.
func TestCleanupOnEveryHostExpiresOnce(t *testing.T) {
	set := settings(t)
	set["history"] = "100000"
	set["watch_buffer"] = "20000" // the test reads the events after the cleanups
	stores := make([]kv.Backend, 3)
	for i := range stores {
		s, err := postgres.Open(t.Context(), set)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stores[i] = s
	}
	watches := make([]kv.WatchStream, len(stores))
	for i, s := range stores {
		ws, err := s.(kv.Watcher).Watch(t.Context(), kv.WatchRequest{Prefix: "x/", ProgressInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		watches[i] = ws
	}
	const keys = 2500 // more than one cleanup batch per store
	ops := make([]kv.Op, 0, kv.MaxBatchOps)
	for i := range keys {
		ops = append(ops, kv.PutOp(fmt.Sprintf("x/%05d", i), []byte("v"), time.Millisecond, kv.Condition{}))
		if len(ops) == kv.MaxBatchOps || i == keys-1 {
			if _, err := stores[0].Batch(t.Context(), ops); err != nil {
				t.Fatal(err)
			}
			ops = ops[:0]
		}
	}
	// Wait until every key has expired: a get of the last one put says so.
	for {
		r, err := stores[0].Get(t.Context(), fmt.Sprintf("x/%05d", keys-1))
		if err != nil {
			t.Fatal(err)
		}
		if !r.Found {
			break
		}
		time.Sleep(5 * time.Millisecond) // the TTL is a millisecond: this is the clock's doing
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		removed int64
	)
	for _, s := range stores {
		wg.Go(func() {
			for {
				n, err := s.(kv.Expirer).CleanupExpired(t.Context(), 700)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				removed += n
				mu.Unlock()
				if n == 0 {
					return
				}
			}
		})
	}
	wg.Wait()
	if removed != keys {
		t.Fatalf("the cleanups together removed %d keys, want each of %d once", removed, keys)
	}
	for i, ws := range watches {
		seen := map[string]int64{}
		for len(seen) < 2*keys { // a PUT and an EXPIRE per key
			ev := recvWithin(t, ws, time.Minute)
			id := fmt.Sprintf("%s %s", ev.Type, ev.Key)
			if rev, dup := seen[id]; dup {
				t.Fatalf("watcher on store %d: %s twice, at revisions %d and %d", i, id, rev, ev.Revision)
			}
			seen[id] = ev.Revision
		}
		for k := range keys {
			if _, ok := seen[fmt.Sprintf("%s x/%05d", kv.EventExpire, k)]; !ok {
				t.Fatalf("watcher on store %d: no EXPIRE for x/%05d", i, k)
			}
		}
	}
}
