package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// The tests run against a real Redis: the one KVHOST_TEST_REDIS_ADDR
// names (scripts/services.sh starts one and says so; make test runs it).
// Without it they skip, loudly; under CI=true they fail.
const addrEnv = "KVHOST_TEST_REDIS_ADDR"

// needRedis skips or fails a test that has no Redis to run against.
func needRedis(t testing.TB, why string) {
	t.Helper()
	msg := "NO REDIS: " + why + "; the Redis backend's tests need a Redis server: set " + addrEnv +
		" to its host:port (scripts/services.sh starts one on 127.0.0.1:6379 and prints the variable; make test runs it)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (CI=true: a missing server is a failure)")
	}
	t.Skip(msg)
}

// testAddr returns the test Redis's address.
func testAddr(t testing.TB) string {
	t.Helper()
	addr := os.Getenv(addrEnv)
	if addr == "" {
		needRedis(t, addrEnv+" is not set")
	}
	c := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		needRedis(t, fmt.Sprintf("%s=%s does not answer PING (%v)", addrEnv, addr, err))
	}
	return addr
}

// testPrefix returns a key prefix of a store of the test's own, whose
// keys are removed when the test ends.
func testPrefix(t testing.TB, addr string) string {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "{kvtest-" + hex.EncodeToString(b) + "}:"
	t.Cleanup(func() { dropStore(t, addr, prefix) })
	return prefix
}

// dropStore removes every key of the store under prefix.
func dropStore(t testing.TB, addr, prefix string) {
	c := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	keys := make([]string, len(keyNames))
	for i, n := range keyNames {
		keys[i] = prefix + n
	}
	if err := c.Unlink(context.Background(), keys...).Err(); err != nil {
		t.Logf("removing the test store %s: %v", prefix, err)
	}
}

// testSettings returns plugin settings for a store of the test's own.
func testSettings(addr string, history int) func(t testing.TB) map[string]string {
	return func(t testing.TB) map[string]string {
		return map[string]string{
			SettingAddr:      addr,
			SettingKeyPrefix: testPrefix(t, addr),
			SettingHistory:   strconv.Itoa(history),
		}
	}
}

// newTestStore opens a Store on a store of the test's own (or on prefix,
// when given, to share one with another Store).
func newTestStore(t testing.TB, addr string, cfg Config) *Store {
	t.Helper()
	cfg.Addr = addr
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = testPrefix(t, addr)
	}
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open a store on %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// privateServer is a redis-server of the test's own, for the tests that
// kill connections or restart the server. It runs without persistence,
// as scripts/services.sh starts the shared one.
type privateServer struct {
	t    testing.TB
	port int
	dir  string
	cmd  *exec.Cmd
}

func (p *privateServer) Addr() string { return "127.0.0.1:" + strconv.Itoa(p.port) }

// startPrivateServer starts redis-server on a free loopback port.
func startPrivateServer(t testing.TB) *privateServer {
	t.Helper()
	testAddr(t) // the same rule: no Redis for the tests, no test
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		needRedis(t, "redis-server is not on PATH, and this test needs a server of its own to restart")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	p := &privateServer{t: t, port: port, dir: t.TempDir()}
	_ = bin
	p.start()
	t.Cleanup(p.stop)
	return p
}

func (p *privateServer) start() {
	p.t.Helper()
	p.cmd = exec.Command("redis-server", "--bind", "127.0.0.1", "--port", strconv.Itoa(p.port),
		"--save", "", "--appendonly", "no", "--dir", p.dir, "--logfile", filepath.Join(p.dir, "redis.log"))
	if err := p.cmd.Start(); err != nil {
		p.t.Fatalf("start redis-server: %v", err)
	}
	c := goredis.NewClient(&goredis.Options{Addr: p.Addr(), MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(30 * time.Second) // a loaded machine may be slow to start a process
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(p.dir, "redis.log"))
			p.t.Fatalf("redis-server on port %d does not answer after 30s: %v\n%s", p.port, err, log)
		}
		time.Sleep(20 * time.Millisecond) // polling for a server process to accept connections
	}
}

// shutdown stops the server the way an operator restarting it would:
// SHUTDOWN NOSAVE, so it loses its data as the shared test server would.
func (p *privateServer) shutdown() {
	p.t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: p.Addr(), MaxRetries: -1})
	defer c.Close()
	_ = c.ShutdownNoSave(context.Background()).Err() // the connection drops: no reply
	_ = p.cmd.Wait()
	p.cmd = nil
}

func (p *privateServer) stop() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
	}
}
