package main_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/kvhost/kvhost/client"
)

// mountSmallDisk mounts a 4 MiB tmpfs at dir: a real full disk. It needs
// root (CI runs as root); elsewhere the test skips, loudly, and under
// CI=true it fails instead.
func mountSmallDisk(t *testing.T, dir string) {
	t.Helper()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", dir).CombinedOutput(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mounting a small tmpfs for the disk-full test: %v\n%s", err, out)
		}
		t.Skipf("SKIPPED: cannot mount a tmpfs (%v: %s); run as root, as CI does, to test a full disk", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
}

// A full disk reaches the caller as STORAGE_FULL (RESOURCE_EXHAUSTED),
// not as "unavailable, retry"; every acknowledged write stays readable;
// and the message shows neither the stored key nor a file path.
func TestDiskFullIsResourceExhausted(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	mountSmallDisk(t, data)
	s := startServerIn(t, dir, "auth: {tokens: [{token: tok, principal: p, tenant: acme}]}\nbackend: {plugin: sqlite}\n")
	c := s.client(t, "tok")
	ctx := t.Context()
	value := make([]byte, 64<<10)
	var acked []string
	var full error
	for i := range 1000 { // 64 MiB: far more than the disk holds
		key := fmt.Sprintf("fill/%04d", i)
		value[0] = byte(i)
		if _, err := c.Put(ctx, key, value); err != nil {
			full = err
			break
		}
		acked = append(acked, key)
	}
	if !errors.Is(full, client.ErrStorageFull) {
		t.Fatalf("after %d writes the disk should be full: got %v, want ErrStorageFull", len(acked), full)
	}
	if msg := full.Error(); strings.Contains(msg, "t/acme/") || strings.Contains(msg, data) || strings.Contains(msg, "unix") {
		t.Fatalf("the error shows internals: %q", msg)
	}
	for i, key := range acked {
		e, err := c.Get(ctx, key)
		if err != nil || len(e.Value) != len(value) || e.Value[0] != byte(i) {
			t.Fatalf("acknowledged write %s after the disk filled: %v", key, err)
		}
	}
	// Give the disk room again: the same plugin takes writes, with no
	// restart, and the store is whole.
	if out, err := exec.Command("mount", "-o", "remount,size=64m", data).CombinedOutput(); err != nil {
		t.Fatalf("growing the tmpfs: %v\n%s", err, out)
	}
	if _, err := c.Put(ctx, "after", []byte("room again")); err != nil {
		t.Fatalf("put once the disk has room again: %v", err)
	}
	if n, err := c.Count(ctx, "fill/"); err != nil || n != int64(len(acked)) {
		t.Fatalf("count after the disk filled: %d %v, want the %d acknowledged keys", n, err, len(acked))
	}
}

// A damaged database file reaches the caller as DATA_LOSS, never as a
// wrong value or a "retry".
func TestCorruptionIsDataLoss(t *testing.T) {
	dir := t.TempDir()
	const config = "auth: {anonymous: true}\nbackend: {plugin: sqlite}\n"
	s := startServerIn(t, dir, config)
	c := s.client(t, "")
	ctx := t.Context()
	value := make([]byte, 2000)
	const n = 400
	for i := range n {
		copy(value, fmt.Sprintf("value-%04d", i))
		if _, err := c.Put(ctx, fmt.Sprintf("k/%04d", i), value); err != nil {
			t.Fatal(err)
		}
	}
	_ = c.Close()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = s.cmd.Wait()
	// Overwrite the middle of the file, where the table's pages are; the
	// header and the schema at its start stay whole.
	db := filepath.Join(dir, "data", "kvhost.db")
	f, err := os.OpenFile(db, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := f.Stat()
	garbage := make([]byte, fi.Size()/3)
	for i := range garbage {
		garbage[i] = byte(i*7 + 13)
	}
	if _, err := f.WriteAt(garbage, fi.Size()/3); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	s = startServerIn(t, dir, config)
	c = s.client(t, "")
	lost := 0
	for i := range n {
		e, err := c.Get(ctx, fmt.Sprintf("k/%04d", i))
		switch {
		case errors.Is(err, client.ErrDataLoss):
			lost++
		case err != nil:
			t.Fatalf("get k/%04d from a damaged file: %v, want its value or ErrDataLoss", i, err)
		case !strings.HasPrefix(string(e.Value), fmt.Sprintf("value-%04d", i)):
			t.Fatalf("get k/%04d from a damaged file returned a wrong value %.16q", i, e.Value)
		}
	}
	if lost == 0 {
		t.Fatal("a third of the file overwritten, and no read reported data loss")
	}
}
