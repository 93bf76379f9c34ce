package main_test

// End-to-end tests of the Redis backend: real kvhost processes, each with
// its own Redis plugin process, sharing one store on a real Redis, driven
// through the public API.
//
// They find Redis through KVHOST_TEST_REDIS_ADDR (scripts/services.sh
// starts one and prints the variable; make test runs it). Without it they
// skip, loudly; under CI=true they fail.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kvhost/kvhost/client"
	"github.com/kvhost/kvhost/internal/testbin"
	"github.com/kvhost/kvhost/kv"
)

const redisAddrEnv = "KVHOST_TEST_REDIS_ADDR"

// needRedis skips, or under CI=true fails, a test without a Redis.
func needRedis(t testing.TB, why string) {
	t.Helper()
	msg := "NO REDIS: " + why + "; the Redis end-to-end tests need a Redis server: set " + redisAddrEnv +
		" to its host:port (scripts/services.sh starts one on 127.0.0.1:6379 and prints the variable; make test runs it)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (CI=true: a missing server is a failure)")
	}
	t.Skip(msg)
}

// redisAddr returns the test Redis's address, which answers PING.
func redisAddr(t testing.TB) string {
	t.Helper()
	addr := os.Getenv(redisAddrEnv)
	if addr == "" {
		needRedis(t, redisAddrEnv+" is not set")
	}
	c := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		needRedis(t, fmt.Sprintf("%s=%s does not answer PING (%v)", redisAddrEnv, addr, err))
	}
	return addr
}

// redisStore returns the key prefix of a store of the test's own on the
// Redis at addr, whose keys are removed when the test ends.
func redisStore(t testing.TB, addr string) string {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "{e2e-" + hex.EncodeToString(b) + "}:"
	t.Cleanup(func() {
		c := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1})
		defer c.Close()
		ctx := context.Background()
		iter := c.Scan(ctx, 0, prefix+"*", 100).Iterator() // a test's own handful of keys
		for iter.Next(ctx) {
			_ = c.Unlink(ctx, iter.Val()).Err()
		}
	})
	return prefix
}

// startRedisHost starts kvhost serving the Redis store under prefix.
func startRedisHost(t testing.TB, addr, prefix string, config ...string) *server {
	t.Helper()
	testbin.Plugin(t, "redis") // kvhost finds its plugins beside itself
	return startServerTB(t, fmt.Sprintf("auth: {anonymous: true}\nbackend:\n  plugin: redis\n  settings: {addr: %q, key_prefix: %q}\n", addr, prefix)+strings.Join(config, ""))
}

// within polls cond until it holds; the bound only ends a test that would
// otherwise hang, on however loaded a machine, and says what it waited for.
func within(t testing.TB, bound time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting %v for %s", bound, what)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition another process brings about
	}
}

// nextChange receives the next event that is not progress, within a bound
// that only catches a lost event.
func nextChange(t *testing.T, ws kv.WatchStream, what string) kv.Event {
	t.Helper()
	type result struct {
		ev  kv.Event
		err error
	}
	for {
		ch := make(chan result, 1)
		go func() {
			ev, err := ws.Recv()
			ch <- result{ev, err}
		}()
		select {
		case r := <-ch:
			if r.err != nil {
				t.Fatalf("%s: the watch ended: %v", what, r.err)
			}
			if r.ev.Type != kv.EventProgress {
				return r.ev
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("%s: no event within 60s", what)
		}
	}
}

// Two kvhost processes, each with its own plugin, share one store on one
// Redis: conditions and counters hold across them, a write on one reaches
// a watcher on the other, and a big prefix lists completely while the
// other host writes elsewhere.
func TestRedisTwoHosts(t *testing.T) {
	addr := redisAddr(t)
	prefix := redisStore(t, addr)
	hosts := []*server{startRedisHost(t, addr, prefix), startRedisHost(t, addr, prefix)}
	clients := []*client.Client{hosts[0].client(t, ""), hosts[1].client(t, "")}

	t.Run("one put-if-absent wins of 2x8", func(t *testing.T) {
		ctx := t.Context()
		var wins, conflicts atomic.Int64
		var wg sync.WaitGroup
		for h := range 2 {
			for g := range 8 {
				wg.Go(func() {
					_, err := clients[h].Put(ctx, "race/lock", []byte(fmt.Sprintf("host %d goroutine %d", h, g)), client.IfAbsent())
					switch {
					case err == nil:
						wins.Add(1)
					case errors.Is(err, kv.ErrConflict):
						conflicts.Add(1)
					default:
						t.Errorf("put-if-absent on host %d: %v", h, err)
					}
				})
			}
		}
		wg.Wait()
		if wins.Load() != 1 || conflicts.Load() != 15 {
			t.Fatalf("16 put-if-absent calls on two hosts: %d won, %d conflicted; want exactly one winner", wins.Load(), conflicts.Load())
		}
	})

	t.Run("2x8x1000 increments make 16000", func(t *testing.T) {
		ctx := t.Context()
		var wg sync.WaitGroup
		for h := range 2 {
			for range 8 {
				wg.Go(func() {
					for range 1000 {
						if _, err := clients[h].Increment(ctx, "race/counter", 1); err != nil {
							t.Errorf("increment on host %d: %v", h, err)
							return
						}
					}
				})
			}
		}
		wg.Wait()
		for h, c := range clients {
			e, err := c.Get(ctx, "race/counter")
			if err != nil || string(e.Value) != "16000" {
				t.Fatalf("after 16000 increments on two hosts, host %d reads %q (%v), want 16000", h, e.Value, err)
			}
		}
	})

	t.Run("a write on one host reaches a watcher on the other", func(t *testing.T) {
		ctx := t.Context()
		ws, err := clients[1].Watch(ctx, "cross/", client.WithProgressInterval(-1))
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		var lat, after []time.Duration
		for i := range 50 {
			start := time.Now()
			e, err := clients[0].Put(ctx, fmt.Sprint("cross/", i), []byte(strconv.Itoa(i)))
			if err != nil {
				t.Fatal(err)
			}
			acked := time.Now()
			ev := nextChange(t, ws, "a watcher on host 1 after a put on host 0")
			lat, after = append(lat, time.Since(start)), append(after, time.Since(acked))
			if ev.Type != kv.EventPut || ev.Key != fmt.Sprint("cross/", i) || ev.Revision != e.Version || string(ev.Value) != strconv.Itoa(i) {
				t.Fatalf("a watcher on host 1 got %v %q %q at %d; host 0 put %q at %d", ev.Type, ev.Key, ev.Value, ev.Revision, fmt.Sprint("cross/", i), e.Version)
			}
		}
		slices.Sort(lat)
		slices.Sort(after)
		// Reported, not asserted: from the put's call on host 0 (and from
		// its acknowledgement) to the event's arrival from host 1, through
		// both hosts, both plugins and Redis.
		t.Logf("put called on host 0 -> event from host 1, 50 writes: p50 %v, p90 %v, max %v; from the put's acknowledgement: p50 %v, p90 %v, max %v",
			lat[len(lat)/2], lat[len(lat)*9/10], lat[len(lat)-1], after[len(after)/2], after[len(after)*9/10], after[len(after)-1])
	})

	t.Run("10000 keys list completely while the other host writes", func(t *testing.T) {
		ctx := t.Context()
		const n = 10_000
		ops := make([]kv.Op, 0, kv.MaxBatchOps)
		for i := range n {
			ops = append(ops, kv.PutOp(fmt.Sprintf("big/%05d", i), []byte("v"), 0, kv.Condition{}))
			if len(ops) == kv.MaxBatchOps {
				if _, err := clients[0].Batch(ctx, ops); err != nil {
					t.Fatal(err)
				}
				ops = ops[:0]
			}
		}
		stop := make(chan struct{})
		var writes atomic.Int64
		var wg sync.WaitGroup
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := clients[1].Put(ctx, fmt.Sprintf("elsewhere/%d", i%500), []byte(strconv.Itoa(i))); err != nil {
					t.Errorf("the other host's writer: %v", err)
					return
				}
				writes.Add(1)
			}
		})
		for h, c := range clients {
			var keys []string
			after := ""
			pages := 0
			for {
				page, err := c.List(ctx, "big/", client.StartAfter(after), client.Limit(700))
				if err != nil {
					t.Fatal(err)
				}
				pages++
				for _, e := range page.Entries {
					keys = append(keys, e.Key)
				}
				if !page.More {
					break
				}
				after = page.Entries[len(page.Entries)-1].Key
			}
			if len(keys) != n || !slices.IsSorted(keys) || keys[0] != "big/00000" || keys[n-1] != fmt.Sprintf("big/%05d", n-1) || len(slices.Compact(slices.Clone(keys))) != n {
				t.Fatalf("host %d listed %d keys under big/ in %d pages (first %q, sorted %v), want all %d once each in order", h, len(keys), pages, keys[0], slices.IsSorted(keys), n)
			}
		}
		close(stop)
		wg.Wait()
		t.Logf("listed 10000 keys in pages of 700 on each host while the other wrote %d times elsewhere", writes.Load())
	})
}

// A watcher whose host is killed resumes on the other host from the last
// revision it saw plus one, and misses nothing.
func TestRedisWatchResumesOnAnotherHost(t *testing.T) {
	addr := redisAddr(t)
	prefix := redisStore(t, addr)
	doomed := startRedisHost(t, addr, prefix)
	other := startRedisHost(t, addr, prefix)
	ctx := t.Context()
	writer := other.client(t, "")
	const n = 300
	ws, err := doomed.client(t, "").Watch(ctx, "resume/", client.WithProgressInterval(-1))
	if err != nil {
		t.Fatal(err)
	}
	written := make(chan error, 1)
	go func() {
		for i := range n {
			if _, err := writer.Put(ctx, fmt.Sprintf("resume/%03d", i%7), []byte(strconv.Itoa(i))); err != nil {
				written <- err
				return
			}
		}
		written <- nil
	}()
	var got []kv.Event
	for len(got) < 40 { // part way through the writer's run
		got = append(got, nextChange(t, ws, "the watcher on the host about to be killed"))
	}
	if err := doomed.cmd.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	_ = doomed.cmd.Wait()
	// The stream ends with the host; whatever it still delivers counts.
	drained := make(chan []kv.Event, 1)
	go func() {
		var more []kv.Event
		for {
			ev, err := ws.Recv()
			if err != nil {
				drained <- more
				return
			}
			if ev.Type != kv.EventProgress {
				more = append(more, ev)
			}
		}
	}()
	select {
	case more := <-drained:
		got = append(got, more...)
	case <-time.After(60 * time.Second):
		t.Fatal("the watch on a killed host did not end within 60s")
	}
	last := got[len(got)-1].Revision
	resumed, err := other.client(t, "").Watch(ctx, "resume/", client.FromRevision(last+1), client.WithProgressInterval(-1))
	if err != nil {
		t.Fatalf("resume on the other host from revision %d: %v", last+1, err)
	}
	defer resumed.Close()
	for len(got) < n {
		got = append(got, nextChange(t, resumed, fmt.Sprintf("the watch resumed on the other host after %d events", len(got))))
	}
	if err := <-written; err != nil {
		t.Fatalf("writer: %v", err)
	}
	for i, ev := range got {
		if ev.Type != kv.EventPut || string(ev.Value) != strconv.Itoa(i) || (i > 0 && ev.Revision <= got[i-1].Revision) {
			t.Fatalf("event %d is %v %q at revision %d: a change was lost, repeated or reordered across the kill and resume", i, ev.Type, ev.Value, ev.Revision)
		}
	}
}

// privateRedis is a redis-server of the test's own, started as
// scripts/services.sh starts the shared one (loopback, no persistence),
// on a free port, so that the test can restart it without disturbing
// other tests.
type privateRedis struct {
	t    *testing.T
	port int
	dir  string
	cmd  *exec.Cmd
}

func startPrivateRedis(t *testing.T) *privateRedis {
	t.Helper()
	redisAddr(t) // the same rule: no Redis for the tests, no test
	if _, err := exec.LookPath("redis-server"); err != nil {
		needRedis(t, "redis-server is not on PATH, and this test restarts a server of its own")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	r := &privateRedis{t: t, port: port, dir: t.TempDir()}
	r.start()
	t.Cleanup(func() {
		if r.cmd != nil {
			_ = r.cmd.Process.Kill()
			_ = r.cmd.Wait()
		}
	})
	return r
}

func (r *privateRedis) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

func (r *privateRedis) start() {
	r.t.Helper()
	r.cmd = exec.Command("redis-server", "--bind", "127.0.0.1", "--port", strconv.Itoa(r.port),
		"--save", "", "--appendonly", "no", "--dir", r.dir, "--logfile", filepath.Join(r.dir, "redis.log"))
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	c := goredis.NewClient(&goredis.Options{Addr: r.addr(), MaxRetries: -1})
	defer c.Close()
	within(r.t, 60*time.Second, "redis-server to answer PING", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return c.Ping(ctx).Err() == nil
	})
}

// shutdown is redis-cli SHUTDOWN NOSAVE: the server stops and its data
// is gone.
func (r *privateRedis) shutdown() {
	c := goredis.NewClient(&goredis.Options{Addr: r.addr(), MaxRetries: -1})
	defer c.Close()
	_ = c.ShutdownNoSave(context.Background()).Err() // the connection drops: no reply
	_ = r.cmd.Wait()
	r.cmd = nil
}

// Redis restarted under load: calls fail with UNAVAILABLE while it is
// down, then succeed again, with the same kvhost and the same plugin
// process.
func TestRedisRestartUnderLoad(t *testing.T) {
	r := startPrivateRedis(t)
	s := startRedisHost(t, r.addr(), "{kvhost}:")
	ctx := t.Context()
	c := s.client(t, "")
	pid := s.pluginPid.Load()
	var ok, unavailable atomic.Int64
	var lastErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var err error
				if i%2 == 0 {
					_, err = c.Put(ctx, fmt.Sprintf("load/%d/%d", w, i%100), []byte(strconv.Itoa(i)))
				} else {
					_, err = c.Get(ctx, fmt.Sprintf("load/%d/%d", w, (i-1)%100))
					if errors.Is(err, kv.ErrNotFound) {
						err = nil // the key was lost with the restart
					}
				}
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, client.ErrUnavailable):
					unavailable.Add(1)
					lastErr.Store(err.Error())
					time.Sleep(5 * time.Millisecond) // a caller backing off
				default:
					t.Errorf("a call while Redis restarts: %v, want success or UNAVAILABLE", err)
					return
				}
			}
		})
	}
	within(t, 60*time.Second, "calls to succeed before the fault", func() bool { return ok.Load() > 100 })
	r.shutdown()
	within(t, 60*time.Second, "calls to fail with UNAVAILABLE while Redis is down", func() bool { return unavailable.Load() > 20 })
	okDown := ok.Load()
	r.start()
	within(t, 60*time.Second, "calls to succeed again once Redis is back", func() bool { return ok.Load() > okDown+100 })
	close(stop)
	wg.Wait()
	if got := s.pluginPid.Load(); got != pid {
		t.Fatalf("the plugin was restarted (pid %d, then %d); it should have recovered on its own", pid, got)
	}
	if s.cmd.ProcessState != nil {
		t.Fatal("the host exited")
	}
	e, err := c.Put(ctx, "after", []byte("x"))
	if err != nil {
		t.Fatalf("a put after the restart: %v", err)
	}
	t.Logf("%d calls succeeded, %d failed with UNAVAILABLE (e.g. %v); revision after the restart %d", ok.Load(), unavailable.Load(), lastErr.Load(), e.Version)
}
