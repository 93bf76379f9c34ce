package main_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvhost/kvhost/policies/policytest"
)

// del-prefix and batch end to end, through the acl and keyvalidation
// policies: alice may do anything outside sys/, bob may only read app/.
func TestDelPrefixAndBatchWithPolicies(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for _, name := range []string{"keyvalidation", "acl"} {
		paths = append(paths, filepath.Join(dir, name+".wasm"))
		copyFile(t, policytest.Build(t, "policies/"+name), paths[len(paths)-1])
	}
	compilePolicies(t, paths...)
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
    config: {reserved_prefixes: ["sys/"]}
  - name: acl
    path: `+dir+`/acl.wasm
    timeout: `+decisionTimeout+`
    config:
      rules:
        - {principals: [alice], prefixes: [""], operations: ["*"]}
        - {principals: [bob], prefixes: ["app/"], operations: [read, list]}
`)
	batchFile := filepath.Join(dir, "ops.jsonl")
	writeFile(t, batchFile, []byte(`# three operations
{"op": "put", "key": "app/a", "value": "1"}
{"op": "put", "key": "app/b", "value": "/w==", "value_base64": true, "ttl": "1h"}

{"op": "del", "key": "app/c"}
`))
	out := s.mustCLI(t, "tok-alice", "batch", batchFile)
	for _, want := range []string{`put "app/a": version `, `put "app/b": version `, "expires in 1h0m0s", `key "app/c" did not exist; nothing deleted`} {
		if !strings.Contains(out, want) {
			t.Errorf("batch printed %q, want %q", out, want)
		}
	}
	if got := s.mustCLI(t, "tok-alice", "get", "app/b", "-o", "json"); !strings.Contains(got, `"value_base64":true`) {
		t.Errorf("app/b is %s", got)
	}

	// From standard input, with JSON output.
	out, errOut, code := cliStdin(t, s, "tok-alice", `{"op":"put","key":"app/c","value":"3"}`+"\n"+`{"op":"del","key":"app/a"}`, "batch", "-o", "json")
	if code != 0 || !strings.Contains(out, `{"op":"put","key":"app/c","version":`) || !strings.Contains(out, `{"op":"del","key":"app/a","deleted":true}`) {
		t.Fatalf("batch from stdin: exit %d\n%s%s", code, out, errOut)
	}

	// Each op of a batch meets the policies: one denial refuses it all.
	for _, tc := range []struct{ token, ops, policy string }{
		{"tok-bob", `{"op":"put","key":"app/x","value":"1"}`, `policy "acl"`},
		{"tok-alice", `{"op":"put","key":"app/y","value":"1"}` + "\n" + `{"op":"put","key":"sys/y","value":"1"}`, `policy "keyvalidation"`},
	} {
		out, errOut, code := cliStdin(t, s, tc.token, tc.ops, "batch", "-")
		if code != 1 || !strings.Contains(errOut, "permission denied") || !strings.Contains(errOut, tc.policy) {
			t.Errorf("denied batch: exit %d\n%s%s", code, out, errOut)
		}
	}
	if _, _, code := s.cli(t, "tok-alice", "get", "app/y"); code != 3 {
		t.Errorf("a refused batch wrote app/y (get exit %d)", code)
	}
	// A malformed line is a usage error naming it.
	if _, errOut, code := cliStdin(t, s, "tok-alice", `{"op":"put","key":"k","value":"v"}`+"\n"+`{"op":"get","key":"k"}`, "batch"); code != 2 || !strings.Contains(errOut, "line 2") {
		t.Errorf("bad line: exit %d, %s", code, errOut)
	}

	// del-prefix is one delete_prefix request: bob may not, alice may.
	if _, errOut, code := s.cli(t, "tok-bob", "del-prefix", "app/"); code != 1 || !strings.Contains(errOut, `policy "acl"`) {
		t.Errorf("bob's del-prefix: exit %d, %s", code, errOut)
	}
	if out := s.mustCLI(t, "tok-alice", "del-prefix", "app/"); out != "deleted 2 keys under \"app/\"\n" {
		t.Errorf("del-prefix printed %q", out)
	}
	if out := s.mustCLI(t, "tok-alice", "del-prefix", "app/", "-o", "json"); out != `{"prefix":"app/","deleted":0}`+"\n" {
		t.Errorf("del-prefix -o json printed %q", out)
	}
	if _, _, code := s.cli(t, "tok-alice", "del-prefix", ""); code != 2 {
		t.Errorf("del-prefix of everything: exit %d, want a usage error", code)
	}
}

// cliStdin runs kvhost with stdin as its standard input.
func cliStdin(t *testing.T, s *server, token, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(kvhostBin(t), args...)
	cmd.Env = append(os.Environ(), "KVHOST_ADDR="+s.addr, "KVHOST_TOKEN="+token)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), errOut.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), 0
}
