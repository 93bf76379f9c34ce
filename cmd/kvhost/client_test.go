package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/kvhost/kvhost/client"
	"github.com/kvhost/kvhost/host"
	"github.com/kvhost/kvhost/host/server"
	"github.com/kvhost/kvhost/internal/testbin"
)

// The client commands run in-process, as main runs them, against a real
// server (host/server over the memory plugin binary) on a loopback port.

// cliServer starts a server and returns its address.
func cliServer(t *testing.T, opts server.Options) string {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, err := host.Open(t.Context(), host.Config{
		// Revisions from 1, so that the output the tests compare is the
		// README's.
		Plugin:          host.PluginConfig{Path: testbin.Plugin(t, "memory"), Settings: map[string]string{"revision_base": "0"}},
		CleanupInterval: 50 * time.Millisecond,
		Logger:          quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	opts.Logger = quiet
	srv, err := server.New(store, opts)
	if err != nil {
		store.Close()
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		store.Close()
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Stop(ctx)
		store.Close()
	})
	return lis.Addr().String()
}

// syncBuffer is a buffer a running command writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// result is what a command printed and how kvhost would exit.
type result struct {
	out, errOut string
	code        int
}

// newRoot builds the command tree as main does.
func newRoot() *cobra.Command {
	root := &cobra.Command{Use: "kvhost", SilenceUsage: true, SilenceErrors: true}
	addClientCommands(root)
	return root
}

// start runs kvhost with args in the background; wait returns its result.
func start(ctx context.Context, stdin string, args ...string) (stdout, stderr *syncBuffer, wait func() result) {
	root := newRoot()
	stdout, stderr = &syncBuffer{}, &syncBuffer{}
	root.SetArgs(args)
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(stdout)
	root.SetErr(stderr)
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	return stdout, stderr, func() result {
		err := <-done
		r := result{out: stdout.String(), errOut: stderr.String()}
		// What main does with an error.
		if err != nil {
			r.errOut += "kvhost: " + err.Error() + "\n"
			r.code = 1
			var ec exitCoder
			if errors.As(err, &ec) {
				r.code = ec.ExitCode()
			}
		}
		return r
	}
}

func run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	_, _, wait := start(ctx, stdin, args...)
	return wait()
}

// ok runs a command that must succeed and returns its stdout.
func ok(t *testing.T, args ...string) string {
	t.Helper()
	r := run(t, "", args...)
	if r.code != 0 {
		t.Fatalf("kvhost %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.out, r.errOut)
	}
	return r.out
}

// fails runs a command that must fail with code and one line on stderr
// containing every string of want.
func fails(t *testing.T, code int, want []string, args ...string) {
	t.Helper()
	r := run(t, "", args...)
	if r.code != code {
		t.Fatalf("kvhost %s: exit %d, want %d\n%s%s", strings.Join(args, " "), r.code, code, r.out, r.errOut)
	}
	if strings.Count(r.errOut, "\n") != 1 {
		t.Errorf("kvhost %s: stderr is not one line:\n%s", strings.Join(args, " "), r.errOut)
	}
	for _, w := range want {
		if !strings.Contains(r.errOut, w) {
			t.Errorf("kvhost %s: stderr lacks %q:\n%s", strings.Join(args, " "), w, r.errOut)
		}
	}
}

func decode(t *testing.T, line string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("not a JSON object: %q: %v", line, err)
	}
	return m
}

func TestCLIGetPutDel(t *testing.T) {
	t.Setenv("KVHOST_ADDR", cliServer(t, server.Options{Anonymous: true}))

	if out := ok(t, "put", "greeting", "hello, world"); out != "OK, version 1\n" {
		t.Fatalf("put printed %q", out)
	}
	// Exactly the value: no newline added when stdout is not a terminal.
	if out := ok(t, "get", "greeting"); out != "hello, world" {
		t.Fatalf("get printed %q", out)
	}
	js := decode(t, ok(t, "get", "greeting", "-o", "json"))
	if js["key"] != "greeting" || js["value"] != "hello, world" || js["version"] != 1.0 || js["expires_at"] != nil || js["value_base64"] != nil {
		t.Fatalf("get -o json = %v", js)
	}

	// A value from stdin that is not UTF-8 comes back in base64.
	bin := []byte{0xff, 0x00, 'b', '\n'}
	if r := run(t, string(bin), "put", "bin", "-"); r.code != 0 {
		t.Fatalf("put -: %+v", r)
	}
	if out := ok(t, "get", "bin"); out != string(bin) {
		t.Fatalf("get bin = %q", out)
	}
	js = decode(t, ok(t, "get", "bin", "-o", "json"))
	if raw, _ := base64.StdEncoding.DecodeString(js["value"].(string)); js["value_base64"] != true || !bytes.Equal(raw, bin) {
		t.Fatalf("get -o json of binary = %v", js)
	}

	fails(t, exitFailure, []string{"condition failed", `"greeting"`, "version 1"}, "put", "greeting", "x", "--if-absent")
	fails(t, exitFailure, []string{"condition failed", "version 1"}, "put", "greeting", "x", "--if-version", "7")
	if out := ok(t, "put", "greeting", "bye", "--if-version", "1"); !strings.Contains(out, "version 3") {
		t.Fatalf("put --if-version printed %q", out)
	}

	fails(t, exitFailure, []string{"condition failed"}, "del", "greeting", "--if-version", "1")
	if out := ok(t, "del", "greeting", "--if-version", "3"); out != "deleted \"greeting\"\n" {
		t.Fatalf("del printed %q", out)
	}
	if out := ok(t, "del", "greeting"); !strings.Contains(out, "did not exist") {
		t.Fatalf("del of a missing key printed %q", out)
	}
	if js := decode(t, ok(t, "del", "greeting", "-o", "json")); js["deleted"] != false || js["key"] != "greeting" {
		t.Fatalf("del -o json = %v", js)
	}
	fails(t, exitNotFound, []string{`kvhost: key "greeting" not found`}, "get", "greeting")

	// An empty value is a value, and list shows it as "".
	ok(t, "put", "empty", "")
	if out := ok(t, "get", "empty"); out != "" {
		t.Fatalf("get of an empty value printed %q", out)
	}
	if out := ok(t, "list", "empty"); out != "empty\t\"\"\n" {
		t.Fatalf("list of an empty value printed %q", out)
	}
}

func TestCLITTL(t *testing.T) {
	t.Setenv("KVHOST_ADDR", cliServer(t, server.Options{Anonymous: true}))

	if out := ok(t, "put", "s", "v", "--ttl", "1h"); !strings.Contains(out, "expires in 1h0m0s") {
		t.Fatalf("put --ttl printed %q", out)
	}
	if out := ok(t, "ttl", "s"); !strings.Contains(out, "expires in 1h0m0s") && !strings.Contains(out, "expires in 59m59s") {
		t.Fatalf("ttl printed %q", out)
	}
	js := decode(t, ok(t, "ttl", "s", "-o", "json"))
	if ms, _ := js["ttl_ms"].(float64); ms < 3590e3 || ms > 3600e3 || js["expires_at"] == nil {
		t.Fatalf("ttl -o json = %v", js)
	}
	if out := ok(t, "expire", "s", "0"); out != "no expiry\n" {
		t.Fatalf("expire 0 printed %q", out)
	}
	if js := decode(t, ok(t, "ttl", "s", "-o", "json")); js["ttl_ms"] != nil || js["expires_at"] != nil {
		t.Fatalf("ttl -o json without expiry = %v", js)
	}
	if out := ok(t, "expire", "s", "90s", "--if-version", "1"); !strings.Contains(out, "expires in 1m30s") {
		t.Fatalf("expire printed %q", out)
	}
	fails(t, exitFailure, []string{"condition failed"}, "expire", "s", "90s", "--if-version", "5")
	fails(t, exitNotFound, []string{`key "missing" not found`}, "expire", "missing", "1m")
	fails(t, exitNotFound, []string{`key "missing" not found`}, "ttl", "missing")
	fails(t, exitUsage, []string{"DURATION"}, "expire", "s", "soon")

	ok(t, "put", "brief", "v", "--ttl", "50ms")
	time.Sleep(100 * time.Millisecond)
	fails(t, exitNotFound, []string{"not found"}, "get", "brief")
}

func TestCLIListCountIncr(t *testing.T) {
	t.Setenv("KVHOST_ADDR", cliServer(t, server.Options{Anonymous: true}))
	for _, kv := range [][2]string{{"n/1", "up"}, {"n/2", "down\tand out"}, {"n/3", "up"}, {"other", "x"}} {
		ok(t, "put", kv[0], kv[1])
	}

	if out := ok(t, "list", "n/"); out != "n/1\tup\nn/2\t\"down\\tand out\"\nn/3\tup\n" {
		t.Fatalf("list printed %q", out)
	}
	if out := ok(t, "list", "--keys-only"); out != "n/1\nn/2\nn/3\nother\n" {
		t.Fatalf("list --keys-only printed %q", out)
	}
	r := run(t, "", "list", "n/", "--limit", "2", "--keys-only")
	if r.code != 0 || r.out != "n/1\nn/2\n" || !strings.Contains(r.errOut, `--start-after "n/2"`) {
		t.Fatalf("list --limit 2 = %+v", r)
	}
	if out := ok(t, "list", "n/", "--start-after", "n/2", "--keys-only"); out != "n/3\n" {
		t.Fatalf("list --start-after printed %q", out)
	}
	lines := strings.Split(strings.TrimSpace(ok(t, "list", "n/", "-o", "json")), "\n")
	if len(lines) != 3 {
		t.Fatalf("list -o json printed %d lines", len(lines))
	}
	if js := decode(t, lines[1]); js["key"] != "n/2" || js["value"] != "down\tand out" {
		t.Fatalf("list -o json line = %v", js)
	}
	if js := decode(t, strings.TrimSpace(ok(t, "list", "n/", "-o", "json", "--keys-only", "--limit", "1"))); js["value"] != nil || js["version"] == nil {
		t.Fatalf("list -o json --keys-only = %v", js)
	}

	if out := ok(t, "count", "n/"); out != "3\n" {
		t.Fatalf("count printed %q", out)
	}
	if out := ok(t, "count"); out != "4\n" {
		t.Fatalf("count printed %q", out)
	}
	if js := decode(t, ok(t, "count", "n/", "-o", "json")); js["count"] != 3.0 || js["prefix"] != "n/" {
		t.Fatalf("count -o json = %v", js)
	}

	if out := ok(t, "incr", "c"); out != "1\n" {
		t.Fatalf("incr printed %q", out)
	}
	if out := ok(t, "incr", "c", "--", "-5"); out != "-4\n" {
		t.Fatalf("incr -- -5 printed %q", out)
	}
	if js := decode(t, ok(t, "incr", "c", "10", "-o", "json")); js["value"] != 6.0 || js["key"] != "c" {
		t.Fatalf("incr -o json = %v", js)
	}
	fails(t, exitFailure, []string{"not a decimal"}, "incr", "other")
	fails(t, exitUsage, []string{"not an integer"}, "incr", "c", "many")
}

func TestCLIStats(t *testing.T) {
	t.Setenv("KVHOST_ADDR", cliServer(t, server.Options{Anonymous: true}))
	ok(t, "put", "a", "1")
	if out := ok(t, "stats"); !strings.Contains(out, "keys:           1\n") || !strings.Contains(out, "backend:        memory") {
		t.Fatalf("stats printed %q", out)
	}
	js := decode(t, ok(t, "stats", "-o", "json"))
	if js["keys"] != 1.0 || js["backend"] != "memory" || js["backend_keys"] != nil || js["revision"] != 1.0 {
		t.Fatalf("stats -o json = %v, want the tenant's key, revision 1 and no backend totals for a non-admin", js)
	}
	t.Setenv("KVHOST_ADDR", cliServer(t, server.Options{Anonymous: true, AnonymousIdentity: host.Identity{Principal: "me", Tenant: "mine", Admin: true}}))
	ok(t, "put", "b", "22")
	// 10 bytes: the key as stored, "t/mine/b", and the value "22".
	if out := ok(t, "stats"); !strings.Contains(out, "backend keys:   1\n") || !strings.Contains(out, "backend bytes:  10 (10 B)") {
		t.Fatalf("stats for an admin printed %q", out)
	}
}

func TestCLIWatch(t *testing.T) {
	addr := cliServer(t, server.Options{Anonymous: true})
	t.Setenv("KVHOST_ADDR", addr)
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			stdout, stderr, wait := start(ctx, "", "watch", "cfg/", "-o", format)
			waitFor(t, stderr, "watching")

			// Another client writes.
			c, err := client.New(addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			wctx := t.Context()
			if _, err := c.Put(wctx, "cfg/flags", []byte("on")); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Put(wctx, "elsewhere", []byte("x")); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Delete(wctx, "cfg/flags"); err != nil {
				t.Fatal(err)
			}
			waitFor(t, stdout, "DELETE")

			cancel() // Ctrl-C
			r := wait()
			if r.code != 0 {
				t.Fatalf("watch ended with exit %d: %s", r.code, r.errOut)
			}
			lines := strings.Split(strings.TrimSpace(r.out), "\n")
			if format == "text" {
				if strings.Join(lines, "|") != "PUT\tcfg/flags\ton|DELETE\tcfg/flags" {
					t.Fatalf("watch printed %q", r.out)
				}
				return
			}
			if len(lines) != 2 {
				t.Fatalf("watch -o json printed %q", r.out)
			}
			put, del := decode(t, lines[0]), decode(t, lines[1])
			if put["type"] != "PUT" || put["key"] != "cfg/flags" || put["value"] != "on" || put["version"] == nil ||
				del["type"] != "DELETE" || del["value"] != nil || del["version"] != put["version"] {
				t.Fatalf("watch -o json printed %q", r.out)
			}
		})
	}
}

func waitFor(t *testing.T, b *syncBuffer, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(b.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q within 10s; got %q", s, b.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCLITokens(t *testing.T) {
	addr := cliServer(t, server.Options{Tokens: []server.Token{{Token: "sekrit", Principal: "alice", Tenant: "a"}}})
	t.Setenv("KVHOST_ADDR", addr)

	fails(t, exitFailure, []string{"unauthenticated", "set --token or KVHOST_TOKEN"}, "get", "k")
	fails(t, exitFailure, []string{"unauthenticated"}, "get", "k", "--token", "wrong")
	ok(t, "put", "k", "v", "--token", "sekrit")

	t.Setenv("KVHOST_TOKEN", "sekrit")
	if out := ok(t, "get", "k"); out != "v" {
		t.Fatalf("get with KVHOST_TOKEN printed %q", out)
	}
	// The flag wins over the environment.
	fails(t, exitFailure, []string{"unauthenticated"}, "get", "k", "--token", "wrong")
	// Help never shows the token from the environment.
	if r := run(t, "", "get", "--help"); strings.Contains(r.out+r.errOut, "sekrit") || !strings.Contains(r.out, "KVHOST_TOKEN") {
		t.Fatalf("get --help:\n%s", r.out)
	}
}

func TestCLIErrors(t *testing.T) {
	// A port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := l.Addr().String()
	l.Close()
	t.Setenv("KVHOST_ADDR", down)

	tests := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"no server", []string{"get", "k"}, exitFailure, []string{"server " + down + " unavailable"}},
		{"--addr wins over KVHOST_ADDR", []string{"count", "--addr", "127.0.0.1:1"}, exitFailure, []string{"server 127.0.0.1:1 unavailable"}},
		{"missing argument", []string{"get"}, exitUsage, []string{"get: got 0 argument(s); usage: kvhost get KEY", "kvhost get --help"}},
		{"extra argument", []string{"count", "a", "b"}, exitUsage, []string{"count: got 2 argument(s)"}},
		{"unknown flag", []string{"get", "k", "--bogus"}, exitUsage, []string{"unknown flag: --bogus"}},
		{"bad flag value", []string{"put", "k", "v", "--ttl", "soon"}, exitUsage, []string{"--ttl"}},
		{"bad output", []string{"get", "k", "-o", "yaml"}, exitUsage, []string{"--output must be text or json"}},
		{"conflicting conditions", []string{"put", "k", "v", "--if-absent", "--if-version", "2"}, exitUsage, []string{"exclude each other"}},
		{"insecure and tls", []string{"get", "k", "--insecure", "--tls"}, exitUsage, []string{"--insecure excludes"}},
		{"bad ca file", []string{"get", "k", "--tls-ca", "/nonexistent/ca.pem"}, exitFailure, []string{"--tls-ca", "no such file"}},
		{"negative limit", []string{"list", "--limit", "-1"}, exitUsage, []string{"--limit -1"}},
		// Refused before anything is sent: the client validates keys.
		{"key too long", []string{"get", strings.Repeat("k", 2000)}, exitFailure, []string{"invalid argument", "2000 bytes"}},
		{"negative ttl", []string{"put", "k", "v", "--ttl", "-1s"}, exitFailure, []string{"invalid argument", "negative"}},
		{"timeout", []string{"get", "k", "--timeout", "1ns"}, exitFailure, []string{"within --timeout 1ns"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fails(t, tt.code, tt.want, tt.args...)
		})
	}
}

func TestCLITLS(t *testing.T) {
	cert, caFile := selfSigned(t)
	addr := cliServer(t, server.Options{Anonymous: true, TLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
	t.Setenv("KVHOST_ADDR", addr)

	ok(t, "put", "k", "over tls", "--tls-ca", caFile)
	if out := ok(t, "get", "k", "--tls-ca", caFile); out != "over tls" {
		t.Fatalf("get over TLS printed %q", out)
	}
	// Loopback defaults to plaintext, which a TLS server does not speak;
	// --tls with the system's roots does not trust a private CA.
	fails(t, exitFailure, []string{"unavailable"}, "get", "k")
	fails(t, exitFailure, []string{"unavailable", "certificate"}, "get", "k", "--tls")
	empty := filepath.Join(t.TempDir(), "empty.pem")
	if err := os.WriteFile(empty, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	fails(t, exitFailure, []string{"holds no PEM certificate"}, "get", "k", "--tls-ca", empty)
}

// selfSigned makes a certificate for 127.0.0.1 that is its own CA, and
// writes the CA's PEM to a file.
func selfSigned(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kvhost test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, caFile
}
