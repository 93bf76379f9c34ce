package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvhost/kvhost/internal/testbin"
	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi"
	"github.com/kvhost/kvhost/plugins/memory"
)

// verify runs kvhost plugin verify and returns its output and exit code.
func verify(t *testing.T, args ...string) (string, int) {
	t.Helper()
	bin := testbin.Path(t, "kvhost", "./cmd/kvhost")
	out, err := exec.CommandContext(t.Context(), bin, append([]string{"plugin", "verify"}, args...)...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	t.Fatalf("kvhost plugin verify: %v\n%s", err, out)
	return "", 0
}

func TestVerifyReportsAPluginThatCannotStartOnce(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "kvhost-plugin-broken")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho 'cannot open the database: permission denied' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		args   []string
		reason string
	}{
		{"missing binary", []string{filepath.Join(dir, "nonexistent")}, "no such file"},
		{"not a plugin", []string{script}, "cannot open the database: permission denied"},
		{"refused settings", []string{testbin.Plugin(t, "memory"), "--set", "bogus=1"}, `unknown setting "bogus"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, code := verify(t, tc.args...)
			if code != 1 || !strings.Contains(out, tc.reason) {
				t.Fatalf("exit %d, want 1 and the reason %q\n%s", code, tc.reason, out)
			}
			if n := strings.Count(out, "cannot start"); n != 1 || strings.Contains(out, "--- FAIL") {
				t.Fatalf("the failed start is reported %d times, or per rule; want once\n%s", n, out)
			}
		})
	}
}

func TestVerifyPassesTheMemoryPlugin(t *testing.T) {
	out, code := verify(t, testbin.Plugin(t, "memory"), "--set", "history=300", "--retention", "300", "-v")
	if code != 0 || !strings.Contains(out, "--- PASS: Conformance/watch-history/a-compacted-start-fails-with-the-oldest-revision-kept") ||
		!strings.Contains(out, "keeps all") {
		t.Fatalf("exit %d, want 0, every rule passed and a summary\n%s", code, out)
	}
}

func TestVerifyNamesTheRuleBroken(t *testing.T) {
	script := filepath.Join(t.TempDir(), "kvhost-plugin-miscounts")
	text := fmt.Sprintf("#!/bin/sh\nKVHOST_VERIFY_TEST_PLUGIN=1 exec %q -test.run='^TestVerifyHelperPlugin$'\n", os.Args[0])
	if err := os.WriteFile(script, []byte(text), 0o755); err != nil {
		t.Fatal(err)
	}
	out, code := verify(t, script, "--run", "^core/(stats|keys)")
	for _, want := range []string{
		"--- FAIL: Conformance/core/stats-count-live-keys-and-their-bytes",
		"rule broken: Stats counts live keys and their bytes",
		"breaks 1 of 2 rules checked",
	} {
		if code != 1 || !strings.Contains(out, want) {
			t.Fatalf("exit %d, want 1 and %q\n%s", code, want, out)
		}
	}
	if strings.Contains(out, "--- FAIL: Conformance/core/keys") {
		t.Fatalf("a rule the plugin keeps failed\n%s", out)
	}
}

func TestVerifyUsage(t *testing.T) {
	for _, args := range [][]string{
		{testbin.Plugin(t, "memory"), "--set", "history"},
		{testbin.Plugin(t, "memory"), "--run", "core/["},
		{},
	} {
		if out, code := verify(t, args...); code != 2 {
			t.Errorf("plugin verify %q: exit %d, want 2 (usage)\n%s", args, code, out)
		}
	}
}

// TestVerifyHelperPlugin is not a test: run by TestVerifyNamesTheRuleBroken
// as a plugin, it serves a memory backend whose Stats count one key too
// many.
func TestVerifyHelperPlugin(t *testing.T) {
	if os.Getenv("KVHOST_VERIFY_TEST_PLUGIN") == "" {
		t.Skip("runs only as the plugin of TestVerifyNamesTheRuleBroken")
	}
	pluginapi.Serve(func(context.Context, map[string]string) (kv.Backend, error) {
		return miscounting{memory.New()}, nil
	})
	os.Exit(0)
}

type miscounting struct{ *memory.Store }

func (m miscounting) Stats(ctx context.Context) (kv.Stats, error) {
	st, err := m.Store.Stats(ctx)
	st.Keys++
	return st, err
}
