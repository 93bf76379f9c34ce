package main_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kvhost/kvhost/client"
	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/policies/policytest"
)

// Compiling the three example policies takes about 8 s on a loaded
// two-core machine (host/policy's BenchmarkLoad/cold), and every kvhost a
// test started compiled them again, into its own data directory, within
// startServer's fixed wait for the server to serve: TestPoliciesEndToEnd
// ran past it. So the policy tests share one compilation cache
// (policyCacheDir), fill it with `kvhost policy compile` before starting
// a server (compilePolicies), and point the server at it
// (policy_cache_dir): a server's start then reads compiled code.

// policyCacheDir is the compilation cache shared by the policy tests, the
// one host/policy's tests use. wazero keys compiled code by the module's
// bytes, its own version and the CPU, and writes entries atomically, so
// the directory may be shared by every test binary and outlive them:
// each module version is compiled once per machine.
func policyCacheDir(t testing.TB) string {
	t.Helper()
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "kvhost-policytest", "wazero")
}

// compilePolicies compiles the modules at paths into policyCacheDir, under
// no deadline but the test's own. The kvhost binary does it, as a deploy
// step would: a -race test binary would take seven times as long even to
// read the cache.
func compilePolicies(t testing.TB, paths ...string) {
	t.Helper()
	args := append([]string{"policy", "compile", "--cache-dir", policyCacheDir(t)}, paths...)
	if out, err := exec.CommandContext(t.Context(), kvhostBin(t), args...).CombinedOutput(); err != nil {
		t.Fatalf("kvhost policy compile: %v\n%s", err, out)
	}
}

// decisionTimeout is the policy deadline of tests that check decisions,
// not deadlines (host/policy tests those): a 10 ms deadline is wall-clock
// time, and a loaded machine that deschedules kvhost mid-evaluation for
// that long fails the operation closed.
const decisionTimeout = "10s"

// copyFile copies src to dst through a temporary file and a rename, the
// way a deploy tool replaces a file.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dst, data)
}

func writeFile(t *testing.T, dst string, data []byte) {
	t.Helper()
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
}

// eventually polls check until it passes. What the tests wait for is a
// reload (a file watch's 200 ms debounce or a signal, then a load from the
// warm compilation cache) or a log line: well under a second on an idle
// machine. The minute is for a loaded one; it only turns a reload that
// never comes into a failure that names it.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	timeout := time.After(time.Minute)
	for {
		err := check()
		if err == nil {
			return
		}
		select {
		case <-poll.C:
		case <-timeout:
			t.Fatalf("%s: still %v after a minute", what, err)
		}
	}
}

// The three example policies, configured in the host's config file, on a
// running kvhost with the SQLite backend.
func TestPoliciesEndToEnd(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for _, name := range policytest.Examples {
		paths = append(paths, filepath.Join(dir, name+".wasm"))
		copyFile(t, policytest.Build(t, "policies/"+name), paths[len(paths)-1])
	}
	compilePolicies(t, paths...)
	aclConfig := filepath.Join(dir, "acl.yaml")
	writeFile(t, aclConfig, []byte(`rules:
  - {principals: [alice], prefixes: [""], operations: ["*"]}
  - {principals: [bob], prefixes: ["app/"], operations: [read, list]}
`))
	s := startServer(t, `
auth:
  tokens:
    - {token: tok-alice, principal: alice, tenant: acme}
    - {token: tok-bob, principal: bob, tenant: acme}
policy_cache_dir: `+policyCacheDir(t)+`
policies:
  - name: keyvalidation
    path: `+dir+`/keyvalidation.wasm
    timeout: `+decisionTimeout+`
    config:
      max_key_length: 64
      reserved_prefixes: ["sys/"]
  - name: ttlrules
    path: `+dir+`/ttlrules.wasm
    timeout: `+decisionTimeout+`
    config:
      rules:
        - {prefix: "session:", default: 1h, max: 24h, required: true}
        - {prefix: "node:", max: 60s, required: true}
  - name: acl
    path: `+dir+`/acl.wasm
    timeout: `+decisionTimeout+`
    config_file: `+aclConfig+`
`)
	ctx := t.Context()
	alice := s.client(t, "tok-alice")
	bob := s.client(t, "tok-bob")

	if _, err := alice.Put(ctx, "app/config", []byte("v1")); err != nil {
		t.Fatalf("allowed put: %v", err)
	}
	denials := []struct {
		name, policy string
		err          error
	}{}
	deny := func(name, policy string, err error) {
		denials = append(denials, struct {
			name, policy string
			err          error
		}{name, policy, err})
	}
	_, err := alice.Put(ctx, "sys/secret", []byte("x"))
	deny("reserved prefix", "keyvalidation", err)
	_, err = alice.Put(ctx, strings.Repeat("k", 65), []byte("x"))
	deny("key too long for the policy", "keyvalidation", err)
	_, err = alice.Put(ctx, "session:1", []byte("x"), client.WithTTL(48*time.Hour))
	deny("session ttl above 24h", "ttlrules", err)
	_, err = alice.Put(ctx, "node:1", []byte("x"))
	deny("node without ttl", "ttlrules", err)
	_, err = bob.Put(ctx, "app/config", []byte("bob's"))
	deny("bob may not write", "acl", err)
	_, err = bob.Get(ctx, "other/x")
	deny("bob may not read outside app/", "acl", err)
	_, err = bob.Batch(ctx, []kv.Op{kv.PutOp("app/x", nil, 0, kv.Condition{})})
	deny("bob may not write in a batch", "acl", err)
	_, err = bob.Watch(ctx, "")
	deny("bob may not watch", "acl", err)
	for _, d := range denials {
		if !errors.Is(d.err, client.ErrPermissionDenied) || !strings.Contains(d.err.Error(), `"`+d.policy+`"`) {
			t.Errorf("%s: %v, want permission denied naming policy %q and why", d.name, d.err, d.policy)
		}
	}
	// ttlrules imposes a default TTL.
	e, err := alice.Put(ctx, "session:2", []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if left := time.Until(e.ExpiresAt); left < 59*time.Minute || left > time.Hour+time.Minute {
		t.Fatalf("session without a ttl got expiry in %v, want the policy's 1h default", left)
	}
	if e, err := bob.Get(ctx, "app/config"); err != nil || string(e.Value) != "v1" {
		t.Fatalf("bob's allowed read: %+v %v", e, err)
	}

	// The acl's configuration changes on disk: bob may now write, without a restart.
	writeFile(t, aclConfig, []byte(`rules:
  - {principals: [alice], prefixes: [""], operations: ["*"]}
  - {principals: [bob], prefixes: ["app/"], operations: [read, list, write]}
`))
	eventually(t, "bob writes after the acl change", func() error {
		_, err := bob.Put(ctx, "app/config", []byte("bob's"))
		return err
	})

	// A broken replacement module is refused; the running policy stays.
	writeFile(t, filepath.Join(dir, "keyvalidation.wasm"), []byte("\x00asm\x01\x00\x00\x00garbage"))
	eventually(t, "the broken module is reported", func() error {
		if !strings.Contains(s.logText(), `refused; the running policies stay" policy=keyvalidation`) {
			return errors.New("no log line yet")
		}
		return nil
	})
	if os.Getenv("KVHOST_E2E_LOG") != "" {
		t.Log(s.logText())
	}
	if _, err := alice.Put(ctx, "sys/secret", []byte("x")); !errors.Is(err, client.ErrPermissionDenied) {
		t.Fatalf("after a broken replacement, the old keyvalidation must still deny: %v", err)
	}
	if _, err := alice.Put(ctx, "app/ok", []byte("x")); err != nil {
		t.Fatalf("after a broken replacement, the host must keep serving: %v", err)
	}
}

// Audit mode: a denial is logged and counted, not enforced.
func TestPolicyAuditMode(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, policytest.Build(t, "policies/keyvalidation"), filepath.Join(dir, "keyvalidation.wasm"))
	compilePolicies(t, filepath.Join(dir, "keyvalidation.wasm"))
	s := startServer(t, `
auth: {anonymous: true}
policy_cache_dir: `+policyCacheDir(t)+`
policies:
  - name: keyvalidation
    path: `+dir+`/keyvalidation.wasm
    timeout: `+decisionTimeout+`
    mode: audit
    config: {reserved_prefixes: ["sys/"]}
`)
	c := s.client(t, "")
	if _, err := c.Put(t.Context(), "sys/x", []byte("x")); err != nil {
		t.Fatalf("audit mode enforced a denial: %v", err)
	}
	if e, err := c.Get(t.Context(), "sys/x"); err != nil || string(e.Value) != "x" {
		t.Fatalf("audit mode: the put was not applied: %+v %v", e, err)
	}
	eventually(t, "audit denial logged", func() error {
		if !strings.Contains(s.logText(), `msg="policy: audit: would deny" policy=keyvalidation`) || !strings.Contains(s.logText(), "sys/x") {
			return errors.New("no audit denial of sys/x in the log")
		}
		return nil
	})
	resp, err := http.Get("http://" + s.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !regexp.MustCompile(`kvhost_policy_denials_total\{[^}]*mode="audit"[^}]*policy="keyvalidation"[^}]*\} [1-9]`).Match(body) {
		t.Fatalf("audit denial not counted in /metrics:\n%s", grepLines(string(body), "denials"))
	}
}

func TestPolicyTestCommand(t *testing.T) {
	bin := kvhostBin(t)
	dir := t.TempDir()
	wasm := filepath.Join(dir, "ttlrules.wasm")
	copyFile(t, policytest.Build(t, "policies/ttlrules"), wasm)
	writeFile(t, filepath.Join(dir, "ttl.yaml"), []byte("rules:\n  - {prefix: \"session:\", default: 1h, max: 24h, required: true}\n"))
	writeFile(t, filepath.Join(dir, "good.yaml"), []byte(`cases:
  - name: sessions get the default
    request: {op: put, key: "session:1"}
    expect: {allow: true, ttl: 1h}
  - name: long sessions are refused
    request: {op: put, key: "session:1", ttl: 48h}
    expect: {allow: false, policy: ttlrules}
`))
	writeFile(t, filepath.Join(dir, "bad.yaml"), []byte(`cases:
  - name: a wrong expectation
    request: {op: put, key: "session:1", ttl: 48h}
    expect: {allow: true}
`))
	compilePolicies(t, wasm)
	// The cases check decisions: a generous deadline (decisionTimeout).
	policyTest := func(cases string) ([]byte, error) {
		return exec.CommandContext(t.Context(), bin, "policy", "test", wasm, "--config", filepath.Join(dir, "ttl.yaml"),
			"--cache-dir", policyCacheDir(t), "--timeout", decisionTimeout, filepath.Join(dir, cases)).CombinedOutput()
	}
	out, err := policyTest("good.yaml")
	if err != nil {
		t.Fatalf("policy test with passing cases: %v\n%s", err, out)
	}
	out, err = policyTest("bad.yaml")
	if err == nil || !strings.Contains(string(out), "a wrong expectation") {
		t.Fatalf("policy test with a failing case: %v\n%s", err, out)
	}
	// The default deadline: evaluations past it are counted, not errors.
	out, err = exec.CommandContext(t.Context(), bin, "policy", "bench", wasm, "--config", filepath.Join(dir, "ttl.yaml"),
		"--cache-dir", policyCacheDir(t), "--duration", "200ms").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "p50") || !strings.Contains(string(out), "past the deadline") {
		t.Fatalf("policy bench: %v\n%s", err, out)
	}
	out, err = exec.CommandContext(t.Context(), bin, "policy", "compile", wasm).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--cache-dir is required") {
		t.Fatalf("policy compile without a cache: %v\n%s", err, out)
	}
}

// SIGHUP reads the configuration file again: a policy added to it takes
// effect without a restart, and a broken policies section is refused.
func TestPolicySIGHUP(t *testing.T) {
	dir := t.TempDir()
	wasm := filepath.Join(dir, "keyvalidation.wasm")
	copyFile(t, policytest.Build(t, "policies/keyvalidation"), wasm)
	compilePolicies(t, wasm)
	s := startServer(t, "auth: {anonymous: true}\npolicy_cache_dir: "+policyCacheDir(t)+"\n")
	c := s.client(t, "")
	ctx := t.Context()
	if _, err := c.Put(ctx, "sys/x", []byte("1")); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(s.dir, "kvhost.yaml")
	base, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, cfgPath, append(base, []byte("policies:\n  - {name: keys, path: "+wasm+", timeout: "+decisionTimeout+", config: {reserved_prefixes: [\"sys/\"]}}\n")...))
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the policy added by SIGHUP denies", func() error {
		_, err := c.Put(ctx, "sys/x", []byte("2"))
		if !errors.Is(err, client.ErrPermissionDenied) {
			return fmt.Errorf("put sys/x: %v", err)
		}
		return nil
	})
	writeFile(t, cfgPath, append(base, []byte("policies:\n  - {name: keys, path: "+dir+"/missing.wasm}\n")...))
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the broken section is refused", func() error {
		if !strings.Contains(s.logText(), "policy reload on SIGHUP refused") {
			return errors.New("no refusal logged")
		}
		return nil
	})
	if _, err := c.Put(ctx, "sys/x", []byte("3")); !errors.Is(err, client.ErrPermissionDenied) {
		t.Fatalf("after a refused reload the running policy must stay: %v", err)
	}
}

// Misbehaving policies on a running kvhost: a loop, a panic and unbounded
// allocation each fail the operation closed with an error naming the
// policy and what happened, and the host keeps serving; a module without
// the ABI's exports is refused at start with an error naming what is
// missing.
func TestMisbehavingPolicies(t *testing.T) {
	dir := t.TempDir()
	wasm := filepath.Join(dir, "misbehave.wasm")
	copyFile(t, policytest.Build(t, "host/policy/testdata/misbehave"), wasm)
	compilePolicies(t, wasm)
	s := startServer(t, `
auth: {anonymous: true}
policy_cache_dir: `+policyCacheDir(t)+`
policies:
  - name: misbehave
    path: `+wasm+`
    timeout: 2s
    memory_limit_pages: 256
    pool_size: 1
`)
	c := s.client(t, "")
	ctx := t.Context()
	for _, tc := range []struct{ key, want string }{
		{"loop/x", "deadline"},
		{"panic/x", "misbehave"},
		{"alloc/x", "misbehave"},
	} {
		_, err := c.Put(ctx, tc.key, []byte("v"))
		if !errors.Is(err, client.ErrInternal) || !strings.Contains(err.Error(), `policy "misbehave"`) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("put %s: %v, want a fail-closed error naming the policy and %q", tc.key, err, tc.want)
		}
		eventually(t, "the host keeps serving after "+tc.key, func() error {
			_, err := c.Put(ctx, "ok/"+tc.key, []byte("v"))
			return err
		})
	}
	res, err := c.List(ctx, "", client.KeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range res.Entries {
		if !strings.HasPrefix(e.Key, "ok/") {
			t.Errorf("a put refused by a failing policy stored %q", e.Key)
		}
	}

	empty := filepath.Join(dir, "empty.wasm")
	writeFile(t, empty, []byte("\x00asm\x01\x00\x00\x00"))
	cfg := filepath.Join(dir, "bad.yaml")
	writeFile(t, cfg, []byte("listen: 127.0.0.1:0\nmetrics_listen: \"\"\ndata_dir: "+dir+"/data\nauth: {anonymous: true}\npolicies:\n  - {name: empty, path: "+empty+"}\n"))
	out, err := exec.CommandContext(ctx, kvhostBin(t), "serve", "--config", cfg).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "kvhost_evaluate") {
		t.Fatalf("a module without the ABI's exports: %v\n%s", err, out)
	}
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// A client's near cache does not outlive the rules it read under: when a
// new policy chain takes effect, every tracking session is reset, so a
// key the new rules deny is denied to a client that had it in memory.
func TestPolicyReloadResetsNearCaches(t *testing.T) {
	dir := t.TempDir()
	wasm := filepath.Join(dir, "acl.wasm")
	copyFile(t, policytest.Build(t, "policies/acl"), wasm)
	compilePolicies(t, wasm)
	aclConfig := filepath.Join(dir, "acl.yaml")
	writeFile(t, aclConfig, []byte("rules:\n  - {principals: [\"@anonymous\"], prefixes: [\"\"], operations: [\"*\"]}\n"))
	s := startServer(t, "auth: {anonymous: true}\npolicy_cache_dir: "+policyCacheDir(t)+"\npolicies:\n  - {name: acl, path: "+wasm+", timeout: "+decisionTimeout+", config_file: "+aclConfig+"}\n")
	ctx := t.Context()
	if _, err := s.client(t, "").Put(ctx, "sys/x", []byte("1")); err != nil {
		t.Fatal(err)
	}
	near, err := client.New(s.addr, client.WithNearCache(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer near.Close()
	eventually(t, "sys/x served from the near cache", func() error {
		before := near.NearCacheStats()
		if _, err := near.Get(ctx, "sys/x"); err != nil {
			return err
		}
		if near.NearCacheStats().Hits == before.Hits {
			return errors.New("not yet a hit")
		}
		return nil
	})
	writeFile(t, aclConfig, []byte("rules:\n  - {principals: [\"@anonymous\"], prefixes: [\"app/\"], operations: [\"*\"]}\n"))
	eventually(t, "the new rules deny sys/x to the client that held it", func() error {
		if _, err := near.Get(ctx, "sys/x"); !errors.Is(err, client.ErrPermissionDenied) {
			return fmt.Errorf("get sys/x: %v", err)
		}
		return nil
	})
}

// An anonymous call reaches policies with no principal (policies/ABI.md):
// the acl policy's "@anonymous" rules apply to it and "@authenticated"
// ones do not. The host used to name anonymous callers "anonymous", which
// matched neither as the policy expects.
func TestAnonymousCallsHaveNoPrincipal(t *testing.T) {
	dir := t.TempDir()
	wasm := filepath.Join(dir, "acl.wasm")
	copyFile(t, policytest.Build(t, "policies/acl"), wasm)
	compilePolicies(t, wasm)
	s := startServer(t, `
auth:
  anonymous: true
  tokens:
    - {token: tok-alice, principal: alice, tenant: anonymous}
policy_cache_dir: `+policyCacheDir(t)+`
policies:
  - name: acl
    path: `+wasm+`
    timeout: `+decisionTimeout+`
    config:
      rules:
        - {principals: ["@anonymous"], prefixes: ["anon/"], operations: ["*"]}
        - {principals: ["@authenticated"], prefixes: ["auth/"], operations: ["*"]}
`)
	s.mustCLI(t, "", "put", "anon/x", "1")
	if _, errOut, code := s.cli(t, "", "put", "auth/x", "1"); code == 0 || !strings.Contains(errOut, "an anonymous caller may not put") {
		t.Errorf("anonymous put auth/x: exit %d, %q; want the acl's denial of an anonymous caller", code, errOut)
	}
	s.mustCLI(t, "tok-alice", "put", "auth/x", "1")
	if _, errOut, code := s.cli(t, "tok-alice", "put", "anon/y", "1"); code == 0 || !strings.Contains(errOut, `principal "alice" may not put`) {
		t.Errorf("alice put anon/y: exit %d, %q; want the acl's denial of alice", code, errOut)
	}
}
