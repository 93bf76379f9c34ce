package server_test

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvhost/kvhost/host/server"
)

func TestListenUnix(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kv.sock")

	l, err := server.ListenUnix(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket file: %v %v, want a socket with mode 0600", fi, err)
	}
	if got := l.Addr().String(); got != path {
		t.Fatalf("Addr %q, want %q", got, path)
	}
	// It answers under its final name.
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()

	// A live listener's socket is refused, and left alone.
	if _, err := server.ListenUnix(path, 0o600); err == nil || !strings.Contains(err.Error(), "another server is listening") {
		t.Fatalf("second listener on a live socket: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("socket file after Close: %v, want it removed", err)
	}

	// A socket nobody answers on (a killed server's) is replaced.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("the stale socket should still be there: %v", err)
	}
	l, err = server.ListenUnix(path, 0o660)
	if err != nil {
		t.Fatalf("listen over a stale socket: %v", err)
	}
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode %v %v, want 0660", fi, err)
	}
	// Close leaves a socket another server has put in its place.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	other, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	l.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("Close removed another server's socket: %v", err)
	}
}

func TestListenUnixRefuses(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "data.db")
	if err := os.WriteFile(file, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		mode       os.FileMode
		want       string
	}{
		{"regular file", file, 0o600, "a regular file is there, not a socket"},
		{"directory", dir, 0o600, "a directory is there, not a socket"},
		{"world mode", filepath.Join(dir, "a.sock"), 0o666, "want 0600 or 0660"},
		{"no owner access", filepath.Join(dir, "b.sock"), 0o060, "want 0600 or 0660"},
		{"too long", filepath.Join(dir, strings.Repeat("x", 100)), 0o600, "longer than"},
		{"no directory", filepath.Join(dir, "missing", "c.sock"), 0o600, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := server.ListenUnix(tc.path, tc.mode)
			if err == nil {
				l.Close()
				t.Fatalf("ListenUnix(%s, %#o) succeeded", tc.path, tc.mode)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to say %q", err, tc.want)
			}
		})
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep me" {
		t.Fatalf("the regular file was touched: %q %v", b, err)
	}
}
