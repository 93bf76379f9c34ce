package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/plugins/postgres"
)

// Killing a store's listener connection (pg_terminate_backend) loses no
// event: the follower reconnects and reads on from the log, and changes
// written meanwhile by another store on the same schema arrive in order.
func TestListenerKilled(t *testing.T) {
	set := settings(t)
	watcher, err := postgres.Open(t.Context(), set)
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close()
	writer, err := postgres.Open(t.Context(), set)
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	ws, err := watcher.(kv.Watcher).Watch(t.Context(), kv.WatchRequest{Prefix: "k/", ProgressInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	admin, err := pgx.Connect(t.Context(), set["dsn"])
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	var revs []int64
	for round := range 5 {
		var killed int
		err := admin.QueryRow(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE query = $1`, `LISTEN "kvhost_`+set["schema"]+`"`).Scan(&killed)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: terminated %d listener connections", round, killed)
		for i := range 20 {
			e, err := writer.Put(t.Context(), kv.PutRequest{Key: fmt.Sprintf("k/%d-%02d", round, i), Value: []byte("v")})
			if err != nil {
				t.Fatal(err)
			}
			revs = append(revs, e.Version)
		}
	}
	for i, want := range revs {
		ev := recvWithin(t, ws, time.Minute)
		if ev.Revision != want {
			t.Fatalf("event %d at revision %d, want %d: lost or reordered after the listener was killed", i, ev.Revision, want)
		}
	}
}

// recvWithin receives one event; the bound only catches a lost one on a
// loaded machine (the follower polls the log every second anyway).
func recvWithin(t *testing.T, ws kv.WatchStream, bound time.Duration) kv.Event {
	t.Helper()
	type result struct {
		ev  kv.Event
		err error
	}
	ch := make(chan result, 1)
	go func() {
		ev, err := ws.Recv()
		ch <- result{ev, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatal(r.err)
		}
		return r.ev
	case <-time.After(bound):
		t.Fatalf("no event within %v", bound)
	}
	return kv.Event{}
}
