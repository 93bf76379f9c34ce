package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/plugins/internal/sqlkv"
)

// historyRows counts the revisions kv_history holds and reads the
// compact revision, on a reader connection.
func historyRows(t testing.TB, s *Store) (rows, compact int64) {
	t.Helper()
	err := s.rdb.QueryRowContext(context.Background(), `SELECT coalesce(sum(last - revision + 1), 0), `+compactOf+` FROM kv_history`).
		Scan(&rows, &compact)
	if err != nil {
		t.Fatal(err)
	}
	return rows, compact
}

// readAll reads history from revision from to the head.
func readAll(t testing.TB, s *Store, prefix string, from int64) []kv.Event {
	t.Helper()
	var out []kv.Event
	for {
		evs, through, err := s.ReadHistory(context.Background(), prefix, from, 100)
		if err != nil {
			t.Fatalf("ReadHistory(%q, %d): %v", prefix, from, err)
		}
		out = append(out, evs...)
		if len(evs) < 100 {
			return out
		}
		from = evs[len(evs)-1].Revision + 1
		if from > through+1 {
			t.Fatalf("history page ends at revision %d, after the read's revision %d", from-1, through)
		}
	}
}

func wantCompacted(t testing.TB, err error, requested, oldest int64) {
	t.Helper()
	var ce *kv.CompactedError
	if !errors.As(err, &ce) || ce.Requested != requested || ce.Oldest != oldest {
		t.Fatalf("error %v, want a *kv.CompactedError for revision %d with oldest %d", err, requested, oldest)
	}
}

// TestMigrateV1 opens a database written by schema version 1: its data
// stays, its revision is its last version, and its history starts empty
// with the compact revision there.
func TestMigrateV1(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v1.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if err := migrations(false)[0](ctx, db); err != nil {
		t.Fatal(err)
	}
	farFuture := time.Now().Add(time.Hour).UnixMilli()
	for _, q := range []string{
		`UPDATE kvhost_meta SET value = 1 WHERE name = 'schema_version'`,
		`UPDATE kvhost_meta SET value = 41 WHERE name = 'last_version'`,
		`INSERT INTO kv VALUES ('a', X'6f6e65', 7, 0, 1, 1), ('b/1', X'', 41, ` + fmt.Sprint(farFuture) + `, 1, 1)`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	s := openStore(t, Config{Path: path})
	var schema int64
	if err := s.rdb.QueryRowContext(ctx, `SELECT value FROM kvhost_meta WHERE name = 'schema_version'`).Scan(&schema); err != nil || schema != SchemaVersion {
		t.Fatalf("schema_version = %d (%v), want %d", schema, err, SchemaVersion)
	}
	g, err := s.Get(ctx, "a")
	if err != nil || !g.Found || string(g.Entry.Value) != "one" || g.Entry.Version != 7 || g.Revision != 41 {
		t.Fatalf("Get(a) after migration = %+v, %v", g, err)
	}
	list, err := s.List(ctx, kv.ListRequest{Prefix: "b/"})
	if err != nil || len(list.Entries) != 1 || list.Entries[0].Version != 41 || list.Entries[0].ExpiresAt.UnixMilli() != farFuture || list.Revision != 41 {
		t.Fatalf("List(b/) after migration = %+v, %v", list, err)
	}
	st, err := s.Stats(ctx)
	if err != nil || st.Keys != 2 || st.Revision != 41 || st.OldestRevision != 42 || st.Bytes != 1+3+3+0 {
		t.Fatalf("Stats after migration = %+v, %v; want 2 keys of 7 bytes at revision 41, oldest 42 (size filled in by migration 3)", st, err)
	}
	_, _, err = s.ReadHistory(ctx, "", 41, 10)
	wantCompacted(t, err, 41, 42)
	if _, err := s.Watch(ctx, kv.WatchRequest{StartRevision: 1}); !errors.Is(err, kv.ErrCompacted) {
		t.Fatalf("watch from before the migration: %v", err)
	}
	if evs, through, err := s.ReadHistory(ctx, "", 42, 10); err != nil || len(evs) != 0 || through != 41 {
		t.Fatalf("ReadHistory(42) = %v, %d, %v; want nothing through 41", evs, through, err)
	}
	w, err := s.Watch(ctx, kv.WatchRequest{StartRevision: 42, ProgressInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if e := mustPut(t, s, "a", "two", 0); e.Version != 42 {
		t.Fatalf("first put after migration took version %d, want 42", e.Version)
	}
	if ev, err := w.Recv(); err != nil || ev.Revision != 42 || ev.Key != "a" || string(ev.Value) != "two" {
		t.Fatalf("watch from 42: %+v %v", ev, err)
	}
	if evs := readAll(t, s, "", 42); len(evs) != 1 || evs[0].Revision != 42 {
		t.Fatalf("history after the first put: %+v", evs)
	}
}

// TestHistoryCommitsWithWrite checks that a history row exists exactly
// when its write committed: writes that change nothing leave none, and a
// failure while recording history undoes the write.
func TestHistoryCommitsWithWrite(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, Config{})
	mustPut(t, s, "k", "v", 0)
	mustPut(t, s, "text", "abc", 0)
	w, err := s.Watch(ctx, kv.WatchRequest{TTLEvents: true, ProgressInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	unchanged := func(what string) {
		t.Helper()
		if rev := revision(t, s); rev != 2 {
			t.Fatalf("%s: revision %d, want 2", what, rev)
		}
		if rows, _ := historyRows(t, s); rows != 2 {
			t.Fatalf("%s: %d history rows, want 2", what, rows)
		}
	}
	_, err = s.Batch(ctx, []kv.Op{
		kv.PutOp("n1", []byte("a"), 0, kv.Condition{}),
		kv.DeleteOp("k", kv.Condition{}),
		kv.PutOp("n2", []byte("b"), 0, kv.IfAbsent()),
		kv.PutOp("k", []byte("c"), 0, kv.IfVersion(1)), // k is gone by now
	})
	if !errors.Is(err, kv.ErrConflict) {
		t.Fatalf("failed batch: %v", err)
	}
	unchanged("failed batch")
	if _, err := s.Put(ctx, kv.PutRequest{Key: "k", Value: []byte("x"), Cond: kv.IfAbsent()}); !errors.Is(err, kv.ErrConflict) {
		t.Fatalf("put if absent on a live key: %v", err)
	}
	if _, err := s.Increment(ctx, "text", 1); !errors.Is(err, kv.ErrInvalidArgument) {
		t.Fatalf("increment of text: %v", err)
	}
	if r, err := s.Delete(ctx, "missing", kv.Condition{}); err != nil || r.Deleted || r.Revision != 2 {
		t.Fatalf("delete missing: %+v %v", r, err)
	}
	if _, err := s.RefreshTTL(ctx, kv.RefreshRequest{Key: "missing", TTL: time.Second}); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("refresh missing: %v", err)
	}
	if r, err := s.DeletePrefix(ctx, "nothing/"); err != nil || r.Deleted != 0 || r.Revision != 2 {
		t.Fatalf("delete-prefix of nothing: %+v %v", r, err)
	}
	unchanged("writes that change nothing")

	// A history row that cannot be written takes its write with it.
	if _, err := s.w.ExecContext(ctx, `CREATE TRIGGER poison BEFORE INSERT ON kv_history
		BEGIN SELECT RAISE(ABORT, 'injected failure'); END`); err != nil {
		t.Fatal(err)
	}
	_, err = s.Batch(ctx, []kv.Op{kv.PutOp("n1", []byte("a"), 0, kv.Condition{}), kv.PutOp("n2", nil, 0, kv.Condition{})})
	if err == nil {
		t.Fatal("a batch whose history row failed was acknowledged")
	}
	if _, err := s.w.ExecContext(ctx, `DROP TRIGGER poison`); err != nil {
		t.Fatal(err)
	}
	if g, _ := s.Get(ctx, "n1"); g.Found {
		t.Fatal("a batch whose history row failed left its put")
	}
	unchanged("history insert failed")

	// The next change takes the next revision: nothing was consumed.
	if e := mustPut(t, s, "n1", "a", 0); e.Version != 3 {
		t.Fatalf("put after the failures took version %d, want 3", e.Version)
	}
	if ev, err := w.Recv(); err != nil || ev.Revision != 3 || ev.Key != "n1" {
		t.Fatalf("first event after the failures: %+v %v; want n1 at 3, nothing before", ev, err)
	}
	if evs := readAll(t, s, "", 1); len(evs) != 3 || evs[2].Key != "n1" {
		t.Fatalf("history = %+v", evs)
	}
}

// TestHistoryEvents checks that history replays each kind of change as
// the live watch saw it.
func TestHistoryEvents(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	s := openStore(t, Config{now: clk.now})
	live, err := s.Watch(ctx, kv.WatchRequest{TTLEvents: true, ProgressInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	mustPut(t, s, "a", "", time.Second)
	mustPut(t, s, "d/2", "x", 0)
	mustPut(t, s, "d/1", "y", 0)
	if _, err := s.RefreshTTL(ctx, kv.RefreshRequest{Key: "a", TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Increment(ctx, "n", 3); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeletePrefix(ctx, "d/"); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, "e", "z", time.Millisecond)
	clk.advance(time.Second)
	if n, err := s.CleanupExpired(ctx, 0); err != nil || n != 1 {
		t.Fatalf("cleanup = %d, %v", n, err)
	}
	replayed := readAll(t, s, "", 1)
	var got []string
	for i, ev := range replayed {
		lv, err := live.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(lv) != fmt.Sprint(ev) {
			t.Fatalf("event %d: live %+v, history %+v", i, lv, ev)
		}
		got = append(got, fmt.Sprintf("%d %s %s %q v%d exp=%v", ev.Revision, ev.Type, ev.Key, ev.Value, ev.Version, !ev.ExpiresAt.IsZero()))
	}
	want := []string{
		`1 PUT a "" v1 exp=true`,
		`2 PUT d/2 "x" v2 exp=false`,
		`3 PUT d/1 "y" v3 exp=false`,
		`4 TTL a "" v1 exp=true`,
		`5 PUT n "3" v5 exp=false`,
		`6 DELETE d/1 "" v3 exp=false`,
		`7 DELETE d/2 "" v2 exp=false`,
		`8 PUT e "z" v8 exp=true`,
		`9 EXPIRE e "" v8 exp=false`,
	}
	if !slices.Equal(got, want) {
		t.Fatalf("history:\n%q\nwant\n%q", got, want)
	}
	if replayed[0].Value == nil {
		t.Fatal("an empty value came back from history as no value")
	}
	if evs := readAll(t, s, "d/", 1); len(evs) != 4 || evs[0].Key != "d/2" || evs[3].Key != "d/2" {
		t.Fatalf("history under d/ = %+v", evs)
	}
}

// TestHistoryCompaction checks the retention boundary: the last History
// revisions are offered, the one before is a *kv.CompactedError naming the
// oldest, and pruning deletes what is past it in bounded steps.
func TestHistoryCompaction(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, Config{History: 10})
	for i := range 50 {
		mustPut(t, s, fmt.Sprintf("k%02d", i%7), "v", 0)
	}
	if st, err := s.Stats(ctx); err != nil || st.Revision != 50 || st.OldestRevision != 41 {
		t.Fatalf("stats = %+v, %v; want revision 50, oldest 41", st, err)
	}
	_, _, err := s.ReadHistory(ctx, "", 40, 100)
	wantCompacted(t, err, 40, 41)
	_, err = s.Watch(ctx, kv.WatchRequest{StartRevision: 40})
	wantCompacted(t, err, 40, 41)
	evs := readAll(t, s, "", 41)
	if len(evs) != 10 || evs[0].Revision != 41 || evs[9].Revision != 50 {
		t.Fatalf("history from the oldest = %+v", evs)
	}
	// Writes prune as they go, a few rows at a time; cleanup prunes the rest.
	if rows, compact := historyRows(t, s); rows > 10+s.pruneStep() || rows+compact != 50 {
		t.Fatalf("%d history rows after compact revision %d", rows, compact)
	}
	if _, err := s.CleanupExpired(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if rows, compact := historyRows(t, s); rows != 10 || compact != 40 {
		t.Fatalf("after cleanup: %d history rows, compact revision %d; want 10 and 40", rows, compact)
	}

	// Changes in chunks of a thousand: a chunk is pruned whole, once all
	// its revisions are past retention, and one transaction prunes at most
	// pruneBatch revisions' worth.
	const big = 5 * kv.MaxBatchOps
	for b := range big / kv.MaxBatchOps {
		var ops []kv.Op
		for i := range kv.MaxBatchOps {
			ops = append(ops, kv.PutOp(fmt.Sprintf("big/%d/%04d", b, i), nil, 0, kv.Condition{}))
		}
		if _, err := s.Batch(ctx, ops); err != nil {
			t.Fatal(err)
		}
	}
	if rows, _ := historyRows(t, s); rows != kv.MaxBatchOps {
		t.Fatalf("history holds %d revisions after batches that each pruned the one before, want the last batch's %d", rows, kv.MaxBatchOps)
	}
	_, before := historyRows(t, s)
	if r, err := s.DeletePrefix(ctx, "big/"); err != nil || r.Deleted != big {
		t.Fatalf("delete-prefix = %+v, %v", r, err)
	}
	if _, after := historyRows(t, s); after == before || after-before > pruneBatch {
		t.Fatalf("a delete-prefix of %d keys pruned revisions %d to %d; want some, at most %d", big, before+1, after, pruneBatch)
	}
	if _, err := s.CleanupExpired(ctx, 0); err != nil {
		t.Fatal(err)
	}
	rev := revision(t, s)
	if rows, compact := historyRows(t, s); rows != sqlkv.ChunkEvents || compact != rev-sqlkv.ChunkEvents {
		t.Fatalf("after cleanup: %d revisions of history after compact revision %d; want the last chunk's %d after %d",
			rows, compact, sqlkv.ChunkEvents, rev-sqlkv.ChunkEvents)
	}
	// The chunk is kept whole, but only the last 10 revisions are offered.
	_, _, err = s.ReadHistory(ctx, "big/", rev-10, 100)
	wantCompacted(t, err, rev-10, rev-9)
	if evs := readAll(t, s, "big/", rev-9); len(evs) != 10 || evs[9].Revision != rev || evs[9].Type != kv.EventDelete {
		t.Fatalf("history under big/ = %d events, last %+v", len(evs), evs[len(evs)-1])
	}
}

// TestRevisionsSurviveReopen checks that the revision counter and the
// history outlive the process: no revision is reused, a watch replays
// across the restart, and the watch hub starts at the stored revision.
func TestRevisionsSurviveReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kv.db")
	s, err := New(ctx, Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		mustPut(t, s, fmt.Sprintf("k%d", i), "v", 0)
	}
	if _, err := s.DeletePrefix(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, Config{Path: path})
	if g, err := s.Get(ctx, "k0"); err != nil || g.Found || g.Revision != 20 {
		t.Fatalf("Get after reopen = %+v, %v; want not found at revision 20", g, err)
	}
	idle, err := s.Watch(ctx, kv.WatchRequest{ProgressInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if ev, err := idle.Recv(); err != nil || ev.Type != kv.EventProgress || ev.Revision != 20 {
		t.Fatalf("first event of an idle watch after reopen = %+v, %v; want progress at 20", ev, err)
	}
	if e := mustPut(t, s, "k0", "v", 0); e.Version != 21 {
		t.Fatalf("put after reopen took version %d, want 21", e.Version)
	}
	w, err := s.Watch(ctx, kv.WatchRequest{StartRevision: 1, ProgressInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for want := int64(1); want <= 21; want++ {
		ev, err := w.Recv()
		if err != nil || ev.Revision != want {
			t.Fatalf("replay across reopen: %+v %v, want revision %d", ev, err, want)
		}
	}
}

// writeLog records, by revision, the change each acknowledged write made,
// as "TYPE key".
type writeLog struct {
	mu  sync.Mutex
	log map[int64]string
}

func (l *writeLog) add(rev int64, typ kv.EventType, key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if prev, ok := l.log[rev]; ok {
		panic(fmt.Sprintf("revision %d taken twice: %s and %s %s", rev, prev, typ, key))
	}
	l.log[rev] = fmt.Sprintf("%s %s", typ, key)
}

// writer makes a random mix of every kind of change on its own keys.
func writer(ctx context.Context, s *Store, l *writeLog, id, n int) error {
	rng := rand.New(rand.NewPCG(uint64(id), 1))
	for i := range n {
		key := fmt.Sprintf("w%d/%02d", id, rng.IntN(20))
		switch rng.IntN(6) {
		case 0, 1:
			e, err := s.Put(ctx, kv.PutRequest{Key: key, Value: []byte(fmt.Sprint(i)), TTL: time.Hour})
			if err != nil {
				return err
			}
			l.add(e.Version, kv.EventPut, key)
		case 2:
			r, err := s.Delete(ctx, key, kv.Condition{})
			if err != nil {
				return err
			}
			if r.Deleted {
				l.add(r.Revision, kv.EventDelete, key)
			}
		case 3:
			r, err := s.RefreshTTL(ctx, kv.RefreshRequest{Key: key, TTL: time.Hour})
			if errors.Is(err, kv.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			l.add(r.Revision, kv.EventTTL, key)
		case 4:
			c, err := s.Increment(ctx, fmt.Sprintf("w%d/n", id), 1)
			if err != nil {
				return err
			}
			l.add(c.Version, kv.EventPut, fmt.Sprintf("w%d/n", id))
		case 5:
			ops := []kv.Op{kv.PutOp(key+"/b", nil, 0, kv.Condition{}), kv.DeleteOp(key, kv.Condition{})}
			res, err := s.Batch(ctx, ops)
			if err != nil {
				return err
			}
			l.add(res.Results[0].Revision, kv.EventPut, key+"/b")
			if res.Results[1].Deleted {
				l.add(res.Results[1].Revision, kv.EventDelete, key)
			}
		}
	}
	return nil
}

// TestWatchResume kills a watch again and again while several writers
// run, and resumes it each time from the last revision it saw plus one:
// over all its lives it must receive every change exactly once, in
// revision order, as the writers were told it happened.
func TestWatchResume(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, Config{WatchBuffer: 64}) // small: overflows end lives too
	l := &writeLog{log: map[int64]string{}}
	const writers, perWriter = 4, 400
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for id := range writers {
		wg.Go(func() { errs <- writer(ctx, s, l, id, perWriter) })
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	var got []kv.Event
	lives, next := 0, int64(1)
	rng := rand.New(rand.NewPCG(7, 7))
	// caughtUp: the writers are done and every change has been received.
	caughtUp := func() bool { return isClosed(done) && next > revision(t, s) }
	for !caughtUp() {
		lives++
		wctx, kill := context.WithCancel(ctx)
		// Progress events wake an idle life up to see whether it is over.
		w, err := s.Watch(wctx, kv.WatchRequest{StartRevision: next, TTLEvents: true, ProgressInterval: 10 * time.Millisecond})
		if err != nil {
			t.Fatalf("life %d: watch from %d: %v", lives, next, err)
		}
		life := 1 + rng.IntN(300)
		for n := 0; ; n++ {
			if n == life {
				kill() // mid-flow: the writers are still going
			}
			ev, err := w.Recv()
			if err != nil {
				break // killed, or overflowed: resume from next
			}
			if ev.Type == kv.EventProgress {
				if caughtUp() {
					break
				}
				continue
			}
			got = append(got, ev)
			next = ev.Revision + 1
		}
		kill()
		w.Close()
	}
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != len(l.log) {
		t.Errorf("received %d events over %d lives, writers made %d changes", len(got), lives, len(l.log))
	}
	for i, ev := range got {
		if ev.Revision != int64(i+1) {
			t.Fatalf("event %d has revision %d: a gap, a duplicate or disorder", i, ev.Revision)
		}
		if want := l.log[ev.Revision]; fmt.Sprintf("%s %s", ev.Type, ev.Key) != want {
			t.Fatalf("revision %d: event %s %s, the writer made %s", ev.Revision, ev.Type, ev.Key, want)
		}
	}
	t.Logf("%d changes, watched over %d lives", len(got), lives)
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// TestListThenWatch checks that a read's revision is exact under
// concurrent writes: a list at revision R plus every change from R+1 on
// rebuilds the state a final list reports.
func TestListThenWatch(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, Config{})
	l := &writeLog{log: map[int64]string{}}
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for id := range 3 {
		wg.Go(func() { errs <- writer(ctx, s, l, id, 300) })
	}
	waitFor(t, "the writers to start", func() bool { return revision(t, s) > 50 })
	first, err := s.List(ctx, kv.ListRequest{Limit: kv.MaxListLimit, KeysOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	state := map[string]int64{}
	for _, e := range first.Entries {
		state[e.Key] = e.Version
	}
	w, err := s.Watch(ctx, kv.WatchRequest{StartRevision: first.Revision + 1, ProgressInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	final, err := s.List(ctx, kv.ListRequest{Limit: kv.MaxListLimit, KeysOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	for rev := first.Revision; rev < final.Revision; {
		ev, err := w.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if ev.Revision <= rev {
			t.Fatalf("event at revision %d after %d", ev.Revision, rev)
		}
		rev = ev.Revision
		switch ev.Type {
		case kv.EventPut:
			state[ev.Key] = ev.Version
		case kv.EventDelete, kv.EventExpire:
			delete(state, ev.Key)
		}
	}
	want := map[string]int64{}
	for _, e := range final.Entries {
		want[e.Key] = e.Version
	}
	if fmt.Sprint(state) != fmt.Sprint(want) {
		t.Fatalf("list at %d plus its watch gives\n%v\nthe list at %d says\n%v", first.Revision, state, final.Revision, want)
	}
}

// TestSchemaVersionIsMigrationCount holds SchemaVersion, which the docs and
// errors name, to the migrations this build runs.
func TestSchemaVersionIsMigrationCount(t *testing.T) {
	if n := len(migrations(false)); n != SchemaVersion {
		t.Fatalf("SchemaVersion is %d but there are %d migrations", SchemaVersion, n)
	}
}
