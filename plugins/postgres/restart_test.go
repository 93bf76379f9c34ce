package postgres_test

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/plugins/postgres"
)

// startFaultCluster creates and starts a throwaway PostgreSQL cluster
// (Debian's pg_createcluster, as root) on a free port, under a name of its
// own so that test runs side by side do not meet, and returns its DSN; it
// is dropped when the test ends. The test restarts it, so that no other
// test's server goes down.
func startFaultCluster(t *testing.T) (dsn string, restart func()) {
	t.Helper()
	testDSN(t) // the same skip rule as every PostgreSQL test
	if _, err := exec.LookPath("pg_createcluster"); err != nil || os.Getuid() != 0 {
		const msg = "the PostgreSQL restart test needs root and Debian's pg_createcluster to run a throwaway cluster"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (CI=true: a fault test that cannot run is a failure)")
		}
		t.Skip("SKIPPING: " + msg)
	}
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(lis.Addr().(*net.TCPAddr).Port)
	_ = lis.Close()
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "kvfault" + hex.EncodeToString(b[:])
	run("pg_createcluster", "-p", port, "15", name, "--", "-A", "trust")
	t.Cleanup(func() { _ = exec.Command("pg_dropcluster", "--stop", "15", name).Run() })
	run("pg_ctlcluster", "15", name, "start")
	run("su", "postgres", "-c", "psql -p "+port+" -c \"CREATE ROLE kvhost LOGIN PASSWORD 'kvhost'\" -c 'CREATE DATABASE kvfault OWNER kvhost'")
	return "postgres://kvhost:kvhost@127.0.0.1:" + port + "/kvfault", func() { run("pg_ctlcluster", "15", name, "restart", "-m", "fast") }
}

// PostgreSQL restarted under load: calls fail with ErrUnavailable while
// it is down, then succeed again with the same store (no reopen), and
// every acknowledged write is there.
func TestServerRestartUnderLoad(t *testing.T) {
	dsn, restart := startFaultCluster(t)
	s, err := postgres.Open(t.Context(), map[string]string{"dsn": dsn, "pool_size": "4", "connect_timeout_ms": "60000"})
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
	restart()
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
