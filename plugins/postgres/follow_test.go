package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kvhost/kvhost/internal/netproxy"
	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/plugins/postgres"
)

// followBound bounds each wait of a follower test: a follower reads the
// log at least once a second, and a loaded machine may stretch its
// reconnection far past that.
const followBound = 2 * time.Minute

// TestFollowerCutOffPastRetention cuts one store (a second host) off the
// database while another writes past the history's retention and prunes
// it. When the first comes back, its follower finds what it has yet to
// publish pruned: its open watch ends with the compacted error, having
// delivered nothing out of order or with a gap, and a new watch follows
// the log from the head.
func TestFollowerCutOffPastRetention(t *testing.T) {
	ctx := t.Context()
	set := settings(t)
	set["history"] = "50"
	writer, err := postgres.Open(ctx, set)
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	u, err := url.Parse(set["dsn"])
	if err != nil {
		t.Fatal(err)
	}
	proxy := netproxy.Start(t, u.Host)
	u.Host = proxy.Addr()
	cutSet := map[string]string{"dsn": u.String(), "schema": set["schema"], "history": set["history"], "pool_size": "2"}
	b, err := postgres.Open(ctx, cutSet)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cut := b.(kv.Watcher)
	ws, err := cut.Watch(ctx, kv.WatchRequest{Prefix: "k/", ProgressInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	first, err := writer.Put(ctx, kv.PutRequest{Key: "k/first", Value: []byte("v")})
	if err != nil {
		t.Fatal(err)
	}
	if ev := recvWithin(t, ws, followBound); ev.Revision != first.Version {
		t.Fatalf("first event at revision %d, want %d", ev.Revision, first.Version)
	}

	proxy.SetDown(true)
	for i := range 200 {
		if _, err := writer.Put(ctx, kv.PutRequest{Key: fmt.Sprintf("k/%03d", i), Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := writer.(kv.Expirer).CleanupExpired(ctx, 0); err != nil { // prunes history past retention
		t.Fatal(err)
	}
	admin, err := pgx.Connect(ctx, set["dsn"])
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	var compact int64
	if err := admin.QueryRow(ctx, "SELECT compact FROM "+set["schema"]+".meta").Scan(&compact); err != nil {
		t.Fatal(err)
	}
	if compact <= first.Version {
		t.Fatalf("compact revision %d after pruning: the history still holds the cut-off store's next revision %d", compact, first.Version+1)
	}
	proxy.SetDown(false)

	// The watch ends with the compacted error, and nothing before it.
	done := make(chan error, 1)
	go func() {
		ev, err := ws.Recv()
		if err == nil {
			err = fmt.Errorf("an event at revision %d after the gap", ev.Revision)
		}
		done <- err
	}()
	select {
	case err := <-done:
		var ce *kv.CompactedError
		if !errors.As(err, &ce) {
			t.Fatalf("watch of the cut-off store: %v, want *kv.CompactedError", err)
		}
		t.Logf("watch ended: %v", err)
	case <-time.After(followBound):
		t.Fatalf("the cut-off store's watch neither ended nor delivered within %v of reconnecting", followBound)
	}

	// A new watch follows the log again from the head.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	again, err := cut.Watch(wctx, kv.WatchRequest{Prefix: "k/", ProgressInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	last, err := writer.Put(ctx, kv.PutRequest{Key: "k/last", Value: []byte("v")})
	if err != nil {
		t.Fatal(err)
	}
	if ev := recvWithin(t, again, followBound); ev.Revision != last.Version || ev.Key != "k/last" {
		t.Fatalf("new watch: %s at revision %d, want k/last at %d", ev.Key, ev.Revision, last.Version)
	}
}
