package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvhost/kvhost/kv"
)

// snapshot reads a file so a test can check it was left byte-identical.
func snapshot(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rawExec runs statements on a database file without the Store.
func rawExec(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func TestOpenRefusesBadFiles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()

	notSQLite := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notSQLite, bytes.Repeat([]byte("this is not a database\n"), 500), 0o644); err != nil {
		t.Fatal(err)
	}

	corrupt := filepath.Join(dir, "corrupt.db")
	junk := append([]byte("SQLite format 3\x00"), bytes.Repeat([]byte{0xA5}, 8192)...)
	if err := os.WriteFile(corrupt, junk, 0o644); err != nil {
		t.Fatal(err)
	}

	foreign := filepath.Join(dir, "app.db")
	rawExec(t, foreign, `CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)`, `INSERT INTO users (name) VALUES ('ada')`)

	newer := filepath.Join(dir, "newer.db")
	s, err := New(ctx, Config{Path: newer})
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, "k", "v", 0)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rawExec(t, newer, `UPDATE kvhost_meta SET value = 99 WHERE name = 'schema_version'`)

	for _, tc := range []struct {
		name, path string
		target     error
		mention    []string
	}{
		{"not a SQLite file", notSQLite, kv.ErrInvalidArgument, []string{notSQLite, "not a SQLite database"}},
		{"corrupt SQLite file", corrupt, kv.ErrDataLoss, []string{corrupt}},
		{"another application's database", foreign, kv.ErrInvalidArgument, []string{"not a kvhost one", "users"}},
		{"newer schema", newer, kv.ErrNotSupported, []string{"schema version 99", fmt.Sprintf("version %d", SchemaVersion), "upgrade"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, tc.path)
			_, err := New(ctx, Config{Path: tc.path})
			if !errors.Is(err, tc.target) {
				t.Fatalf("New: %v, want an error that is %v", err, tc.target)
			}
			t.Logf("refused: %v", err)
			for _, m := range tc.mention {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
			if !bytes.Equal(before, snapshot(t, tc.path)) {
				t.Fatal("the file was modified")
			}
			for _, side := range []string{"-wal", "-journal"} {
				if fi, err := os.Stat(tc.path + side); err == nil && fi.Size() > 0 {
					t.Fatalf("left a non-empty %s file", side)
				}
			}
			// The refused open released its lock.
			if l, err := lockFile(tc.path); err != nil {
				t.Fatalf("lock still held after a refused open: %v", err)
			} else {
				l.release()
			}
		})
	}
}

func TestOpenUnwritablePath(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	file := filepath.Join(dir, "plain")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A path under a regular file cannot be created, even by root.
	_, err := New(ctx, Config{Path: filepath.Join(file, "sub", "kv.db")})
	if !errors.Is(err, kv.ErrUnavailable) || !strings.Contains(err.Error(), file) {
		t.Fatalf("path under a file: %v", err)
	}
	if got := snapshot(t, file); string(got) != "x" {
		t.Fatal("the file in the way was modified")
	}
	// A directory where the database file should be.
	_, err = New(ctx, Config{Path: dir})
	if !errors.Is(err, kv.ErrInvalidArgument) || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("directory as path: %v", err)
	}
	if os.Geteuid() != 0 {
		ro := filepath.Join(dir, "ro")
		if err := os.Mkdir(ro, 0o555); err != nil {
			t.Fatal(err)
		}
		_, err = New(ctx, Config{Path: filepath.Join(ro, "kv.db")})
		if !errors.Is(err, kv.ErrUnavailable) {
			t.Fatalf("read-only directory: %v", err)
		}
	}
}

func TestOpenCreatesParentDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "kv.db")
	s := openStore(t, Config{Path: path})
	mustPut(t, s, "k", "v", 0)
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
}

func TestSecondOpenRefused(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kv.db")
	s, err := New(ctx, Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(ctx, Config{Path: path})
	if !errors.Is(err, kv.ErrUnavailable) || !strings.Contains(err.Error(), "already open") {
		t.Fatalf("second open: %v", err)
	}
	// The same file through another spelling of its path.
	_, err = New(ctx, Config{Path: filepath.Join(filepath.Dir(path), ".", "kv.db")})
	if !errors.Is(err, kv.ErrUnavailable) {
		t.Fatalf("second open, other spelling: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = New(ctx, Config{Path: path})
	if err != nil {
		t.Fatalf("open after close: %v", err)
	}
	s.Close()
}

func TestSettings(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		settings map[string]string
		mention  string
	}{
		{"unknown", map[string]string{"pathh": "x"}, `"pathh"`},
		{"synchronous", map[string]string{"synchronous": "OFF"}, "synchronous"},
		{"cache", map[string]string{"cache_size_kib": "-1"}, "cache_size_kib"},
		{"busy", map[string]string{"busy_timeout_ms": "soon"}, "busy_timeout_ms"},
		{"mmap", map[string]string{"mmap_size_bytes": "lots"}, "mmap_size_bytes"},
		{"watch", map[string]string{"watch_buffer": "0"}, "watch_buffer"},
		{"readers", map[string]string{"readers": "0"}, "readers"},
		{"history", map[string]string{"history": "-5"}, "history"},
		{"history not a number", map[string]string{"history": "lots"}, "history"},
		{"empty path", map[string]string{"path": ""}, "path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(ctx, tc.settings)
			if !errors.Is(err, kv.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("Open(%v): %v, want ErrInvalidArgument naming %s", tc.settings, err, tc.mention)
			}
		})
	}
	b, err := Open(ctx, map[string]string{
		"path": filepath.Join(t.TempDir(), "kv.db"), "synchronous": "full", "cache_size_kib": "1024",
		"busy_timeout_ms": "100", "mmap_size_bytes": "0", "watch_buffer": "10", "readers": "2", "history": "50",
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s := b.(*Store)
	if s.cfg.History != 50 {
		t.Fatalf("history = %d, want 50", s.cfg.History)
	}
	var sync, mmap int64
	if err := s.w.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&sync); err != nil || sync != 2 {
		t.Fatalf("synchronous = %d (%v), want 2 (FULL)", sync, err)
	}
	if err := s.w.QueryRowContext(ctx, `PRAGMA mmap_size`).Scan(&mmap); err != nil || mmap != 0 {
		t.Fatalf("mmap_size = %d (%v), want 0", mmap, err)
	}
	var mode string
	if err := s.rdb.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q (%v)", mode, err)
	}
	if _, err := s.rdb.ExecContext(ctx, `DELETE FROM kv`); err == nil {
		t.Fatal("a reader connection could write")
	}
}
