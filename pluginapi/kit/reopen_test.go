package kit_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi/kit"
)

// Everything the kit keeps is in the store: a backend opened again on it
// goes on from the same revision, with the same entries and history.
func TestReopenKeepsRevisionsAndHistory(t *testing.T) {
	ctx := t.Context()
	store := kit.NewMemStore() // its Close keeps the data
	b := newBackend(t, store)
	e, err := b.Put(ctx, kv.PutRequest{Key: "a", Value: []byte("1"), TTL: time.Hour})
	must(t, err)
	_, err = b.Delete(ctx, "a", kv.Condition{})
	must(t, err)
	must(t, b.Close())

	b = newBackend(t, store)
	defer b.Close()
	e2, err := b.Put(ctx, kv.PutRequest{Key: "a", Value: []byte("2")})
	must(t, err)
	if e2.Version != e.Version+2 {
		t.Fatalf("after reopening, a put took revision %d, want %d", e2.Version, e.Version+2)
	}
	ws, err := b.(kv.Watcher).Watch(ctx, kv.WatchRequest{StartRevision: 1, ProgressInterval: -1})
	must(t, err)
	defer ws.Close()
	for _, want := range []kv.EventType{kv.EventPut, kv.EventDelete, kv.EventPut} {
		ev, err := ws.Recv()
		must(t, err)
		if ev.Type != want || ev.Key != "a" {
			t.Fatalf("replay after reopening: %+v, want a %s of a", ev, want)
		}
	}
}

// A store written by another layout is refused, not misread.
func TestUnknownLayoutIsRefused(t *testing.T) {
	store := kit.NewMemStore()
	must(t, store.Update(t.Context(), func(tx kit.Tx) error { return tx.Put([]byte("m/format"), []byte("99")) }))
	_, err := kit.New(t.Context(), store, "kit-memory", "test")
	if !errors.Is(err, kv.ErrInvalidArgument) {
		t.Fatalf("open of a store of layout 99: %v, want ErrInvalidArgument", err)
	}
}

// Settings refuses what neither the kit nor the backend knows.
func TestSettings(t *testing.T) {
	if _, err := kit.Settings("x", map[string]string{"path": "/tmp/x", "history": "10"}, "path"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []map[string]string{{"histroy": "10"}, {"history": "0"}, {"watch_buffer": "x"}} {
		if _, err := kit.Settings("x", bad, "path"); !errors.Is(err, kv.ErrInvalidArgument) {
			t.Errorf("settings %v: %v, want ErrInvalidArgument", bad, err)
		}
	}
	if _, err := open(context.Background(), map[string]string{"path": "x"}); !errors.Is(err, kv.ErrInvalidArgument) {
		t.Errorf("a backend with no settings of its own given path: %v, want ErrInvalidArgument", err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
