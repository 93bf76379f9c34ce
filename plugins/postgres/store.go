package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi"
	"github.com/kvhost/kvhost/plugins/internal/sqlkv"
)

// Version is the backend's own version, reported by Info.
const Version = "1.0.0"

// Store is a kv.Backend on PostgreSQL. Several stores — in several
// processes on several machines — may share one schema: revisions, conditions
// and watches hold across all of them.
type Store struct {
	cfg    Config
	pool   *pgxpool.Pool
	schema string // quoted
	notify string // the LISTEN/NOTIFY channel, quoted for LISTEN

	follow *follower
	// ops are the write operations, over update and the writeTx dialect.
	ops    sqlkv.Writer
	closed atomic.Bool
	once   sync.Once
}

var (
	_ kv.Backend        = (*Store)(nil)
	_ kv.Watcher        = (*Store)(nil)
	_ kv.Expirer        = (*Store)(nil)
	_ pluginapi.History = (*Store)(nil)
)

// New connects to PostgreSQL, retrying a server that is not up for
// Config.ConnectTimeout, creates or migrates the schema, and starts the
// follower that publishes the change log to this store's watchers.
func New(ctx context.Context, cfg Config) (*Store, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	pc, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w: dsn: %v", kv.ErrInvalidArgument, err)
	}
	if cfg.Password != "" {
		pc.ConnConfig.Password = cfg.Password
	}
	pc.MaxConns = int32(cfg.PoolSize)
	if pc.ConnConfig.ConnectTimeout == 0 {
		pc.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	pc.ConnConfig.RuntimeParams["statement_timeout"] = fmt.Sprint(cfg.StatementTimeout.Milliseconds())
	pc.ConnConfig.RuntimeParams["application_name"] = "kvhost"
	// No statement of the store gains from JIT, and a list's first few
	// executions on each connection were compiled for half a second
	// (docs/PERFORMANCE.md, PostgreSQL).
	pc.ConnConfig.RuntimeParams["jit"] = "off"
	s := &Store{cfg: cfg, schema: pgx.Identifier{cfg.Schema}.Sanitize()}
	s.notify = pgx.Identifier{"kvhost_" + cfg.Schema}.Sanitize()
	s.ops = sqlkv.Writer{Name: "postgres", Update: s.update, MinPutRun: minPutRun, AfterCleanup: s.pruneHistory}
	if s.pool, err = pgxpool.NewWithConfig(ctx, pc); err != nil {
		return nil, fmt.Errorf("postgres: %w", mapErr(err))
	}
	if err := s.connect(ctx); err != nil {
		s.pool.Close()
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		s.pool.Close()
		return nil, fmt.Errorf("postgres: schema %q: %w", cfg.Schema, mapErr(err))
	}
	var rev int64
	if err := s.pool.QueryRow(ctx, s.sql(`SELECT rev FROM {s}.meta`)).Scan(&rev); err != nil {
		s.pool.Close()
		return nil, fmt.Errorf("postgres: %w", mapErr(err))
	}
	s.follow = newFollower(s, pc.ConnConfig.Copy(), rev)
	return s, nil
}

// connect waits for the server: a refused or unreachable server is
// retried with backoff for ConnectTimeout; a refused password or a
// missing database is an error at once.
func (s *Store) connect(ctx context.Context) error {
	deadline := time.Now().Add(s.cfg.ConnectTimeout)
	wait := 100 * time.Millisecond
	for {
		err := s.pool.Ping(ctx)
		if err == nil {
			return nil
		}
		if fatalAtStart(err) {
			return fmt.Errorf("postgres: connect: %w", mapErr(err))
		}
		if ctx.Err() != nil || time.Now().Add(wait).After(deadline) {
			return fmt.Errorf("postgres: connect: server not reachable after %v: %w", s.cfg.ConnectTimeout, mapErr(err))
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return fmt.Errorf("postgres: connect: %w", ctx.Err())
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// Close stops the follower, ends every watch and closes the pool.
func (s *Store) Close() error {
	s.once.Do(func() {
		s.closed.Store(true)
		s.follow.stop()
		s.pool.Close()
	})
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
		return kv.Info{}, err
	}
	return kv.Info{
		Name: "postgres", Version: Version, ProtocolVersion: pluginapi.ProtocolVersion,
		Capabilities: kv.Capabilities{Watch: true, WatchHistory: true, CleanupExpired: true},
	}, nil
}

// Watch subscribes to changes under a prefix. A watch from now is live
// in the local hub at once, and starts after the database's head, read
// once it is: the hub may not yet have published every change committed
// on other hosts, and those, acknowledged before Watch, are not this
// watch's. A change committed after Watch returns is always delivered.
func (s *Store) Watch(ctx context.Context, req kv.WatchRequest) (kv.WatchStream, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	g := s.follow.current()
	st, err := g.hub.Subscribe(ctx, req, s)
	if err != nil {
		return nil, fmt.Errorf("postgres: watch %q: %w", req.Prefix, err)
	}
	w := &stream{WatchStream: st, gen: g, seen: req.StartRevision - 1}
	if req.StartRevision == 0 {
		if err := s.pool.QueryRow(ctx, s.sql(`SELECT rev FROM {s}.meta`)).Scan(&w.seen); err != nil {
			_ = st.Close()
			return nil, fmt.Errorf("postgres: watch %q: %w", req.Prefix, mapErr(err))
		}
	}
	return w, nil
}

// stream adapts a hub stream to the store's watches. It drops what a
// watch from now must not see (changes up to the head it started after),
// raises progress to what it has delivered (the hub's revision may lag
// behind a replay or the head it started after), and reports why its hub
// was ended: a follower that could not catch up because the log it
// needed was pruned ends its hub, and its watchers get that
// *kv.CompactedError rather than ErrClosed.
type stream struct {
	kv.WatchStream
	gen  *generation
	seen int64 // every change up to it has been delivered or is not wanted
}

func (st *stream) Recv() (kv.Event, error) {
	for {
		ev, err := st.WatchStream.Recv()
		if err != nil {
			if errors.Is(err, kv.ErrClosed) {
				if e := st.gen.ended(); e != nil {
					return ev, e
				}
			}
			return ev, err
		}
		if ev, ok := st.pass(ev); ok {
			return ev, nil
		}
	}
}

// pass says whether ev goes to the watcher, and as what.
func (st *stream) pass(ev kv.Event) (kv.Event, bool) {
	if ev.Type == kv.EventProgress {
		ev.Revision = max(ev.Revision, st.seen)
		return ev, true
	}
	if ev.Revision <= st.seen {
		return ev, false
	}
	st.seen = ev.Revision
	return ev, true
}

func (st *stream) RecvMore(buf []kv.Event, max int) []kv.Event {
	br, ok := st.WatchStream.(kv.BatchReceiver)
	if !ok {
		return buf
	}
	for len(buf) < max {
		n := len(buf)
		more := br.RecvMore(buf, max)
		if len(more) == n {
			return buf
		}
		for _, ev := range more[n:] {
			if ev, ok := st.pass(ev); ok {
				buf = append(buf, ev)
			}
		}
		buf = more[:len(buf)]
	}
	return buf
}
