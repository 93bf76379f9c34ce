package main

import (
	"context"
	"strings"
	"testing"

	"github.com/kvhost/kvhost/client"
	"github.com/kvhost/kvhost/host/server"
)

// kvhost cas exits 0 when it swapped and 5 when the key did not hold what
// was expected; kvhost exists exits 0 or 3; a wrong command line is 2.
func TestCLICompareAndSwap(t *testing.T) {
	t.Setenv("KVHOST_ADDR", cliServer(t, server.Options{Anonymous: true}))
	if out := ok(t, "cas", "leader", "--expect-absent", "node-1"); !strings.HasPrefix(out, "OK, version ") {
		t.Fatalf("cas --expect-absent printed %q", out)
	}
	fails(t, exitNotSwapped, []string{`not swapped: key "leader" holds node-1 (version `}, "cas", "leader", "--expect-absent", "node-2")
	fails(t, exitNotSwapped, []string{`not swapped: key "leader" holds node-1`}, "cas", "leader", "--expect", "node-9", "node-2")
	ok(t, "cas", "leader", "--expect", "node-1", "node-2", "--ttl", "1h")
	if got := ok(t, "get", "leader"); got != "node-2" {
		t.Fatalf("after the swap leader holds %q", got)
	}
	fails(t, exitNotSwapped, []string{`not swapped: key "nobody" does not exist`}, "cas", "nobody", "--expect", "x", "y")

	r := run(t, "", "cas", "leader", "--expect", "node-1", "node-3", "-o", "json")
	if r.code != exitNotSwapped {
		t.Fatalf("cas -o json, not swapped: exit %d\n%s%s", r.code, r.out, r.errOut)
	}
	if m := decode(t, r.out); m["swapped"] != false || m["exists"] != true || m["value"] != "node-2" || m["key"] != "leader" || m["expires_at"] == nil {
		t.Fatalf("cas -o json, not swapped, printed %q", r.out)
	}
	r = run(t, "node-3", "cas", "leader", "--expect", "node-2", "-", "-o", "json")
	if m := decode(t, r.out); r.code != 0 || m["swapped"] != true || m["value"] != nil || m["version"] == nil {
		t.Fatalf("cas from stdin -o json: exit %d, printed %q %s", r.code, r.out, r.errOut)
	}

	fails(t, exitUsage, []string{"--expect OLD or --expect-absent"}, "cas", "leader", "x")
	fails(t, exitUsage, []string{"exclude each other"}, "cas", "leader", "--expect", "a", "--expect-absent", "x")

	if out := ok(t, "exists", "leader"); !strings.HasPrefix(out, `"leader" exists, version `) || !strings.Contains(out, "no expiry") {
		t.Fatalf("exists printed %q", out)
	}
	fails(t, exitNotFound, []string{`key "lead" not found`}, "exists", "lead")
	r = run(t, "", "exists", "lead", "-o", "json")
	if m := decode(t, r.out); r.code != exitNotFound || m["exists"] != false || m["key"] != "lead" {
		t.Fatalf("exists -o json of a missing key: exit %d, printed %q", r.code, r.out)
	}
	fails(t, exitUsage, []string{"--exact needs a KEY"}, "watch", "--exact")
}

// kvhost watch --exact KEY prints KEY's changes and none of the keys KEY
// prefixes.
func TestCLIWatchExact(t *testing.T) {
	addr := cliServer(t, server.Options{Anonymous: true})
	t.Setenv("KVHOST_ADDR", addr)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stdout, stderr, wait := start(ctx, "", "watch", "--exact", "cfg")
	waitFor(t, stderr, "watching")
	c, err := client.New(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, k := range []string{"cfgx", "cfg/a", "cfg", "cfg2"} {
		if _, err := c.Put(t.Context(), k, []byte("v-"+k)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Delete(t.Context(), "cfg"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, stdout, "DELETE")
	cancel()
	r := wait()
	if r.code != 0 || strings.TrimSpace(r.out) != "PUT\tcfg\tv-cfg\nDELETE\tcfg" {
		t.Fatalf("watch --exact cfg: exit %d, printed %q", r.code, r.out)
	}
}
