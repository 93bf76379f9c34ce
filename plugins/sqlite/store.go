package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi"
	"github.com/kvhost/kvhost/plugins/internal/sqlkv"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Name and Version identify the backend in Info and Stats.
const (
	Name    = "sqlite"
	Version = "2.0.0"
)

// Store is the SQLite backend. All writes go through one connection under
// mu, each in its own IMMEDIATE transaction with its history rows, so
// conditions, increments and revision stamping are atomic and watch events
// are published in commit order. Reads use a pool of read-only connections
// that WAL lets run beside the writer.
type Store struct {
	cfg  Config
	path string
	now  func() time.Time
	lock *fileLock
	hub  *pluginapi.WatchHub
	// ops are the write operations, over update and the writer dialect.
	ops sqlkv.Writer

	closed atomic.Bool

	// mu guards the writer connection, its statements, rev and compact.
	mu  sync.Mutex
	wdb *sql.DB
	w   *sql.Conn
	ws  writeStmts
	// rev is the store revision (last_version) and compact the compact
	// revision (compact_revision), as committed.
	rev, compact int64

	rdb *sql.DB
	rs  readStmts

	stmts []*sql.Stmt // every prepared statement, for Close
}

var (
	_ kv.Backend        = (*Store)(nil)
	_ kv.Watcher        = (*Store)(nil)
	_ kv.Expirer        = (*Store)(nil)
	_ pluginapi.History = (*Store)(nil)
)

// New opens (creating if needed) the database at cfg.Path.
func New(ctx context.Context, cfg Config) (*Store, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	path, err := filepath.Abs(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w: path %q: %w", kv.ErrInvalidArgument, cfg.Path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("sqlite: %w: create directory for %s: %w", kv.ErrUnavailable, path, err)
	}
	// The lock file is named after the database's real path, so a symlink
	// to the database (or to its directory) takes the same lock. A hard
	// link still names another path: do not hard-link databases.
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	} else if dir, derr := filepath.EvalSymlinks(filepath.Dir(path)); derr == nil {
		path = filepath.Join(dir, filepath.Base(path))
	}
	if err := checkFile(path); err != nil {
		return nil, err
	}
	lock, err := lockFile(path)
	if err != nil {
		return nil, err
	}
	s := &Store{cfg: cfg, path: path, now: cfg.now, lock: lock, hub: pluginapi.NewWatchHub(cfg.WatchBuffer)}
	s.ops = sqlkv.Writer{Name: Name, Update: s.update, MinPutRun: upsertRunSizes[len(upsertRunSizes)-1], AfterCleanup: s.pruneHistory}
	if err := s.open(ctx); err != nil {
		s.shutdown()
		return nil, err
	}
	return s, nil
}

// dsn builds the connection string. The path goes in a file: URI so that
// any byte in it is escaped; the pragmas are per connection and touch
// nothing on disk (journal_mode, which does, is set by open once the file
// is known to be ours).
func (s *Store) dsn(readOnly bool) string {
	u := url.URL{Scheme: "file", Path: s.path}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(s.cfg.BusyTimeout.Milliseconds(), 10)+")")
	q.Add("_pragma", "synchronous("+s.cfg.Synchronous+")")
	q.Add("_pragma", "cache_size(-"+strconv.Itoa(s.cfg.CacheSizeKiB)+")")
	q.Add("_pragma", "mmap_size("+strconv.FormatInt(s.cfg.MmapSizeBytes, 10)+")")
	q.Add("_pragma", "temp_store(MEMORY)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	}
	return u.String() + "?" + q.Encode()
}

func (s *Store) open(ctx context.Context) error {
	var err error
	if s.wdb, err = sql.Open("sqlite", s.dsn(false)); err != nil {
		return fmt.Errorf("sqlite: %w: open %s: %w", kv.ErrUnavailable, s.path, err)
	}
	s.wdb.SetMaxOpenConns(1)
	s.wdb.SetMaxIdleConns(1)
	s.wdb.SetConnMaxLifetime(0)
	s.wdb.SetConnMaxIdleTime(0)
	if s.w, err = s.wdb.Conn(ctx); err != nil {
		return fmt.Errorf("sqlite: open %s: %w", s.path, mapErr(err))
	}
	version, err := inspect(ctx, s.w, s.path)
	if err != nil {
		return err
	}
	// The file is empty or ours, at a version this build knows: from here
	// on it may be written.
	var mode string
	if err := s.w.QueryRowContext(ctx, `PRAGMA journal_mode = WAL`).Scan(&mode); err != nil {
		return fmt.Errorf("sqlite: set WAL mode on %s: %w", s.path, mapErr(err))
	}
	if mode != "wal" {
		return fmt.Errorf("sqlite: %w: %s: journal mode is %q, WAL could not be set", kv.ErrUnavailable, s.path, mode)
	}
	if _, err := s.w.ExecContext(ctx, `PRAGMA journal_size_limit = 67108864`); err != nil {
		return fmt.Errorf("sqlite: %s: %w", s.path, mapErr(err))
	}
	if err := migrate(ctx, s.w, version, s.path, s.cfg.withoutRowID); err != nil {
		return err
	}
	if err := s.w.QueryRowContext(ctx, `SELECT `+revisionOf+`, `+compactOf).Scan(&s.rev, &s.compact); err != nil {
		return fmt.Errorf("sqlite: %s: read revisions: %w", s.path, mapErr(err))
	}
	s.hub.SetRevision(s.rev)
	if err := s.prepareWrites(ctx); err != nil {
		return err
	}

	if s.rdb, err = sql.Open("sqlite", s.dsn(true)); err != nil {
		return fmt.Errorf("sqlite: %w: open %s: %w", kv.ErrUnavailable, s.path, err)
	}
	s.rdb.SetMaxOpenConns(s.cfg.Readers)
	s.rdb.SetMaxIdleConns(s.cfg.Readers)
	s.rdb.SetConnMaxLifetime(0)
	s.rdb.SetConnMaxIdleTime(0)
	return s.prepareReads(ctx)
}

// Close closes the database and ends every watch with ErrClosed. Calls
// after Close return ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Swap(true) {
		return nil
	}
	return s.shutdown()
}

// shutdown releases everything New acquired; readers close first so the
// writer's close is the last one and checkpoints the WAL into the file.
func (s *Store) shutdown() error {
	s.hub.Close()
	var errs []error
	for _, st := range s.stmts {
		errs = append(errs, st.Close())
	}
	if s.rdb != nil {
		errs = append(errs, s.rdb.Close())
	}
	if s.w != nil {
		errs = append(errs, s.w.Close())
	}
	if s.wdb != nil {
		errs = append(errs, s.wdb.Close())
	}
	errs = append(errs, s.lock.release())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite: close %s: %w", s.path, mapErr(err))
	}
	return nil
}

func (s *Store) checkOpen() error {
	if s.closed.Load() {
		return kv.ErrClosed
	}
	return nil
}

// Info describes the backend.
func (s *Store) Info(ctx context.Context) (kv.Info, error) {
	if err := s.checkOpen(); err != nil {
		return kv.Info{}, fmt.Errorf("sqlite: info: %w", err)
	}
	return kv.Info{
		Name:            Name,
		Version:         Version,
		ProtocolVersion: pluginapi.ProtocolVersion,
		Capabilities:    kv.Capabilities{Watch: true, WatchHistory: true, CleanupExpired: true, Exclusive: true},
	}, nil
}

// Watch subscribes to changes committed under req.Prefix, replaying them
// from req.StartRevision (from the history table) when it is set.
func (s *Store) Watch(ctx context.Context, req kv.WatchRequest) (kv.WatchStream, error) {
	if err := s.checkOpen(); err != nil {
		return nil, fmt.Errorf("sqlite: watch %q: %w", req.Prefix, err)
	}
	w, err := s.hub.Subscribe(ctx, req, s)
	if err != nil {
		return nil, fmt.Errorf("sqlite: watch %q from revision %d: %w", req.Prefix, req.StartRevision, err)
	}
	return w, nil
}

// Path is the absolute path of the database file.
func (s *Store) Path() string { return s.path }
