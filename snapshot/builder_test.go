package snapshot_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/snapshot"
)

// build runs a builder over pages and events and returns the records.
func build(t *testing.T, memory int, now time.Time, feed func(b *snapshot.Builder)) ([]snapshot.Record, int64) {
	t.Helper()
	b := snapshot.NewBuilder(t.TempDir(), memory)
	defer b.Close()
	feed(b)
	var buf bytes.Buffer
	w, err := snapshot.NewWriter(&buf, snapshot.Header{Created: now})
	if err != nil {
		t.Fatal(err)
	}
	expired, err := b.Write(w, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	_, recs, err := decode(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return recs, expired
}

// The pages were read at revisions 10 and 14; changes 11..14 happened
// between them and after. The image is the state at 14.
func TestBuilderFoldsChangesIntoPages(t *testing.T) {
	ent := func(k, v string, ver int64) kv.Entry { return kv.Entry{Key: k, Value: []byte(v), Version: ver} }
	recs, expired := build(t, 0, t0, func(b *snapshot.Builder) {
		// page 1 (keys a..c) at 10, page 2 (keys d..) at 14
		must(t, b.AddPage([]kv.Entry{ent("a", "a1", 1), ent("b", "b1", 2), ent("c", "c1", 3)}, 10))
		must(t, b.AddPage([]kv.Entry{ent("d", "d2", 12), ent("f", "f1", 5)}, 14))
		for _, ev := range []kv.Event{
			{Type: kv.EventPut, Key: "a", Value: []byte("a2"), Version: 11, Revision: 11},         // after page 1: applies
			{Type: kv.EventPut, Key: "d", Value: []byte("d2"), Version: 12, Revision: 12},         // page 2 has it already
			{Type: kv.EventDelete, Key: "b", Revision: 13},                                        // after page 1: b is gone
			{Type: kv.EventTTL, Key: "c", Version: 3, Revision: 14, ExpiresAt: t0.Add(time.Hour)}, // c keeps value, gets expiry
			{Type: kv.EventPut, Key: "e", Value: []byte("e1"), Version: 9, Revision: 9},           // before page 2 listed e's range, then
			{Type: kv.EventDelete, Key: "e", Revision: 10},                                        // deleted: not in the image
			{Type: kv.EventProgress, Revision: 14},
		} {
			must(t, b.AddEvent(ev))
		}
	})
	var got []string
	for _, r := range recs {
		s := fmt.Sprintf("%s=%s@%d", r.Key, r.Value, r.Version)
		if !r.ExpiresAt.IsZero() {
			s += "+" + r.ExpiresAt.Sub(t0).String()
		}
		got = append(got, s)
	}
	wantOrder := []string{"c=c1@3+1h0m0s", "f=f1@5", "a=a2@11", "d=d2@12"}
	if fmt.Sprint(got) != fmt.Sprint(wantOrder) || expired != 0 {
		t.Errorf("image %v (%d expired), want %v in version order", got, expired, wantOrder)
	}
}

func TestBuilderLeavesOutExpired(t *testing.T) {
	recs, expired := build(t, 0, t0, func(b *snapshot.Builder) {
		must(t, b.AddPage([]kv.Entry{
			{Key: "gone", Value: []byte("x"), Version: 1, ExpiresAt: t0},
			{Key: "left", Value: []byte("y"), Version: 2, ExpiresAt: t0.Add(time.Millisecond)},
		}, 2))
	})
	if len(recs) != 1 || recs[0].Key != "left" || expired != 1 {
		t.Errorf("records %+v, %d expired; want only \"left\" and 1 expired", recs, expired)
	}
}

// With a budget far below the image, the builder sorts through
// temporary files and gives the same image as in memory.
func TestBuilderSpills(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 5000
	versions := rng.Perm(n)
	var entries []kv.Entry
	for i := range n {
		entries = append(entries, kv.Entry{Key: fmt.Sprintf("k%05d", i), Value: bytes.Repeat([]byte{byte(i)}, rng.IntN(200)), Version: int64(versions[i] + 1)})
	}
	feed := func(b *snapshot.Builder) {
		for i := 0; i < n; i += 700 {
			must(t, b.AddPage(entries[i:min(i+700, n)], n))
		}
		must(t, b.AddEvent(kv.Event{Type: kv.EventDelete, Key: "k00007", Revision: n + 1}))
	}
	inMemory, _ := build(t, 0, t0, feed)
	spilled, _ := build(t, 4<<10, t0, feed)
	if len(inMemory) != n-1 || len(spilled) != n-1 {
		t.Fatalf("%d and %d records, want %d", len(inMemory), len(spilled), n-1)
	}
	for i := range inMemory {
		a, b := inMemory[i], spilled[i]
		if a.Key != b.Key || !bytes.Equal(a.Value, b.Value) || a.Version != b.Version {
			t.Fatalf("record %d: %+v in memory, %+v spilled", i, a, b)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
