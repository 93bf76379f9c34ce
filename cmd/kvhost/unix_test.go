package main_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kvhost/kvhost/client"
)

// The API on a Unix socket, end to end through the real binary: the same
// server, tokens and data as over TCP; the socket made 0600 and removed on
// shutdown; a live server's socket refused, a killed server's replaced;
// the CLI and the Go client both reach it as unix:///path.
func TestUnixSocket(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "kvhost.sock")
	cfg := "listen_unix: " + sock + "\n" + twoTenants
	s := startServerIn(t, mkdir(t, dir, "a"), cfg)

	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket file mode %v, want a socket with 0600", fi.Mode())
	}

	ctx := t.Context()
	addr := "unix://" + sock
	alice, err := client.New(addr, client.WithToken("tok-alice"))
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	if _, err := alice.Put(ctx, "via/unix", []byte("1")); err != nil {
		t.Fatalf("put over the unix socket: %v", err)
	}
	// The same store and tenant over TCP.
	if e, err := s.client(t, "tok-alice").Get(ctx, "via/unix"); err != nil || string(e.Value) != "1" {
		t.Fatalf("get over TCP of a key put over the socket: %+v %v", e, err)
	}
	// The same authentication: no token, no call.
	anon, err := client.New(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	if _, err := anon.Get(ctx, "via/unix"); !errors.Is(err, client.ErrUnauthenticated) {
		t.Fatalf("get over the socket without a token: %v, want ErrUnauthenticated", err)
	}

	// The CLI, with --addr naming the socket.
	cli := func(args ...string) (string, error) {
		cmd := exec.Command(kvhostBin(t), append(args, "--addr", addr)...)
		cmd.Env = append(os.Environ(), "KVHOST_TOKEN=tok-alice")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	if out, err := cli("put", "via/cli", "2"); err != nil {
		t.Fatalf("kvhost put --addr %s: %v\n%s", addr, err, out)
	}
	if out, err := cli("get", "via/cli"); err != nil || strings.TrimSpace(out) != "2" {
		t.Fatalf("kvhost get --addr %s: %q %v", addr, out, err)
	}

	// A second server on the same socket path is refused while the first
	// answers, and leaves the first one's socket alone.
	other := mkdir(t, dir, "b")
	otherCfg := filepath.Join(other, "kvhost.yaml")
	if err := os.WriteFile(otherCfg, []byte("listen: 127.0.0.1:0\nmetrics_listen: \"\"\ndata_dir: "+
		filepath.Join(other, "data")+"\n"+cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(kvhostBin(t), "serve", "--config", otherCfg)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "another server is listening") {
		t.Fatalf("a second server on a live socket: %v\n%s", err, out)
	}
	if _, err := alice.Get(ctx, "via/cli"); err != nil {
		t.Fatalf("the first server's socket after the refused second: %v", err)
	}

	// SIGKILL leaves the socket file behind; the next server replaces it.
	pluginPid := int(s.pluginPid.Load())
	if err := s.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = s.cmd.Wait()
	_ = syscall.Kill(pluginPid, syscall.SIGKILL) // its parent cannot stop it now
	if _, err := os.Lstat(sock); err != nil {
		t.Fatalf("after SIGKILL the socket file should be left behind (the case this test is about): %v", err)
	}
	s2 := startServerIn(t, mkdir(t, dir, "a"), cfg)
	if e, err := alice.Get(ctx, "via/cli"); err != nil || string(e.Value) != "2" {
		t.Fatalf("get over the replaced socket: %+v %v", e, err)
	}
	if !strings.Contains(s2.logText(), "listening on unix socket") {
		t.Fatalf("no log of the socket:\n%s", s2.logText())
	}

	// SIGTERM removes the socket file.
	if err := s2.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := s2.cmd.Wait(); err != nil {
		t.Fatalf("kvhost after SIGTERM: %v", err)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("socket file after shutdown: %v, want it removed", err)
	}
}

func mkdir(t testing.TB, parts ...string) string {
	t.Helper()
	dir := filepath.Join(parts...)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

// listen_unix_mode 0660 lets the group in; the mode is checked at load.
func TestUnixSocketGroupMode(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "kvhost.sock")
	startServerIn(t, mkdir(t, dir, "a"), "listen_unix: "+sock+"\nlisten_unix_mode: 0660\nauth: {anonymous: true}\n")
	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode %v, want 0660", fi.Mode().Perm())
	}
	c, err := client.New("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // only a hung server ends here
	defer cancel()
	if _, err := c.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkE2EGetUnix: a point get through the public API over the Unix
// socket and over TCP loopback, with the host's read cache (the default:
// a hit never reaches the plugin, so the API hop is most of the time) and
// without it, all four alternating in one loop, in a rotating order, so
// that every side sees the same load.
//
//	KVHOST_BIN_DIR=$PWD/bin go test -run '^$' -bench E2EGetUnix -benchtime 10000x -count 3 ./cmd/kvhost/
func BenchmarkE2EGetUnix(b *testing.B) {
	type side struct {
		name string
		c    *client.Client
	}
	var sides []side
	for _, srv := range []struct{ name, config string }{
		{"cached", ""},
		{"uncached", "cache: {max_bytes: -1}\n"},
	} {
		sock := filepath.Join(b.TempDir(), "kvhost.sock")
		addr := startServerB(b, "listen_unix: "+sock+"\nauth: {anonymous: true}\n"+srv.config)
		for _, t := range []struct{ name, addr string }{{"tcp", addr}, {"unix", "unix://" + sock}} {
			c, err := client.New(t.addr)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = c.Close() })
			sides = append(sides, side{srv.name + "-" + t.name, c})
		}
		for i := range 1000 {
			if _, err := sides[len(sides)-1].c.Put(b.Context(), fmt.Sprintf("actor/%06d", i), []byte("node-1:pid-4242")); err != nil {
				b.Fatal(err)
			}
		}
	}
	lat := make([][]time.Duration, len(sides))
	i := 0
	for b.Loop() {
		for j := range sides {
			k := (i + j) % len(sides)
			t0 := time.Now()
			if _, err := sides[k].c.Get(b.Context(), fmt.Sprintf("actor/%06d", i%1000)); err != nil {
				b.Fatalf("%s: %v", sides[k].name, err)
			}
			lat[k] = append(lat[k], time.Since(t0))
		}
		i++
	}
	p := map[string]float64{}
	for k, l := range lat {
		slices.Sort(l)
		p[sides[k].name] = float64(l[len(l)/2].Microseconds())
		b.ReportMetric(p[sides[k].name], sides[k].name+"-p50-us")
		b.ReportMetric(float64(l[len(l)*99/100].Microseconds()), sides[k].name+"-p99-us")
	}
	b.ReportMetric(p["cached-unix"]/p["cached-tcp"], "cached-unix/tcp")
	b.ReportMetric(p["uncached-unix"]/p["uncached-tcp"], "uncached-unix/tcp")
}
