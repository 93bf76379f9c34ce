package postgres_test

import (
	"bytes"
	"fmt"
	"testing"

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
		ev, err := w.Recv()
		for err == nil && ev.Type == kv.EventProgress {
			ev, err = w.Recv()
		}
		if got := fmt.Sprintf("%v %s %d", ev.Type, ev.Key, ev.Revision); err != nil || got != want {
			t.Fatalf("watch of small/ from revision 1: %q, %v; want %q", got, err, want)
		}
	}
	evs, through, err := st.ReadHistory(ctx, "small/", 1, 1000)
	if err != nil || len(evs) != 0 || through < 1 || through > 5 {
		t.Fatalf("one history read of small/ from 1: %d events through %d, %v; want none, through a revision of the big values (the read stops at its bytes)", len(evs), through, err)
	}
}
