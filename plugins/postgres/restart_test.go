package postgres_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvhost/kvhost/internal/pgtest"
	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/plugins/postgres"
)

// PostgreSQL restarted under load: calls fail with ErrUnavailable while
// it is down, then succeed again with the same store (no reopen), and
// every acknowledged write is there.
func TestServerRestartUnderLoad(t *testing.T) {
	cluster := pgtest.Start(t) // a server of the test's own, so no other test's goes down
	s, err := postgres.Open(t.Context(), map[string]string{"dsn": cluster.DSN, "pool_size": "4", "connect_timeout_ms": "60000"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var (
		mu          sync.Mutex
		acked       = map[string]int64{}
		unavailable atomic.Int64
		stop        atomic.Bool
		wg          sync.WaitGroup
	)
	for g := range 4 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				key := fmt.Sprintf("load/%d/%d", g, i)
				e, err := s.Put(t.Context(), kv.PutRequest{Key: key, Value: []byte("v")})
				switch {
				case err == nil:
					mu.Lock()
					acked[key] = e.Version
					mu.Unlock()
				case errors.Is(err, kv.ErrUnavailable):
					unavailable.Add(1)
					time.Sleep(20 * time.Millisecond) // a client's retry backoff, not synchronisation
				default:
					t.Errorf("put %s during a restart: %v, want success or ErrUnavailable", key, err)
					return
				}
			}
		})
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	for count() < 200 {
		time.Sleep(10 * time.Millisecond) // polling the writers' progress
	}
	cluster.Restart()
	before := count()
	deadline := time.Now().Add(2 * time.Minute) // a loaded machine restarts slowly
	for count() < before+200 {
		if time.Now().After(deadline) {
			t.Fatalf("writes did not recover within 2m of the restart (%d acknowledged, %d unavailable)", count(), unavailable.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d writes acknowledged, %d calls failed unavailable across the restart", count(), unavailable.Load())
	if unavailable.Load() == 0 {
		t.Log("no call saw the restart (it fell between calls)")
	}
	for key, v := range acked {
		r, err := s.Get(t.Context(), key)
		if err != nil || !r.Found || r.Entry.Version != v {
			t.Fatalf("acknowledged write %s at %d: after the restart %+v, %v", key, v, r, err)
		}
	}
}
