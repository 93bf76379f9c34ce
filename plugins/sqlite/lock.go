package sqlite

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/kvhost/kvhost/kv"
)

// fileLock is an exclusive flock on <db>.lock. SQLite's own locking lets
// several processes share a file, but this backend keeps its watch hub and
// revision counter in memory, so it must be the file's only writer. flock
// is per open file description: a second Store in the same process is
// refused as well, and the kernel releases the lock when the process dies,
// so a crash never leaves a stale lock.
type fileLock struct {
	f    *os.File
	path string
}

func lockFile(dbPath string) (*fileLock, error) {
	path := dbPath + ".lock"
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w: create lock file: %w", kv.ErrUnavailable, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder := ""
		if b, rerr := os.ReadFile(path); rerr == nil {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil && pid > 0 {
				holder = fmt.Sprintf(" (last locked by pid %d)", pid)
			}
		}
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("sqlite: %w: database %s is already open by another store%s: lock file %s is held; SQLite here is single-node, run one kvhost per file",
				kv.ErrUnavailable, dbPath, holder, path)
		}
		return nil, fmt.Errorf("sqlite: %w: lock %s: %w", kv.ErrUnavailable, path, err)
	}
	// The pid is only a hint for the error above; failing to write it is harmless.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &fileLock{f: f, path: path}, nil
}

// release drops the lock. The file stays: removing it would let a process
// that opened it before the removal hold a lock nobody else sees.
func (l *fileLock) release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}
