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
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvhost/kvhost/pluginapi"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Name and Version identify the backend in Info and Stats.
const (
	Name    = "sqlite"
	Version = "1.0.0"
)

// Store is the SQLite backend. All writes go through one connection under
// mu, each in its own IMMEDIATE transaction, so conditions, increments and
// version stamping are atomic and watch events are published in commit
// order. Reads use a pool of read-only connections that WAL lets run beside
// the writer.
type Store struct {
	cfg  Config
	path string
	now  func() time.Time
	lock *fileLock
	hub  *pluginapi.WatchHub

	closed atomic.Bool

	// mu guards the writer connection, its statements and lastVersion.
	mu          sync.Mutex
	wdb         *sql.DB
	w           *sql.Conn
	ws          writeStmts
	lastVersion int64

	rdb *sql.DB
	rs  readStmts

	stmts []*sql.Stmt // every prepared statement, for Close
}

var (
	_ kv.Backend = (*Store)(nil)
	_ kv.Watcher = (*Store)(nil)
	_ kv.Expirer = (*Store)(nil)
)

// live is the expiry filter every read and condition applies: a key with
// an expiry at or before now is invisible at once, whether or not cleanup
// has removed its row yet (kv.Expired).
const live = `(expires_at = 0 OR expires_at > :now)`

type writeStmts struct {
	begin, commit, rollback, setVersion *sql.Stmt
	upsert, insertAbsent, updateVersion *sql.Stmt
	liveVersion, liveRow                *sql.Stmt
	del, refresh                        *sql.Stmt
	// upsertRows[n] stores n rows in one statement, for runs of
	// unconditional puts in a batch (see txn.putRun).
	upsertRows map[int]*sql.Stmt
	// deletePrefix[end][returning]
	deletePrefix [2][2]*sql.Stmt
	cleanup      *sql.Stmt
}

type readStmts struct {
	get, getMany, stats *sql.Stmt
	// list[end][after][keysOnly]: end says whether the range has an upper
	// bound, after whether the lower bound is exclusive (StartAfter).
	list [2][2][2]*sql.Stmt
	// count[end]
	count [2]*sql.Stmt
}

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
	if err := s.open(ctx); err != nil {
		s.shutdown()
		return nil, err
	}
	return s, nil
}

// Hot statements that TestQueryPlans pins to their indexes.
const (
	getSQL = `SELECT value, version, expires_at FROM kv WHERE key = :key AND ` + live
	// expires_at > 0 lets the planner use the partial index, which covers
	// the subquery; deleting by rowid spares a key-index lookup per row.
	cleanupSQL = `DELETE FROM kv WHERE rowid IN (
			SELECT rowid FROM kv WHERE expires_at > 0 AND expires_at <= :now ORDER BY expires_at LIMIT :limit
		) RETURNING key, version`
)

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
	if err := s.w.QueryRowContext(ctx, `SELECT value FROM `+metaTable+` WHERE name = 'last_version'`).Scan(&s.lastVersion); err != nil {
		return fmt.Errorf("sqlite: %s: read last_version: %w", s.path, mapErr(err))
	}
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

// named SQL parameters used across statements.
func (s *Store) prepareWrites(ctx context.Context) error {
	p := func(dst **sql.Stmt, query string) error {
		st, err := s.w.PrepareContext(ctx, query)
		if err != nil {
			return fmt.Errorf("sqlite: prepare %q: %w", query, mapErr(err))
		}
		s.stmts = append(s.stmts, st)
		*dst = st
		return nil
	}
	ws := &s.ws
	const (
		insertInto = `INSERT INTO kv (key, value, version, expires_at, created_at, updated_at) VALUES `
		onConflict = ` ON CONFLICT (key) DO UPDATE SET
		value = excluded.value, version = excluded.version, expires_at = excluded.expires_at, updated_at = excluded.updated_at,
		created_at = CASE WHEN kv.expires_at <> 0 AND kv.expires_at <= excluded.updated_at THEN excluded.created_at ELSE kv.created_at END`
		insert = insertInto + `(:key, :value, :version, :expires_at, :now, :now)` + onConflict
	)
	ws.upsertRows = map[int]*sql.Stmt{}
	for _, n := range upsertRunSizes {
		var q strings.Builder
		q.WriteString(insertInto)
		for i := range n {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteString("(?, ?, ?, ?, ?, ?)")
		}
		q.WriteString(onConflict)
		var st *sql.Stmt
		if err := p(&st, q.String()); err != nil {
			return err
		}
		ws.upsertRows[n] = st
	}
	errs := []error{
		p(&ws.begin, `BEGIN IMMEDIATE`),
		p(&ws.commit, `COMMIT`),
		p(&ws.rollback, `ROLLBACK`),
		p(&ws.setVersion, `UPDATE `+metaTable+` SET value = :version WHERE name = 'last_version'`),
		p(&ws.upsert, insert),
		// if-absent: the insert may only replace an expired row.
		p(&ws.insertAbsent, insert+` WHERE kv.expires_at <> 0 AND kv.expires_at <= excluded.updated_at`),
		p(&ws.updateVersion, `UPDATE kv SET value = :value, version = :version, expires_at = :expires_at, updated_at = :now
			WHERE key = :key AND version = :cond AND `+live),
		p(&ws.liveVersion, `SELECT version FROM kv WHERE key = :key AND `+live),
		p(&ws.liveRow, `SELECT value, version, expires_at FROM kv WHERE key = :key AND `+live),
		p(&ws.del, `DELETE FROM kv WHERE key = :key AND (:cond = 0 OR version = :cond) AND `+live+` RETURNING version`),
		p(&ws.refresh, `UPDATE kv SET expires_at = :expires_at, updated_at = :now
			WHERE key = :key AND (:cond = 0 OR version = :cond) AND `+live+` RETURNING version`),
		p(&ws.deletePrefix[0][0], `DELETE FROM kv WHERE key >= :lo AND `+live),
		p(&ws.deletePrefix[0][1], `DELETE FROM kv WHERE key >= :lo AND `+live+` RETURNING key, version`),
		p(&ws.deletePrefix[1][0], `DELETE FROM kv WHERE key >= :lo AND key < :hi AND `+live),
		p(&ws.deletePrefix[1][1], `DELETE FROM kv WHERE key >= :lo AND key < :hi AND `+live+` RETURNING key, version`),
		// expires_at > 0 lets the planner use the partial index.
		p(&ws.cleanup, cleanupSQL),
	}
	return errors.Join(errs...)
}

func (s *Store) prepareReads(ctx context.Context) error {
	p := func(dst **sql.Stmt, query string) error {
		st, err := s.rdb.PrepareContext(ctx, query)
		if err != nil {
			return fmt.Errorf("sqlite: prepare %q: %w", query, mapErr(err))
		}
		s.stmts = append(s.stmts, st)
		*dst = st
		return nil
	}
	rs := &s.rs
	errs := []error{
		p(&rs.get, getSQL),
		p(&rs.getMany, `SELECT key, value, version, expires_at FROM kv
			WHERE key IN (SELECT value FROM json_each(:keys)) AND `+live),
		// octet_length: length() counts characters of TEXT, the contract
		// counts bytes. Both read the size from the record header, not
		// the value itself.
		p(&rs.stats, `SELECT count(*), coalesce(sum(octet_length(key) + length(value)), 0) FROM kv WHERE `+live),
		p(&rs.count[0], `SELECT count(*) FROM kv WHERE key >= :lo AND `+live),
		p(&rs.count[1], `SELECT count(*) FROM kv WHERE key >= :lo AND key < :hi AND `+live),
	}
	for end := range 2 {
		for after := range 2 {
			for keysOnly := range 2 {
				q := `SELECT key, value, version, expires_at FROM kv WHERE `
				if keysOnly == 1 {
					q = `SELECT key, version, expires_at FROM kv WHERE `
				}
				if after == 1 {
					q += `key > :lo`
				} else {
					q += `key >= :lo`
				}
				if end == 1 {
					q += ` AND key < :hi`
				}
				q += ` AND ` + live + ` ORDER BY key LIMIT :limit`
				errs = append(errs, p(&rs.list[end][after][keysOnly], q))
			}
		}
	}
	return errors.Join(errs...)
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
		Capabilities:    kv.Capabilities{Watch: true, CleanupExpired: true},
	}, nil
}

// Path is the absolute path of the database file.
func (s *Store) Path() string { return s.path }
