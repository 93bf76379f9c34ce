package main_test

// End-to-end tests of kvhost migrate: 100K keys from a SQLite store to
// PostgreSQL and to Redis, through the real plugin binaries, with the
// first run killed (SIGKILL) halfway and a second one resuming it.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/kvhost/kvhost/internal/testbin"
	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi"
)

const migrateKeys = 100_000

// writeConfig writes a kvhost configuration with the given backend.
func writeConfig(t *testing.T, dir, name, backend string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte("auth: {anonymous: true}\nbackend:\n"+backend), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// openBackend starts a backend plugin in the test, as migrate does.
func openBackend(t *testing.T, plugin string, settings map[string]string) *pluginapi.Plugin {
	t.Helper()
	p, err := pluginapi.Start(t.Context(), pluginapi.StartConfig{
		Path: testbin.Plugin(t, plugin), Settings: settings, Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Warn}),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	return p
}

// fillSource writes migrateKeys keys into a SQLite store as a host
// would (under two tenants' prefixes), every tenth with a TTL of an hour.
func fillSource(t *testing.T, path string) {
	t.Helper()
	src := openBackend(t, "sqlite", map[string]string{"path": path})
	ops := make([]kv.Op, 0, kv.MaxBatchOps)
	for i := range migrateKeys {
		var ttl time.Duration
		if i%10 == 0 {
			ttl = time.Hour
		}
		key := fmt.Sprintf("t/%s/key/%06d", []string{"acme", "globex"}[i%2], i)
		ops = append(ops, kv.PutOp(key, fmt.Appendf(nil, "value %d %x", i, i*7919), ttl, kv.Condition{}))
		if len(ops) == kv.MaxBatchOps {
			if _, err := src.Batch(t.Context(), ops); err != nil {
				t.Fatal(err)
			}
			ops = ops[:0]
		}
	}
	src.Kill()
}

var progressRE = regexp.MustCompile(`^migrate: (\d+)/(\d+) keys`)

// migrateKilledHalfway runs migrate and kills it with SIGKILL once its
// progress shows it past 40%.
func migrateKilledHalfway(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command(kvhostBin(t), args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	sc := bufio.NewScanner(stderr)
	killed := false
	for sc.Scan() {
		log.WriteString(sc.Text() + "\n")
		m := progressRE.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		done, _ := strconv.Atoi(m[1])
		if done >= migrateKeys*4/10 {
			_ = cmd.Process.Signal(syscall.SIGKILL)
			killed = true
			break
		}
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !killed || !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("migrate was to be killed past 40%%: killed %v, %v\n%s", killed, err, log.String())
	}
}

func runMigrateCLI(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(kvhostBin(t), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), 0
}

// testMigrate moves the SQLite store to the target, killing the first run
// halfway, and checks the target key by key.
func testMigrate(t *testing.T, target string, targetSettings map[string]string) {
	dir := t.TempDir()
	srcDB := filepath.Join(dir, "src.db")
	fillSource(t, srcDB)
	from := writeConfig(t, dir, "from.yaml", fmt.Sprintf("  plugin: sqlite\n  settings: {path: %q}\n", srcDB))
	settings, _ := json.Marshal(targetSettings)
	to := writeConfig(t, dir, "to.yaml", fmt.Sprintf("  plugin: %s\n  settings: %s\n", target, settings))
	state := to + ".migrate.json"
	args := []string{"migrate", "--from", from, "--to", to}

	start := time.Now()
	migrateKilledHalfway(t, args...)
	var st struct {
		Copied int64 `json:"copied"`
		Total  int64 `json:"total"`
	}
	data, err := os.ReadFile(state)
	if err != nil {
		t.Fatalf("no checkpoint after the kill: %v", err)
	}
	if err := json.Unmarshal(data, &st); err != nil || st.Copied < migrateKeys*4/10 || st.Copied >= st.Total {
		t.Fatalf("checkpoint after the kill: %s (%v); want one mid-way", data, err)
	}

	out, code := runMigrateCLI(t, args...)
	took := time.Since(start)
	if code != 0 || !strings.Contains(out, "resuming after key") || !strings.Contains(out, fmt.Sprintf("verified %s: %d keys", to, migrateKeys)) {
		t.Fatalf("the second run: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(state); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the state file stays after a verified migration: %v", err)
	}

	// Once done, the target holds keys: another migrate is refused.
	out, code = runMigrateCLI(t, args...)
	if code != 1 || !strings.Contains(out, "not empty") || !strings.Contains(out, "--force") {
		t.Errorf("a migrate into the filled target: exit %d\n%s", code, out)
	}
	compareBackends(t, openBackend(t, "sqlite", map[string]string{"path": srcDB}), openBackend(t, target, targetSettings), took)
}

// compareBackends checks every key of src in dst: the value, and an
// expiry no earlier than the source's and later by at most took.
func compareBackends(t *testing.T, src, dst kv.Backend, took time.Duration) {
	t.Helper()
	ctx := context.Background()
	n, after := 0, ""
	for {
		page, err := src.List(ctx, kv.ListRequest{StartAfter: after, Limit: kv.MaxGetMany})
		if err != nil {
			t.Fatal(err)
		}
		keys := make([]string, len(page.Entries))
		for i, e := range page.Entries {
			keys[i] = e.Key
		}
		got, err := dst.GetMany(ctx, keys)
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range page.Entries {
			g := got.Entries[i]
			if g == nil || !bytes.Equal(g.Value, e.Value) {
				t.Fatalf("%q: in the target %v, want %q", e.Key, g, e.Value)
			}
			if e.ExpiresAt.IsZero() != g.ExpiresAt.IsZero() || g.ExpiresAt.Before(e.ExpiresAt.Add(-time.Millisecond)) || g.ExpiresAt.Sub(e.ExpiresAt) > took {
				t.Fatalf("%q expires at %v in the target, %v in the source (migrate took %v)", e.Key, g.ExpiresAt, e.ExpiresAt, took)
			}
			n++
		}
		if !page.More {
			break
		}
		after = page.Entries[len(page.Entries)-1].Key
	}
	c, err := dst.Count(ctx, "")
	if err != nil || n != migrateKeys || c.Count != migrateKeys {
		t.Errorf("%d keys in the source, %d in the target (%v); want %d", n, c.Count, err, migrateKeys)
	}
}

func TestMigrateSQLiteToPostgres(t *testing.T) {
	dsn := pgDSN(t)
	testMigrate(t, "postgres", map[string]string{"dsn": dsn, "schema": pgSchema(t, dsn)})
}

func TestMigrateSQLiteToRedis(t *testing.T) {
	addr := redisAddr(t)
	testMigrate(t, "redis", map[string]string{"addr": addr, "key_prefix": redisStore(t, addr)})
}
