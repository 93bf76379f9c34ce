package server

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// UnixListener is the API's Unix-socket listener for local clients: no
// TCP stack, no loopback interface, and who may connect is decided by the
// socket file's permissions. Close removes the socket file, if it is still
// the one this listener created.
type UnixListener struct {
	*net.UnixListener
	path string
	file os.FileInfo // the socket file as created, to remove only our own
}

// ListenUnix listens on a Unix socket at path, readable and writable by
// mode (0600: the server's user only; 0660: its group too). The socket
// never exists with wider permissions: it is bound under a temporary name
// in the same directory, given mode, then linked into place.
//
// A file left at path by a server that was killed is replaced, but only if
// it is a socket on which nothing answers; a socket a live server answers
// on, or any other kind of file, is refused.
func ListenUnix(path string, mode os.FileMode) (*UnixListener, error) {
	if mode&^0o770 != 0 || mode&0o600 != 0o600 {
		return nil, fmt.Errorf("unix socket %s: mode %#o: want 0600 or 0660 (owner read-write, never others)", path, mode)
	}
	if len(path) > MaxUnixPath {
		return nil, fmt.Errorf("unix socket %s: path is %d bytes, longer than the %d a socket address allows", path, len(path), MaxUnixPath)
	}
	if err := checkStale(path); err != nil {
		return nil, err
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+"."+strconv.Itoa(os.Getpid()))
	_ = os.Remove(tmp) // ours, from a previous run with the same pid
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("unix socket %s: %w", path, err)
	}
	// The socket is moved to its final name; Close must remove that name,
	// which UnixListener's own unlink (of the bound name) would not.
	l.SetUnlinkOnClose(false)
	fail := func(err error) (*UnixListener, error) {
		l.Close()
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("unix socket %s: %w", path, err)
	}
	// bind(2) created the file with the process umask applied: it is not
	// yet at path, so nobody can have found it there.
	if err := os.Chmod(tmp, mode); err != nil {
		return fail(err)
	}
	fi, err := os.Lstat(tmp)
	if err != nil {
		return fail(err)
	}
	// A link, not a rename: it fails if the path exists, so a server that
	// started at the same moment and got there first keeps its socket.
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			err = errors.New("another server created it meanwhile")
		}
		return fail(err)
	}
	_ = os.Remove(tmp)
	return &UnixListener{UnixListener: l, path: path, file: fi}, nil
}

// checkStale returns nil when path is free: absent, or a socket nobody
// answers on (removed here).
func checkStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("unix socket %s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("unix socket %s: a %s is there, not a socket; refusing to replace it", path, fileKind(fi))
	}
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("unix socket %s: another server is listening on it", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		// Not the refusal of a socket with no listener (perhaps a full
		// accept queue, or no permission to connect): do not guess.
		return fmt.Errorf("unix socket %s exists and cannot be probed, not replacing it: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("unix socket %s: remove stale socket: %w", path, err)
	}
	return nil
}

func fileKind(fi os.FileInfo) string {
	switch t := fi.Mode().Type(); {
	case t == 0:
		return "regular file"
	case t&fs.ModeDir != 0:
		return "directory"
	case t&fs.ModeSymlink != 0:
		return "symbolic link"
	default:
		return "special file (" + t.String() + ")"
	}
}

// Path is the socket file's path.
func (l *UnixListener) Path() string { return l.path }

// Addr is the socket's address under its final name (the socket was bound
// under a temporary one).
func (l *UnixListener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

// MaxUnixPath is the longest socket path ListenUnix accepts: a socket
// address holds 107 bytes on Linux, and the temporary name it is bound
// under is 9 bytes longer than the path.
const MaxUnixPath = 98

// Close stops listening and removes the socket file, unless another
// server has since put its own there.
func (l *UnixListener) Close() error {
	err := l.UnixListener.Close()
	if fi, serr := os.Lstat(l.path); serr == nil && os.SameFile(fi, l.file) {
		if rerr := os.Remove(l.path); rerr != nil && err == nil {
			err = rerr
		}
	}
	return err
}
