package sqlite_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvhost/kvhost/internal/testbin"
	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi"
	"github.com/kvhost/kvhost/plugins/sqlite"
)

// Two plugin processes on one file: the second is refused with an error
// that says why, and the first keeps working.
func TestSecondProcessRefused(t *testing.T) {
	dir := t.TempDir()
	settings := func(testing.TB) map[string]string { return map[string]string{"path": filepath.Join(dir, "kv.db")} }
	first, err := pluginapi.Start(t.Context(), pluginapi.StartConfig{Path: testbin.Plugin(t, "sqlite"), Settings: settings(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(first.Kill)
	if _, err := first.Put(t.Context(), kv.PutRequest{Key: "k", Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	second, err := pluginapi.Start(t.Context(), pluginapi.StartConfig{Path: testbin.Plugin(t, "sqlite"), Settings: settings(t)})
	if err == nil {
		second.Kill()
	}
	if err == nil || !strings.Contains(err.Error(), "kv.db") {
		t.Fatalf("second plugin process on the same file: %v, want a refusal naming the file", err)
	}
	if g, err := first.Get(t.Context(), "k"); err != nil || string(g.Entry.Value) != "v" {
		t.Fatalf("the first process after the refusal: %+v %v", g, err)
	}
}

// A symlink to the database, or to its directory, takes the same lock.
func TestSymlinkTakesTheSameLock(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "data", "kv.db")
	b, err := sqlite.Open(t.Context(), map[string]string{"path": real})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := os.Symlink(real, filepath.Join(dir, "link.db")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "data"), filepath.Join(dir, "datalink")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(dir, "link.db"), filepath.Join(dir, "datalink", "kv.db")} {
		other, err := sqlite.Open(t.Context(), map[string]string{"path": p})
		if err == nil {
			other.Close()
			t.Fatalf("a second open through %s was allowed", p)
		}
		if !errors.Is(err, kv.ErrUnavailable) && !errors.Is(err, kv.ErrInvalidArgument) {
			t.Fatalf("open through %s: %v, want a clear refusal", p, err)
		}
	}
}
