package postgres

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi"
)

// pollInterval is how often the follower reads the log even without a
// notification: the log, not LISTEN/NOTIFY, is what watches rely on, so
// a notification lost with a connection delays events by at most this
// and loses none.
const pollInterval = time.Second

// A follower publishes the change log to this store's watchers. Every
// write, on any host, records its changes in the history table and
// notifies the store's channel in its transaction. The listener goroutine
// only wakes the reader; the reader reads the log from the last revision
// it published, in revision order, and publishes it to the local hub.
// This store's own writes come the same way (a local kick spares them the
// notification's round trip), so that every host's watchers see one
// order: the log's.
type follower struct {
	s      *Store
	conn   *pgx.ConnConfig
	wake   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex
	gen  *generation
	last int64 // the last revision published; the reader's alone
}

// A generation is one hub. When the follower cannot catch up because the
// log it needs was pruned (it was cut off for longer than the retention
// lasts), it ends the generation with that error and starts a new one
// at the head.
type generation struct {
	hub *pluginapi.WatchHub
	mu  sync.Mutex
	err error
}

func (g *generation) ended() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

func newFollower(s *Store, conn *pgx.ConnConfig, rev int64) *follower {
	ctx, cancel := context.WithCancel(context.Background())
	// The listener's context ends only at Close: a deadline, not a
	// cancel request, so a cancelled wait never hits a later statement.
	conn.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: c.Conn()}
	}
	delete(conn.RuntimeParams, "statement_timeout")
	f := &follower{s: s, conn: conn, wake: make(chan struct{}, 1), ctx: ctx, cancel: cancel, last: rev}
	f.gen = f.newGeneration(rev)
	f.wg.Add(3)
	go f.listen()
	go f.read()
	go f.tick()
	return f
}

func (f *follower) newGeneration(rev int64) *generation {
	g := &generation{hub: pluginapi.NewWatchHub(f.s.cfg.WatchBuffer)}
	g.hub.SetRevision(rev)
	return g
}

func (f *follower) current() *generation {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gen
}

// kick asks the reader to read the log.
func (f *follower) kick() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *follower) stop() {
	f.cancel()
	f.wg.Wait()
	f.current().hub.Close()
}

func (f *follower) tick() {
	defer f.wg.Done()
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		select {
		case <-f.ctx.Done():
			return
		case <-t.C:
			f.kick()
		}
	}
}

// listen holds a connection that LISTENs on the store's channel and
// kicks the reader on each notification. A lost connection is replaced,
// with backoff, and the reader kicked to catch up on what came meanwhile.
func (f *follower) listen() {
	defer f.wg.Done()
	wait := 100 * time.Millisecond
	for f.ctx.Err() == nil {
		if f.listenOnce() {
			wait = 100 * time.Millisecond
		}
		select {
		case <-f.ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// listenOnce listens until the connection fails; it says whether it got
// as far as listening.
func (f *follower) listenOnce() bool {
	conn, err := pgx.ConnectConfig(f.ctx, f.conn)
	if err != nil {
		return false
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(f.ctx, "LISTEN "+f.s.notify); err != nil {
		return false
	}
	f.kick()
	for {
		if _, err := conn.WaitForNotification(f.ctx); err != nil {
			return true
		}
		f.kick()
	}
}

// read publishes the log each time it is woken.
func (f *follower) read() {
	defer f.wg.Done()
	for {
		select {
		case <-f.ctx.Done():
			return
		case <-f.wake:
		}
		f.catchUp()
	}
}

// catchUp reads the log from the last revision published to the head and
// publishes it. A read that fails (the server is down) is tried again at
// the next wake-up; one that finds the log pruned past where it stands
// ends the watches with that *kv.CompactedError.
func (f *follower) catchUp() {
	g := f.current()
	for f.ctx.Err() == nil {
		// Not ReadHistory: the follower may read all that is not pruned,
		// retention or not, so that a burst larger than the retention
		// does not cut it off.
		evs, through, head, err := f.s.readHistory(f.ctx, "", f.last+1, 1000, pruned)
		var ce *kv.CompactedError
		if errors.As(err, &ce) {
			f.restart(g, ce)
			return
		}
		if err != nil {
			return
		}
		g.hub.Publish(evs...)
		g.hub.SetRevision(through)
		f.last = max(f.last, through)
		if through >= head {
			return
		}
	}
}

// restart ends generation g with err and starts a new one at the head.
func (f *follower) restart(g *generation, err error) {
	var head int64
	if e := f.s.pool.QueryRow(f.ctx, f.s.sql(`SELECT rev FROM {s}.meta`)).Scan(&head); e != nil {
		return // try again at the next wake-up
	}
	g.mu.Lock()
	g.err = err
	g.mu.Unlock()
	f.mu.Lock()
	f.gen = f.newGeneration(head)
	f.mu.Unlock()
	f.last = head
	g.hub.Close()
}

// pruned is the oldest revision still in the history table.
func pruned(_, compact int64) int64 { return compact + 1 }
