package sqlkv

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvhost/kvhost/kv"
)

// chunked encodes evs and returns the chunks with their revisions.
type chunk struct {
	first, last int64
	data        []byte
}

func chunked(t testing.TB, evs []kv.Event) []chunk {
	t.Helper()
	var out []chunk
	err := EncodeChunks(evs, func(first, last int64, data []byte) error {
		out = append(out, chunk{first, last, bytes.Clone(data)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func decodeAll(t testing.TB, chunks []chunk, prefix string, from int64) []kv.Event {
	t.Helper()
	var out []kv.Event
	for _, c := range chunks {
		if err := DecodeChunk(c.data, c.first, c.last, prefix, from, func(ev kv.Event) bool { out = append(out, ev); return true }); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestChunkRoundTrip(t *testing.T) {
	exp := time.UnixMilli(1_700_000_000_123)
	big := bytes.Repeat([]byte{0xA5}, chunkBytes/3)
	var evs []kv.Event
	add := func(typ kv.EventType, key string, value []byte, version int64, expiresAt time.Time) {
		evs = append(evs, kv.Event{Type: typ, Key: key, Value: value, Version: version, Revision: 100 + int64(len(evs)), ExpiresAt: expiresAt})
	}
	add(kv.EventPut, "a", []byte("one"), 100, exp)
	add(kv.EventPut, "a/é", []byte{}, 101, time.Time{})
	add(kv.EventTTL, "a", nil, 100, exp.Add(time.Hour))
	add(kv.EventDelete, "b", nil, 7, time.Time{})
	add(kv.EventExpire, "c", nil, 1<<40, time.Time{})
	for i := range 4 { // about 1.3 MiB: the byte limit starts a new chunk
		add(kv.EventPut, fmt.Sprint("big/", i), big, 105+int64(i), time.Time{})
	}
	for i := range ChunkEvents + 10 { // the event limit starts another
		add(kv.EventDelete, fmt.Sprintf("many/%04d", i), nil, int64(i+1), time.Time{})
	}
	chunks := chunked(t, evs)
	if len(chunks) != 3 {
		t.Fatalf("%d chunks, want 3 (split by size, then by count)", len(chunks))
	}
	for i, c := range chunks {
		if i > 0 && c.first != chunks[i-1].last+1 {
			t.Fatalf("chunk %d starts at %d after one that ends at %d", i, c.first, chunks[i-1].last)
		}
	}
	if got := decodeAll(t, chunks, "", 0); fmt.Sprint(got) != fmt.Sprint(evs) {
		t.Fatal("round trip changed the events")
	}
	if got := decodeAll(t, chunks, "a", 0); len(got) != 3 || got[1].Value == nil || len(got[1].Value) != 0 {
		t.Fatalf("under prefix a: %+v", got)
	}
	if got := decodeAll(t, chunks, "many/", evs[len(evs)-3].Revision); len(got) != 3 || got[0].Key != "many/1007" {
		t.Fatalf("the last three under many/: %+v", got)
	}
}

func TestChunkRefusesDamage(t *testing.T) {
	c := chunked(t, []kv.Event{
		{Type: kv.EventPut, Key: "k", Value: []byte("value"), Version: 1, Revision: 1},
		{Type: kv.EventDelete, Key: "k", Version: 1, Revision: 2},
	})[0]
	for _, tc := range []struct {
		name        string
		data        []byte
		first, last int64
	}{
		{"empty", nil, 1, 2},
		{"unknown format", append([]byte{9}, c.data[1:]...), 1, 2},
		{"truncated", c.data[:len(c.data)-1], 1, 2},
		{"fewer changes than revisions", c.data, 1, 3},
		{"more changes than revisions", c.data, 1, 1},
		{"unknown type", append([]byte{chunkFormat, 42}, c.data[2:]...), 1, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := DecodeChunk(tc.data, tc.first, tc.last, "", 0, func(kv.Event) bool { return true })
			if !errors.Is(err, kv.ErrDataLoss) {
				t.Fatalf("decode: %v, want kv.ErrDataLoss", err)
			}
		})
	}
}

// FuzzDecodeChunk checks that any bytes decode or fail cleanly, and that
// what decodes encodes back to the same events.
func FuzzDecodeChunk(f *testing.F) {
	for _, c := range chunked(f, []kv.Event{
		{Type: kv.EventPut, Key: "k", Value: []byte("v"), Version: 1, Revision: 1, ExpiresAt: time.UnixMilli(5)},
		{Type: kv.EventTTL, Key: "k", Version: 1, Revision: 2},
		{Type: kv.EventExpire, Key: "k", Version: 1, Revision: 3},
	}) {
		f.Add(c.data, uint16(c.last-c.first))
	}
	f.Fuzz(func(t *testing.T, data []byte, n uint16) {
		var evs []kv.Event
		err := DecodeChunk(data, 1, 1+int64(n), "", 0, func(ev kv.Event) bool { evs = append(evs, ev); return true })
		if err != nil {
			if !errors.Is(err, kv.ErrDataLoss) {
				t.Fatalf("error %v is not kv.ErrDataLoss", err)
			}
			return
		}
		if len(evs) != int(n)+1 {
			t.Fatalf("decoded %d events from a chunk of %d revisions", len(evs), n+1)
		}
		again := decodeAll(t, chunked(t, evs), "", 0)
		if !slices.EqualFunc(evs, again, func(a, b kv.Event) bool { return fmt.Sprint(a) == fmt.Sprint(b) }) {
			t.Fatal("decoded events do not survive encoding")
		}
		for _, ev := range evs {
			if strings.Contains(fmt.Sprint(ev.Type), "UNKNOWN") {
				t.Fatalf("decoded an event of unknown type %d", ev.Type)
			}
		}
	})
}
