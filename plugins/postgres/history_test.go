package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/plugins/postgres"
)

// TestHistoryReadPastChunkBound replays a prefix whose one change comes
// after more history than one read returns (pluginapi.HistoryPageBytes of
// chunks, here five 1 MiB values under another prefix): the reads that
// find nothing under the prefix still move on, and the watch gets its
// event, exactly once, then the live one.
func TestHistoryReadPastChunkBound(t *testing.T) {
	ctx := t.Context()
	b, err := postgres.Open(ctx, settings(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	st := b.(*postgres.Store)
	big := bytes.Repeat([]byte{0x5A}, 1<<20)
	for i := range 5 {
		if _, err := st.Put(ctx, kv.PutRequest{Key: fmt.Sprintf("big/%d", i), Value: big}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Put(ctx, kv.PutRequest{Key: "small/a", Value: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	w, err := st.Watch(ctx, kv.WatchRequest{Prefix: "small/", StartRevision: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := st.Put(ctx, kv.PutRequest{Key: "small/b", Value: []byte("b")}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"PUT small/a 6", "PUT small/b 7"} {
		ev := recvWithin(t, w, followBound)
		for ev.Type == kv.EventProgress {
			ev = recvWithin(t, w, followBound)
		}
		if got := fmt.Sprintf("%v %s %d", ev.Type, ev.Key, ev.Revision); got != want {
			t.Fatalf("watch of small/ from revision 1: %q; want %q", got, want)
		}
	}
	evs, through, err := st.ReadHistory(ctx, "small/", 1, 1000)
	if err != nil || len(evs) != 0 || through < 1 || through > 5 {
		t.Fatalf("one history read of small/ from 1: %d events through %d, %v; want none, through a revision of the big values (the read stops at its bytes)", len(evs), through, err)
	}
}

// TestHistoryGapIsDataLoss removes a chunk that is not pruned (damage the
// store did not do): a replay from it fails with kv.ErrDataLoss instead
// of starting silently at the next chunk.
func TestHistoryGapIsDataLoss(t *testing.T) {
	ctx := t.Context()
	set := settings(t)
	b, err := postgres.Open(ctx, set)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	st := b.(*postgres.Store)
	for _, k := range []string{"a", "b", "c"} {
		if _, err := st.Put(ctx, kv.PutRequest{Key: k, Value: []byte(k)}); err != nil {
			t.Fatal(err)
		}
	}
	admin, err := pgx.Connect(ctx, set["dsn"])
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(ctx, "DELETE FROM "+set["schema"]+".history_chunks WHERE rev = 2"); err != nil {
		t.Fatal(err)
	}
	if evs, _, err := st.ReadHistory(ctx, "", 2, 1000); !errors.Is(err, kv.ErrDataLoss) {
		t.Fatalf("history from revision 2 with its chunk gone: %d events, %v; want kv.ErrDataLoss", len(evs), err)
	}
	if evs, _, err := st.ReadHistory(ctx, "", 3, 1000); err != nil || len(evs) != 1 || evs[0].Key != "c" {
		t.Fatalf("history from revision 3: %v, %v; want the put of c", evs, err)
	}
}
