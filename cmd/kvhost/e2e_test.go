package main_test

// End-to-end tests: the real kvhost binary, the real SQLite plugin binary,
// driven through the CLI and the Go client.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kvhost/kvhost/client"
	"github.com/kvhost/kvhost/internal/testbin"
	"github.com/kvhost/kvhost/kv"
)

type server struct {
	addr, metrics string
	dir           string
	cmd           *exec.Cmd
	pluginPid     atomic.Int64
	pidChanged    chan struct{}
	mu            sync.Mutex
	log           bytes.Buffer
}

func kvhostBin(t testing.TB) string {
	t.Helper()
	testbin.Plugin(t, "sqlite") // kvhost finds its plugins beside itself
	testbin.Plugin(t, "memory")
	return testbin.Path(t, "kvhost", "./cmd/kvhost")
}

var (
	addrRE = regexp.MustCompile(`msg="kvhost serving" addr=(\S+)`)
	metRE  = regexp.MustCompile(`msg="metrics listening" addr=(\S+)`)
	pidRE  = regexp.MustCompile(`msg="backend plugin started" .* pid=(\d+)`)
)

// startServer runs kvhost serve with the given config text (data under a
// temp dir) and waits until it serves.
func startServer(t *testing.T, config string) *server { return startServerTB(t, config) }

// startServerB starts a server for a benchmark and returns its address.
func startServerB(b *testing.B, config string) string { return startServerTB(b, config).addr }

func startServerTB(t testing.TB, config string) *server {
	t.Helper()
	return startServerIn(t, t.TempDir(), config)
}

// startServerIn runs kvhost serve with its configuration and data in dir
// (dir/kvhost.yaml, dir/data), so that a test can stop a server and start
// another on the same data.
func startServerIn(t testing.TB, dir, config string) *server {
	t.Helper()
	bin := kvhostBin(t)
	s := &server{dir: dir, pidChanged: make(chan struct{}, 8)}
	cfgPath := filepath.Join(s.dir, "kvhost.yaml")
	config = "listen: 127.0.0.1:0\nmetrics_listen: 127.0.0.1:0\ndata_dir: " + filepath.Join(s.dir, "data") + "\n" + config
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	s.cmd = exec.Command(bin, "serve", "--config", cfgPath)
	s.cmd.Dir = s.dir
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.log.WriteString(line + "\n")
			if m := metRE.FindStringSubmatch(line); m != nil {
				s.metrics = m[1]
			}
			if m := addrRE.FindStringSubmatch(line); m != nil {
				s.addr = m[1]
				close(ready)
			}
			s.mu.Unlock()
			if m := pidRE.FindStringSubmatch(line); m != nil {
				pid, _ := strconv.Atoi(m[1])
				s.pluginPid.Store(int64(pid))
				select {
				case s.pidChanged <- struct{}{}:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		_ = s.cmd.Wait()
		if t.Failed() {
			t.Logf("kvhost log:\n%s", s.logText())
		}
	})
	// The bound only ends a test whose server will never start: a start
	// takes well under a second, but a loaded CI machine that also starts
	// plugins and loads policies may stall for many.
	select {
	case <-ready:
	case <-time.After(2 * time.Minute):
		t.Fatalf("kvhost did not start within 2 minutes:\n%s", s.logText())
	}
	return s
}

func (s *server) logText() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// cli runs a kvhost client command against s and returns its output and exit code.
func (s *server) cli(t *testing.T, token string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(kvhostBin(t), args...)
	cmd.Env = append(os.Environ(), "KVHOST_ADDR="+s.addr, "KVHOST_TOKEN="+token)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

func (s *server) mustCLI(t *testing.T, token string, args ...string) string {
	t.Helper()
	out, errOut, code := s.cli(t, token, args...)
	if code != 0 {
		t.Fatalf("kvhost %v: exit %d\n%s%s", args, code, out, errOut)
	}
	return out
}

func (s *server) client(t testing.TB, token string) *client.Client {
	t.Helper()
	opts := []client.Option{}
	if token != "" {
		opts = append(opts, client.WithToken(token))
	}
	c, err := client.New(s.addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

const twoTenants = `
auth:
  tokens:
    - {token: tok-alice, principal: alice, tenant: acme}
    - {token_sha256: 6bae0362848af71bf9dde2924116bee5375e8a4da437494e3588dfee8b35d0cc, principal: bob, tenant: globex} # tok-bob
`

func TestEndToEnd(t *testing.T) {
	s := startServer(t, twoTenants)
	ctx := t.Context()
	alice := s.client(t, "tok-alice")
	bob := s.client(t, "tok-bob")

	// A watch from the Go client sees writes made by the CLI.
	ws, err := alice.Watch(ctx, "config/")
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()

	s.mustCLI(t, "tok-alice", "put", "config/flags", `{"dark":true}`)
	if out := s.mustCLI(t, "tok-alice", "get", "config/flags"); strings.TrimSpace(out) != `{"dark":true}` {
		t.Fatalf("cli get: %q", out)
	}
	ev, err := ws.Recv()
	if err != nil || ev.Type != kv.EventPut || ev.Key != "config/flags" || string(ev.Value) != `{"dark":true}` {
		t.Fatalf("watch saw %+v %v, want the CLI's PUT", ev, err)
	}
	var js map[string]any
	if err := json.Unmarshal([]byte(s.mustCLI(t, "tok-alice", "get", "config/flags", "-o", "json")), &js); err != nil || js["key"] != "config/flags" {
		t.Fatalf("cli get -o json: %v %v", js, err)
	}
	s.mustCLI(t, "tok-alice", "put", "node/n1", "up", "--ttl", "1h")
	s.mustCLI(t, "tok-alice", "put", "node/n2", "up")
	if out := s.mustCLI(t, "tok-alice", "list", "node/", "--keys-only"); !strings.Contains(out, "node/n1") || !strings.Contains(out, "node/n2") {
		t.Fatalf("cli list: %q", out)
	}
	if out := s.mustCLI(t, "tok-alice", "count", "node/"); strings.TrimSpace(out) != "2" {
		t.Fatalf("cli count: %q", out)
	}
	if out := s.mustCLI(t, "tok-alice", "incr", "counter/a", "5"); strings.TrimSpace(out) != "5" {
		t.Fatalf("cli incr: %q", out)
	}
	if out := s.mustCLI(t, "tok-alice", "ttl", "node/n1"); !strings.Contains(out, "59m") && !strings.Contains(out, "1h") {
		t.Fatalf("cli ttl: %q", out)
	}
	s.mustCLI(t, "tok-alice", "expire", "node/n2", "1h")
	if e, err := alice.Get(ctx, "node/n2"); err != nil || e.ExpiresAt.IsZero() {
		t.Fatalf("after cli expire: %+v %v", e, err)
	}
	s.mustCLI(t, "tok-alice", "del", "node/n2")
	_, errOut, code := s.cli(t, "tok-alice", "get", "node/n2")
	if code == 0 || !strings.Contains(errOut, `"node/n2"`) || !strings.Contains(errOut, "not found") {
		t.Fatalf("cli get of a deleted key: exit %d, %q", code, errOut)
	}
	if out := s.mustCLI(t, "tok-alice", "stats"); !strings.Contains(out, "sqlite") {
		t.Fatalf("cli stats: %q", out)
	}

	// The Go client, every operation.
	e, err := alice.Put(ctx, "lock/leader", []byte("n1"), client.IfAbsent(), client.WithTTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	_, err = alice.Put(ctx, "lock/leader", []byte("n2"), client.IfAbsent())
	var ce *client.ConflictError
	if !errors.As(err, &ce) || ce.CurrentVersion != e.Version || ce.Key != "lock/leader" {
		t.Fatalf("second lock taker: %v, want a conflict at version %d", err, e.Version)
	}
	if _, err := alice.RefreshTTL(ctx, "lock/leader", time.Hour, client.IfVersion(e.Version)); err != nil {
		t.Fatal(err)
	}
	many, err := alice.GetMany(ctx, []string{"lock/leader", "nope"})
	if err != nil || many[0] == nil || many[1] != nil {
		t.Fatalf("get-many: %v %v", many, err)
	}
	res, err := alice.Batch(ctx, []kv.Op{
		kv.PutOp("b/1", []byte("1"), 0, kv.Condition{}),
		kv.PutOp("b/2", []byte("2"), 0, kv.Condition{}),
	})
	if err != nil || len(res) != 2 {
		t.Fatalf("batch: %v %v", res, err)
	}
	if n, err := alice.DeletePrefix(ctx, "b/"); err != nil || n != 2 {
		t.Fatalf("delete-prefix: %d %v", n, err)
	}
	if c, err := alice.Increment(ctx, "counter/a", -2); err != nil || c.Value != 3 {
		t.Fatalf("increment: %+v %v", c, err)
	}

	// TTL expiry through the whole stack.
	if _, err := alice.Put(ctx, "session/s1", []byte("x"), client.WithTTL(100*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if _, err := alice.Get(ctx, "session/s1"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("expired session: %v", err)
	}

	// Two tenants cannot see each other's keys.
	if _, err := bob.Get(ctx, "config/flags"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("bob reads alice's key: %v", err)
	}
	if n, err := bob.Count(ctx, ""); err != nil || n != 0 {
		t.Fatalf("bob counts %d keys: %v", n, err)
	}
	if _, err := bob.Put(ctx, "config/flags", []byte("bob's")); err != nil {
		t.Fatal(err)
	}
	if e, _ := alice.Get(ctx, "config/flags"); string(e.Value) != `{"dark":true}` {
		t.Fatalf("bob's write reached alice: %q", e.Value)
	}

	// No token, or a wrong one: refused.
	anon := s.client(t, "")
	if _, err := anon.Get(ctx, "config/flags"); !errors.Is(err, client.ErrUnauthenticated) {
		t.Fatalf("anonymous call: %v, want unauthenticated", err)
	}
	if _, errOut, code := s.cli(t, "wrong", "get", "config/flags"); code == 0 || !strings.Contains(errOut, "unauthenticated") {
		t.Fatalf("cli with a wrong token: exit %d %q", code, errOut)
	}

	// Metrics and health.
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready", "/metrics": `kvhost_operation_duration_seconds_count{backend="sqlite",op="put"}`} {
		resp, err := http.Get("http://" + s.metrics + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Fatalf("GET %s: %d, body lacks %q", path, resp.StatusCode, want)
		}
	}
}

// The plugin process is killed with SIGKILL while clients write: the host
// reports it, restarts it, loses no acknowledged write, and never restarts.
func TestPluginKilledUnderLoad(t *testing.T) {
	s := startServer(t, "auth: {anonymous: true}\n")
	ctx := t.Context()
	c := s.client(t, "")
	pid := int(s.pluginPid.Load())
	var mu sync.Mutex
	acked := map[string]string{}
	var failed atomic.Int64
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
				k, v := fmt.Sprintf("w%d/%06d", w, i), fmt.Sprint(i)
				if _, err := c.Put(ctx, k, []byte(v)); err != nil {
					if !errors.Is(err, client.ErrUnavailable) {
						t.Errorf("put during the fault: %v, want success or unavailable", err)
						return
					}
					failed.Add(1)
					time.Sleep(5 * time.Millisecond)
					continue
				}
				mu.Lock()
				acked[k] = v
				mu.Unlock()
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	<-s.pidChanged // drain the first start
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.pidChanged:
	case <-time.After(30 * time.Second):
		t.Fatalf("plugin was not restarted\n%s", s.logText())
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if int(s.pluginPid.Load()) == pid {
		t.Fatal("same plugin pid after restart")
	}
	for k, v := range acked {
		e, err := c.Get(ctx, k)
		if err != nil || string(e.Value) != v {
			t.Fatalf("acknowledged write %s=%s lost: %+v %v", k, v, e, err)
		}
	}
	if !strings.Contains(s.logText(), "backend plugin died") {
		t.Fatalf("the host did not report the death:\n%s", s.logText())
	}
	resp, err := http.Get("http://" + s.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "kvhost_plugin_restarts_total 1") {
		t.Fatal("restart not counted in /metrics")
	}
	t.Logf("%d acknowledged writes all present; %d calls failed fast during the restart", len(acked), failed.Load())
	if os.Getenv("KVHOST_E2E_LOG") != "" {
		t.Log(s.logText())
	}
}

// kvhost ends its plugin when it is told to stop.
func TestNoPluginLeftBehind(t *testing.T) {
	s := startServer(t, "auth: {anonymous: true}\n")
	pid := int(s.pluginPid.Load())
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = s.cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("plugin %d still running after kvhost exited", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestBadInput(t *testing.T) {
	bin := kvhostBin(t)
	dir := t.TempDir()
	run := func(config string) (string, int) {
		t.Helper()
		p := filepath.Join(dir, "bad.yaml")
		if err := os.WriteFile(p, []byte("listen: 127.0.0.1:0\nmetrics_listen: \"\"\ndata_dir: "+dir+"/data\n"+config), 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, "serve", "--config", p).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("kvhost serve with a bad config did not fail: %v\n%s", err, out)
		}
		return string(out), ee.ExitCode()
	}
	sum := sha256.Sum256([]byte("not the plugin"))
	cases := []struct{ name, config, want string }{
		{"malformed yaml", "auth: [anonymous\n", "invalid configuration"},
		{"unknown field", "auth: {anonymous: true}\nlisten_addr: x\n", "listen_addr"},
		{"no way in", "auth: {anonymous: false}\n", "nobody could call"},
		{"missing plugin", "auth: {anonymous: true}\nbackend: {path: " + dir + "/no-such-plugin}\n", "no-such-plugin"},
		{"checksum mismatch", "auth: {anonymous: true}\nbackend: {plugin: sqlite, sha256: " + hex.EncodeToString(sum[:]) + "}\n", "sha256"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, _ := run(tc.config)
			if !strings.Contains(out, tc.want) {
				t.Fatalf("output lacks %q:\n%s", tc.want, out)
			}
		})
	}

	// Oversized input to a running server: clear errors, nothing damaged.
	s := startServer(t, "auth: {anonymous: true}\nlimits: {max_value_bytes: 1024}\n")
	ctx := t.Context()
	c := s.client(t, "")
	if _, err := c.Put(ctx, "keep", []byte("safe")); err != nil {
		t.Fatal(err)
	}
	_, err := c.Put(ctx, strings.Repeat("k", 2000), []byte("v"))
	if !errors.Is(err, client.ErrInvalidArgument) || !strings.Contains(err.Error(), "2000") {
		t.Fatalf("2000-byte key: %v", err)
	}
	_, errOut, code := s.cli(t, "", "put", strings.Repeat("k", 2000), "v")
	if code == 0 || !strings.Contains(errOut, "2000") {
		t.Fatalf("cli 2000-byte key: exit %d %q", code, errOut)
	}
	_, err = c.Put(ctx, "keep", make([]byte, 1025))
	if !errors.Is(err, client.ErrTooLarge) || !strings.Contains(err.Error(), "1025") {
		t.Fatalf("value over the limit: %v", err)
	}
	if e, err := c.Get(ctx, "keep"); err != nil || string(e.Value) != "safe" {
		t.Fatalf("refused writes damaged the stored key: %+v %v", e, err)
	}
	if n, _ := c.Count(ctx, ""); n != 1 {
		t.Fatalf("refused writes stored something: %d keys", n)
	}
}

func TestPluginVerify(t *testing.T) {
	bin := kvhostBin(t)
	out, err := exec.CommandContext(t.Context(), bin, "plugin", "verify", testbin.Plugin(t, "sqlite"), "--set", "path={tmp}/kv.db", "--run", "^core/(keys|batch)", "-v").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: Conformance/core/batch-ops-apply-in-order") {
		t.Fatalf("plugin verify on the sqlite plugin: %v\n%s", err, out)
	}
	out, err = exec.CommandContext(t.Context(), bin, "plugin", "verify", "/nonexistent/plugin").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "/nonexistent/plugin") {
		t.Fatalf("plugin verify on a missing binary: %v\n%s", err, out)
	}
}
