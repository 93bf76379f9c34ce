package boltkv_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvhost/kvhost/examples/boltkv"
	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi/conformance"
)

// retention is the history the stores under test keep: small, so that the
// suite forces compaction quickly.
const retention = 500

func settings(t testing.TB) map[string]string {
	return map[string]string{"path": filepath.Join(t.TempDir(), "kv.db"), "history": fmt.Sprint(retention)}
}

func open(t testing.TB) kv.Backend {
	t.Helper()
	b, err := boltkv.Open(t.Context(), settings(t))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConformance(t *testing.T) {
	conformance.Run(t, open, conformance.WithRetention(retention))
}

func TestConformanceGRPC(t *testing.T) {
	conformance.RunGRPC(t, boltkv.Open, settings, conformance.WithRetention(retention))
}

// The file keeps everything: reopened, it goes on from the same revision.
func TestReopen(t *testing.T) {
	set := settings(t)
	b, err := boltkv.Open(t.Context(), set)
	must(t, err)
	e, err := b.Put(t.Context(), kv.PutRequest{Key: "a", Value: []byte("1")})
	must(t, err)
	must(t, b.Close())
	b, err = boltkv.Open(t.Context(), set)
	must(t, err)
	defer b.Close()
	g, err := b.Get(t.Context(), "a")
	must(t, err)
	if !g.Found || string(g.Entry.Value) != "1" || g.Entry.Version != e.Version || g.Revision != e.Version {
		t.Fatalf("after reopening: %+v, want a=1 at version and revision %d", g, e.Version)
	}
}

func TestSettingsAreChecked(t *testing.T) {
	for _, set := range []map[string]string{{}, {"path": "x", "sync": "maybe"}, {"path": "x", "colour": "blue"}} {
		if _, err := boltkv.Open(t.Context(), set); !errors.Is(err, kv.ErrInvalidArgument) {
			t.Errorf("settings %v: %v, want ErrInvalidArgument", set, err)
		}
	}
}

// The plugin binary passes kvhost plugin verify, and kvhost serve runs it
// by configuration.
func TestPluginBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs binaries")
	}
	dir := t.TempDir()
	plugin := filepath.Join(dir, "kvhost-plugin-boltkv")
	run(t, "go", "build", "-o", plugin, "./cmd/kvhost-plugin-boltkv")
	kvhost := kvhostBinary(t, dir)

	t.Run("verify", func(t *testing.T) {
		out := run(t, kvhost, "plugin", "verify", plugin, "--set", "path={tmp}/kv.db",
			"--set", "history="+fmt.Sprint(retention), "--retention", fmt.Sprint(retention))
		if !strings.Contains(out, "keeps all") {
			t.Fatalf("kvhost plugin verify did not say the plugin keeps every rule:\n%s", out)
		}
	})
	t.Run("serve", func(t *testing.T) { testServe(t, kvhost, plugin) })
}

func testServe(t *testing.T, kvhost, plugin string) {
	dir := t.TempDir()
	addr := freeAddr(t)
	config := fmt.Sprintf("listen: %s\nmetrics_listen: \"\"\ndata_dir: %s\nauth: {anonymous: true}\n"+
		"backend:\n  path: %s\n  settings: {path: %s}\n", addr, dir, plugin, filepath.Join(dir, "kv.db"))
	cfg := filepath.Join(dir, "kvhost.yaml")
	must(t, os.WriteFile(cfg, []byte(config), 0o600))
	ctx, cancel := context.WithCancel(t.Context())
	server := exec.CommandContext(ctx, kvhost, "serve", "--config", cfg)
	server.Cancel = func() error { return server.Process.Signal(os.Interrupt) }
	var logs strings.Builder
	server.Stdout, server.Stderr = &logs, &logs
	must(t, server.Start())
	defer func() { cancel(); _ = server.Wait() }()

	var out []byte
	var err error
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if out, err = exec.Command(kvhost, "put", "--addr", addr, "greeting", "hello").CombinedOutput(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("kvhost put never succeeded: %v\n%s\nserver:\n%s", err, out, logs.String())
	}
	if got := run(t, kvhost, "get", "--addr", addr, "greeting"); !strings.Contains(got, "hello") {
		t.Fatalf("kvhost get greeting: %q, want hello", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "kv.db")); err != nil {
		t.Fatalf("the bbolt file was not written: %v", err)
	}
}

// kvhostBinary is bin/kvhost as `make build` leaves it (KVHOST_BIN_DIR),
// or one built from the repository into dir.
func kvhostBinary(t *testing.T, dir string) string {
	if bin := os.Getenv("KVHOST_BIN_DIR"); bin != "" {
		if p := filepath.Join(bin, "kvhost"); fileExists(p) {
			return p
		}
	}
	p := filepath.Join(dir, "kvhost")
	run(t, "go", "build", "-C", "../..", "-o", p, "./cmd/kvhost")
	return p
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer l.Close()
	return l.Addr().String()
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
