package pluginapi_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi"
	"github.com/kvhost/kvhost/plugins/memory"
)

// A watch that starts at revision 1 while writers keep committing reads
// history, hands over to the live fan-out and receives every revision once,
// in order, with no gap: the hand-over races no writer.
func TestHubReplayHandsOverWithoutGap(t *testing.T) {
	s := memory.New(memory.WithHistory(1<<20), memory.WithRevisionBase(0)) // revisions from 1: the watch replays from the first
	defer s.Close()
	ctx := t.Context()
	const writers, each = 4, 2500
	// Some history exists before the watch starts; more is written during
	// the replay and after it.
	for i := range 3000 {
		if _, err := s.Put(ctx, kv.PutRequest{Key: fmt.Sprintf("pre/%d", i%50), Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			<-start
			for i := range each {
				key := fmt.Sprintf("w%d/%d", w, i%10)
				var err error
				if i%5 == 4 {
					_, err = s.Delete(ctx, key, kv.Condition{})
				} else {
					_, err = s.Put(ctx, kv.PutRequest{Key: key, Value: []byte("x")})
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	close(start)
	// The watch replays while the writers write, and is read as it goes,
	// so that it joins the live fan-out mid-stream.
	ws, err := s.Watch(ctx, kv.WatchRequest{StartRevision: 1, ProgressInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	var final atomic.Int64
	go func() {
		wg.Wait()
		st, err := s.Stats(ctx)
		if err != nil {
			t.Error(err)
		}
		final.Store(st.Revision)
	}()
	for want := int64(1); ; {
		if f := final.Load(); f != 0 && want > f {
			return
		}
		ev, err := ws.Recv()
		if err != nil {
			t.Fatalf("watch ended before revision %d: %v", want, err)
		}
		if ev.Type == kv.EventProgress {
			continue // lets the loop see that the writers are done
		}
		if ev.Revision != want {
			t.Fatalf("got revision %d, want %d: the replay and the live stream overlap or leave a gap", ev.Revision, want)
		}
		want++
	}
}

// A watch from a revision the history no longer holds fails at once with
// the oldest revision that can still be watched; watching from that one
// replays.
func TestHubCompacted(t *testing.T) {
	s := memory.New(memory.WithHistory(10), memory.WithRevisionBase(0)) // revisions from 1
	defer s.Close()
	ctx := t.Context()
	for i := range 100 {
		if _, err := s.Put(ctx, kv.PutRequest{Key: "k", Value: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.Watch(ctx, kv.WatchRequest{StartRevision: 5})
	var ce *kv.CompactedError
	if !errors.As(err, &ce) || !errors.Is(err, kv.ErrCompacted) || ce.Requested != 5 || ce.Oldest != 91 {
		t.Fatalf("watch from 5 with 10 of 100 revisions kept: %v, want compacted with oldest 91", err)
	}
	ws, err := s.Watch(ctx, kv.WatchRequest{StartRevision: ce.Oldest})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if ev, err := ws.Recv(); err != nil || ev.Revision != 91 {
		t.Fatalf("watch from the oldest revision: %+v %v", ev, err)
	}
}

// An idle watch reports progress: the revision it has seen up to, which
// covers changes under other prefixes.
func TestHubProgress(t *testing.T) {
	s := memory.New(memory.WithRevisionBase(0)) // revisions from 1
	defer s.Close()
	ctx := t.Context()
	ws, err := s.Watch(ctx, kv.WatchRequest{Prefix: "quiet/", ProgressInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	e, err := s.Put(ctx, kv.PutRequest{Key: "busy/x", Value: []byte("v")})
	if err != nil {
		t.Fatal(err)
	}
	// Progress events come every 10ms; the one that covers the put may
	// follow earlier ones. A bound of many intervals allows for a loaded
	// machine.
	deadline := time.Now().Add(30 * time.Second)
	for {
		ev, err := ws.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if ev.Type != kv.EventProgress {
			t.Fatalf("got %+v on a prefix nobody wrote", ev)
		}
		if ev.Revision >= e.Version {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("progress still at revision %d, put was %d", ev.Revision, e.Version)
		}
	}
}

var _ pluginapi.History = (*memory.Store)(nil)

// History pages stop after HistoryPageBytes of values, answering the last
// revision they cover, and a replay pages through them without a gap:
// replaying large values holds bounded memory.
func TestHubReplaysLargeValuesInBoundedPages(t *testing.T) {
	s := memory.New(memory.WithRevisionBase(0)) // revisions from 1
	defer s.Close()
	ctx := t.Context()
	value := make([]byte, 1<<20)
	for i := range 12 {
		value[0] = byte(i)
		if _, err := s.Put(ctx, kv.PutRequest{Key: "big", Value: value}); err != nil {
			t.Fatal(err)
		}
	}
	evs, through, err := s.ReadHistory(ctx, "", 1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != pluginapi.HistoryPageBytes>>20 || through != evs[len(evs)-1].Revision {
		t.Fatalf("a page of 1 MiB values: %d events through %d; want %d, through the last", len(evs), through, pluginapi.HistoryPageBytes>>20)
	}
	ws, err := s.Watch(ctx, kv.WatchRequest{StartRevision: 1, ProgressInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	for i := range 12 {
		ev, err := ws.Recv()
		if err != nil || ev.Revision != int64(i+1) || ev.Value[0] != byte(i) {
			t.Fatalf("replayed event %d: revision %d, %v", i, ev.Revision, err)
		}
	}
}
