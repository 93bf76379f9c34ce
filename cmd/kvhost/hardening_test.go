package main_test

// Hardening, tried from outside as an attacker, an operator and a bad day
// would: real kvhost processes, real plugins, real sockets.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/kvhost/kvhost/client"
)

// peakRSS reads a process's peak resident set (VmHWM) in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}

// Unauthenticated callers are refused from their headers: eight parallel
// 16 MiB requests without a token (under the request limit, so only
// authentication can stop them) cost the server almost nothing. Were they
// read whole, the server's peak memory would grow by up to 128 MiB; the
// bound below is less than two of them.
func TestUnauthenticatedLargeRequestsAreCheap(t *testing.T) {
	s := startServer(t, "auth: {tokens: [{token: tok, principal: p, tenant: t}]}\nlimits: {max_value_bytes: 16777216}\n")
	big, err := client.New(s.addr, client.WithDialOptions(grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(256<<20))))
	if err != nil {
		t.Fatal(err)
	}
	defer big.Close()
	ctx := t.Context()
	// Warm the server up so its baseline includes the ordinary working set.
	if _, err := s.client(t, "tok").Put(ctx, "warm", make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	before := peakRSS(t, s.cmd.Process.Pid)
	value := make([]byte, 16<<20)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			_, err := big.Put(ctx, "k", value)
			if !errors.Is(err, client.ErrUnauthenticated) {
				t.Errorf("16 MiB put without a token: %v, want ErrUnauthenticated", err)
			}
		})
	}
	wg.Wait()
	if grew := peakRSS(t, s.cmd.Process.Pid) - before; grew > 32<<20 {
		t.Fatalf("the server's peak memory grew by %d MiB under unauthenticated requests", grew>>20)
	}
	// An authenticated request over the request limit is refused too, as
	// too large, and the server serves on.
	authed, err := client.New(s.addr, client.WithToken("tok"), client.WithDialOptions(grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(256<<20))))
	if err != nil {
		t.Fatal(err)
	}
	defer authed.Close()
	if _, err := authed.Put(ctx, "k", make([]byte, 64<<20)); !errors.Is(err, client.ErrTooLarge) {
		t.Fatalf("64 MiB put over the 16.5 MiB request limit: %v, want ErrTooLarge", err)
	}
	if _, err := authed.Put(ctx, "k", []byte("small")); err != nil {
		t.Fatalf("put after the refusals: %v", err)
	}
}

// Exposure beyond loopback is refused unless the configuration names the
// allowance; the message names the setting.
func TestServeRefusesUnsafeExposure(t *testing.T) {
	bin := kvhostBin(t)
	dir := t.TempDir()
	cases := map[string]string{
		"listen: 0.0.0.0:0\nmetrics_listen: ''\nauth: {anonymous: true}\n":                                        "auth.allow_anonymous_on_network",
		"listen: 0.0.0.0:0\nmetrics_listen: ''\nauth: {tokens: [{token: x, principal: p, tenant: t}]}\n":          "tls.allow_plaintext_on_network",
		"listen: 127.0.0.1:0\nmetrics_listen: 0.0.0.0:0\nauth: {tokens: [{token: x, principal: p, tenant: t}]}\n": "metrics_token",
	}
	for config, want := range cases {
		p := filepath.Join(dir, "exposed.yaml")
		if err := os.WriteFile(p, []byte("data_dir: "+dir+"/data\n"+config), 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		out, err := exec.CommandContext(ctx, bin, "serve", "--config", p).CombinedOutput()
		cancel()
		if err == nil || !strings.Contains(string(out), want) {
			t.Errorf("serve with %q: %v\n%s\nwant a refusal naming %s", config, err, out, want)
		}
	}
}

// SIGHUP swaps the tokens while calls go on: a token in both the old and
// the new set never fails a call, a new token starts working, and a token
// removed later stops.
func TestTokensReloadOnSIGHUP(t *testing.T) {
	s := startServer(t, "auth: {tokens: [{token: tok-a, principal: a, tenant: t}]}\n")
	cfgPath := filepath.Join(s.dir, "kvhost.yaml")
	rewrite := func(tokens string) {
		t.Helper()
		data, err := os.ReadFile(cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(data), "\n")
		for i, l := range lines {
			if strings.HasPrefix(l, "auth:") {
				lines[i] = "auth: {tokens: [" + tokens + "]}"
			}
		}
		if err := os.WriteFile(cfgPath, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	ctx := t.Context()
	a := s.client(t, "tok-a")
	b := s.client(t, "tok-b")
	var calls, failures atomic.Int64
	var phase atomic.Int32 // 1 once tok-a is being removed
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				_, err := a.Put(ctx, "w"+strconv.Itoa(w), []byte(strconv.Itoa(i)))
				calls.Add(1)
				if err != nil && phase.Load() == 0 {
					failures.Add(1)
					t.Errorf("a call with a token kept across the reload failed: %v", err)
				}
			}
		})
	}
	within(t, 90*time.Second, "calls to be under way", func() bool { return calls.Load() > 50 })
	rewrite("{token: tok-a, principal: a, tenant: t}, {token: tok-b, principal: b, tenant: t}")
	within(t, 90*time.Second, "the new token to work", func() bool { _, err := b.Get(ctx, "w0"); return err == nil })
	n := calls.Load()
	within(t, 90*time.Second, "calls to go on after the reload", func() bool { return calls.Load() > n+50 })
	phase.Store(1)
	rewrite("{token: tok-b, principal: b, tenant: t}")
	within(t, 90*time.Second, "the removed token to stop working", func() bool {
		_, err := a.Get(ctx, "w0")
		return errors.Is(err, client.ErrUnauthenticated)
	})
	close(stop)
	wg.Wait()
	if _, err := b.Get(ctx, "w0"); err != nil {
		t.Fatalf("the kept token after the second reload: %v", err)
	}
	// A file that does not load keeps the tokens in force.
	rewrite("{token: '', principal: nobody, tenant: t}")
	within(t, 90*time.Second, "the refused reload to be logged", func() bool { return strings.Contains(s.logText(), "tokens not reloaded") })
	if _, err := b.Get(ctx, "w0"); err != nil {
		t.Fatalf("a refused reload changed the tokens: %v", err)
	}
}

// A plugin frozen with SIGSTOP: /readyz fails within a few seconds, calls
// fail fast, and the host kills and restarts the plugin and recovers.
func TestFrozenPluginReadiness(t *testing.T) {
	s := startServer(t, "auth: {anonymous: true}\nbackend: {plugin: sqlite}\n")
	c := s.client(t, "")
	ctx := t.Context()
	if _, err := c.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	ready := func() int {
		resp, err := http.Get("http://" + s.metrics + "/readyz")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := ready(); code != http.StatusOK {
		t.Fatalf("/readyz before: %d", code)
	}
	pid := int(s.pluginPid.Load())
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
	within(t, 90*time.Second, "/readyz to fail", func() bool { return ready() == http.StatusServiceUnavailable })
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	_, err := c.Get(cctx, "k")
	cancel()
	if !errors.Is(err, client.ErrUnavailable) && int(s.pluginPid.Load()) == pid {
		t.Fatalf("get while the plugin is frozen: %v, want UNAVAILABLE at once", err)
	}
	within(t, 90*time.Second, "the plugin to be replaced and /readyz to pass", func() bool {
		return int(s.pluginPid.Load()) != pid && ready() == http.StatusOK
	})
	if e, err := c.Get(ctx, "k"); err != nil || string(e.Value) != "v" {
		t.Fatalf("get after the restart: %+v %v (SQLite keeps the acknowledged write)", e, err)
	}
}

// Eight parallel listings of 150 values of 1 MiB succeed page by page at
// the default page size (4 MiB), and the plugin's memory stays bounded:
// without byte-bounded pages each listing asked for 1000 entries, a
// 150 MiB reply, and four of them took the plugin to 1.87 GB.
func TestParallelListsOfLargeValues(t *testing.T) {
	s := startServer(t, "auth: {anonymous: true}\nbackend: {plugin: sqlite}\n")
	c := s.client(t, "")
	ctx := t.Context()
	value := make([]byte, 1<<20)
	const n = 150
	for i := range n {
		value[0] = byte(i)
		if _, err := c.Put(ctx, fmt.Sprintf("big/%03d", i), value); err != nil {
			t.Fatal(err)
		}
	}
	// The plugin's anonymous memory (its heap and stacks; not the pages of
	// the database file SQLite maps, which the kernel may drop at will),
	// sampled while the listings run.
	pid := int(s.pluginPid.Load())
	var peak atomic.Int64
	sampled := make(chan struct{})
	stopSampling := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			peak.Store(max(peak.Load(), rssAnon(t, pid)))
			select {
			case <-stopSampling:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			i := 0
			for e, err := range c.All(ctx, "big/") {
				if err != nil {
					t.Errorf("listing after %d entries: %v", i, err)
					return
				}
				if len(e.Value) != len(value) || e.Value[0] != byte(i) {
					t.Errorf("entry %d of the listing is %s with %d bytes", i, e.Key, len(e.Value))
					return
				}
				i++
			}
			if i != n {
				t.Errorf("listed %d of %d entries", i, n)
			}
		})
	}
	wg.Wait()
	close(stopSampling)
	<-sampled
	t.Logf("plugin anonymous memory peaked at %d MiB", peak.Load()>>20)
	if peak.Load() > 256<<20 {
		t.Fatalf("the plugin's anonymous memory reached %d MiB listing 8 × 150 MiB in 4 MiB pages; want under 256 MiB", peak.Load()>>20)
	}
}

// rssAnon reads a process's resident anonymous memory (RssAnon) in bytes.
func rssAnon(t *testing.T, pid int) int64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Error(err)
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "RssAnon:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
