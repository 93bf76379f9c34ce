package main_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvhost/kvhost/client"
	"github.com/kvhost/kvhost/client/lock"
	"github.com/kvhost/kvhost/internal/testbin"
	"github.com/kvhost/kvhost/kv"
)

// backendHosts start the hosts of each backend the coordination tests
// (locks, registries) run on: the embedded ones with one host, PostgreSQL
// and Redis with two hosts (each with its own plugin) on one store, so
// that what they check holds across hosts.
var backendHosts = []struct {
	name  string
	hosts func(t testing.TB) []*server
}{
	{"memory", func(t testing.TB) []*server {
		testbin.Plugin(t, "memory")
		return []*server{startServerTB(t, "auth: {anonymous: true}\nbackend: {plugin: memory}\n")}
	}},
	{"sqlite", func(t testing.TB) []*server {
		testbin.Plugin(t, "sqlite")
		return []*server{startServerTB(t, "auth: {anonymous: true}\n")}
	}},
	{"postgres", func(t testing.TB) []*server {
		dsn := pgDSN(t)
		schema := pgSchema(t, dsn)
		return []*server{startPGHost(t, dsn, schema), startPGHost(t, dsn, schema)}
	}},
	{"redis", func(t testing.TB) []*server {
		addr := redisAddr(t)
		prefix := redisStore(t, addr)
		return []*server{startRedisHost(t, addr, prefix), startRedisHost(t, addr, prefix)}
	}},
}

// forEachBackend runs test once per backend in backendHosts, as a
// subtest, with a client of each of the backend's hosts.
func forEachBackend(t *testing.T, test func(t *testing.T, clients []*client.Client)) {
	for _, st := range backendHosts {
		t.Run(st.name, func(t *testing.T) {
			hosts := st.hosts(t)
			clients := make([]*client.Client, len(hosts))
			for i, h := range hosts {
				clients[i] = h.client(t, "")
			}
			test(t, clients)
		})
	}
}

// TestLock runs the lock's guarantees on every backend: mutual exclusion
// among 8 contenders with strictly increasing tokens, take-over after a
// holder stops renewing, a stale holder refused, and loss reported by the
// keep-alive.
func TestLock(t *testing.T) {
	forEachBackend(t, func(t *testing.T, clients []*client.Client) {
		t.Run("exclusion", func(t *testing.T) { testLockExclusion(t, clients) })
		t.Run("takeover", func(t *testing.T) { testLockTakeover(t, clients) })
		t.Run("keepalive-loss", func(t *testing.T) { testLockKeepAliveLoss(t, clients) })
	})
}

// lockBound ends a test that would otherwise hang; no step is expected to
// take more than a fraction of it, however loaded the machine.
const lockBound = 3 * time.Minute

func testLockExclusion(t *testing.T, clients []*client.Client) {
	ctx, cancel := context.WithTimeout(t.Context(), lockBound)
	defer cancel()
	const contenders, rounds = 8, 5
	var (
		inside  atomic.Int32
		mu      sync.Mutex
		tokens  []int64
		wg      sync.WaitGroup
		errs    []error
		counter = "lock-test/counter"
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	for g := range contenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := clients[g%len(clients)]
			locks := lock.New(c)
			for r := range rounds {
				// A long TTL: the lock changes hands by release, not expiry.
				lease, err := locks.Acquire(ctx, "exclusion", fmt.Sprintf("g%d", g), time.Minute)
				if err != nil {
					fail(fmt.Errorf("contender %d round %d: %w", g, r, err))
					return
				}
				if n := inside.Add(1); n != 1 {
					fail(fmt.Errorf("contender %d holds the lock with %d others", g, n-1))
				}
				mu.Lock()
				tokens = append(tokens, lease.Token)
				mu.Unlock()
				// A read-modify-write with no condition: only the lock
				// keeps two contenders from losing an update.
				n := 0
				if e, err := c.Get(ctx, counter); err == nil {
					n, _ = strconv.Atoi(string(e.Value))
				} else if !errors.Is(err, kv.ErrNotFound) {
					fail(err)
				}
				if _, err := c.Put(ctx, counter, []byte(strconv.Itoa(n+1))); err != nil {
					fail(err)
				}
				inside.Add(-1)
				if err := lease.Release(ctx); err != nil {
					fail(fmt.Errorf("contender %d release: %w", g, err))
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	e, err := clients[0].Get(ctx, counter)
	if err != nil {
		t.Fatal(err)
	}
	if string(e.Value) != strconv.Itoa(contenders*rounds) {
		t.Fatalf("the counter the lock guards is %s, want %d: two holders overlapped", e.Value, contenders*rounds)
	}
	for i := 1; i < len(tokens); i++ {
		if tokens[i] <= tokens[i-1] {
			t.Fatalf("fencing tokens in the order the lock was held: %v; token %d is not above %d", tokens, tokens[i], tokens[i-1])
		}
	}
}

func testLockTakeover(t *testing.T, clients []*client.Client) {
	ctx, cancel := context.WithTimeout(t.Context(), lockBound)
	defer cancel()
	a := lock.New(clients[0])
	b := lock.New(clients[len(clients)-1])
	// The first holder takes a short lease and never renews it.
	old, err := a.TryAcquire(ctx, "takeover", "a", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.TryAcquire(ctx, "takeover", "b", time.Minute); !errors.Is(err, lock.ErrHeld) {
		t.Fatalf("taking a held lock: %v, want ErrHeld", err)
	} else if h := (*lock.HeldError)(nil); !errors.As(err, &h) || h.Owner != "a" || h.Token != old.Token {
		t.Fatalf("taking a held lock: %v, want it to name owner a and token %d", err, old.Token)
	}
	// The second waits, by watching, until the lease expires.
	lease, err := b.Acquire(ctx, "takeover", "b", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if lease.Token <= old.Token {
		t.Fatalf("the new holder's token %d is not above the expired holder's %d", lease.Token, old.Token)
	}
	if err := old.Renew(ctx); !errors.Is(err, lock.ErrLost) {
		t.Fatalf("the stale holder's renew: %v, want ErrLost", err)
	}
	if err := old.Release(ctx); !errors.Is(err, lock.ErrLost) {
		t.Fatalf("the stale holder's release: %v, want ErrLost", err)
	}
	h, err := a.Holder(ctx, "takeover")
	if err != nil || h.Owner != "b" || h.Token != lease.Token {
		t.Fatalf("after the stale holder's calls the lock is held by %+v (%v), want b with token %d", h, err, lease.Token)
	}
	if err := lease.Renew(ctx); err != nil {
		t.Fatalf("the holder's renew: %v", err)
	}
	if err := lease.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Holder(ctx, "takeover"); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("after release the lock is held: %v", err)
	}
}

func testLockKeepAliveLoss(t *testing.T, clients []*client.Client) {
	ctx, cancel := context.WithTimeout(t.Context(), lockBound)
	defer cancel()
	locks := lock.New(clients[0])
	lease, err := locks.TryAcquire(ctx, "keepalive", "a", 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	lost := lease.KeepAlive(ctx)
	// An operator breaks the lock and someone else takes it.
	if _, err := clients[len(clients)-1].Delete(ctx, lock.DefaultPrefix+"keepalive"); err != nil {
		t.Fatal(err)
	}
	if _, err := lock.New(clients[len(clients)-1]).TryAcquire(ctx, "keepalive", "b", time.Minute); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-lost:
		if !errors.Is(err, lock.ErrLost) {
			t.Fatalf("keep-alive reported %v, want ErrLost", err)
		}
	case <-ctx.Done():
		t.Fatal("the keep-alive never reported the lease lost")
	}
}

// kvhost lock runs a command under the lock with the token in its
// environment, releases the lock when it exits, and stops it when the
// lock is lost.
func TestLockCommand(t *testing.T) {
	s := startServer(t, "auth: {anonymous: true}\n")
	ctx, cancel := context.WithTimeout(t.Context(), lockBound)
	defer cancel()
	c := s.client(t, "")
	out := filepath.Join(t.TempDir(), "token")
	s.mustCLI(t, "", "lock", "job", "--ttl", "5s", "--", "sh", "-c", `echo "$KVHOST_LOCK_NAME $KVHOST_LOCK_TOKEN" > `+out)
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(got))
	if len(f) != 2 || f[0] != "job" {
		t.Fatalf("the command saw %q, want the lock's name and token", got)
	}
	if tok, err := strconv.ParseInt(f[1], 10, 64); err != nil || tok <= 0 {
		t.Fatalf("the command saw token %q", f[1])
	}
	if _, err := lock.New(c).Holder(ctx, "job"); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("after the command the lock is still held: %v", err)
	}

	// The command's exit status is kvhost lock's.
	if _, _, code := s.cli(t, "", "lock", "job", "--", "sh", "-c", "exit 7"); code != 7 {
		t.Fatalf("kvhost lock exited %d, want the command's 7", code)
	}

	// --no-wait on a held lock fails at once, naming the holder.
	held, err := lock.New(c).TryAcquire(ctx, "job", "someone-else", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := s.cli(t, "", "lock", "job", "--no-wait", "--", "true"); code != 1 || !strings.Contains(errOut, "someone-else") {
		t.Fatalf("kvhost lock --no-wait on a held lock: exit %d, %q; want 1 naming the holder", code, errOut)
	}
	if err := held.Release(ctx); err != nil {
		t.Fatal(err)
	}

	// The lock is lost while the command runs: the command is stopped.
	cmd := exec.CommandContext(ctx, kvhostBin(t), "lock", "job", "--ttl", "2s", "--grace", "30s", "--", "sleep", "600")
	cmd.Env = append(os.Environ(), "KVHOST_ADDR="+s.addr)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	within(t, lockBound, "kvhost lock to take the lock", func() bool {
		_, err := lock.New(c).Holder(ctx, "job")
		return err == nil
	})
	if _, err := c.Delete(ctx, lock.DefaultPrefix+"job"); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 4 {
		t.Fatalf("kvhost lock after its lock was broken: %v, want exit 4", err)
	}
}
