package redis

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/kvhost/kvhost/kv"
)

// header encodes one event header as the scripts do (struct '>BI8I8').
func header(t byte, ver, exp int64) string {
	b := make([]byte, eventHeader)
	b[0] = t
	binary.BigEndian.PutUint64(b[1:9], uint64(ver))
	binary.BigEndian.PutUint64(b[9:17], uint64(exp))
	return string(b)
}

func rawChunk(id, first, headers string, pairs ...any) any {
	return []any{id, append([]any{"f", first, "h", headers}, pairs...)}
}

func TestChunkDecodes(t *testing.T) {
	raw := rawChunk("12-0", "10",
		header(1, 10, 1700000000123)+header(2, 7, 0)+header(4, 9, 0),
		"a", "value of a", "b", "", "c", "")
	c, err := readChunk(raw)
	if err != nil {
		t.Fatal(err)
	}
	var got []kv.Event
	if err := c.events(func(ev kv.Event) bool { got = append(got, ev); return true }); err != nil {
		t.Fatal(err)
	}
	want := []kv.Event{
		{Type: kv.EventPut, Key: "a", Value: []byte("value of a"), Version: 10, Revision: 10, ExpiresAt: kv.FromUnixMillis(1700000000123)},
		{Type: kv.EventDelete, Key: "b", Version: 7, Revision: 11},
		{Type: kv.EventTTL, Key: "c", Version: 9, Revision: 12},
	}
	if len(got) != len(want) {
		t.Fatalf("%d events, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Type != w.Type || g.Key != w.Key || string(g.Value) != string(w.Value) || g.Version != w.Version || g.Revision != w.Revision || !g.ExpiresAt.Equal(w.ExpiresAt) {
			t.Errorf("event %d: %+v, want %+v", i, g, w)
		}
	}
	n := 0
	_ = c.events(func(kv.Event) bool { n++; return false })
	if n != 1 {
		t.Errorf("events went on after keep said stop: %d calls", n)
	}
}

// A damaged stream entry is kv.ErrDataLoss, never a wrong event.
func TestChunkDamage(t *testing.T) {
	good := header(1, 5, 0)
	tests := []struct {
		name string
		raw  any
	}{
		{"not an entry", "x"},
		{"no fields", []any{"5-0", []any{}}},
		{"revisions disagree with the ID", rawChunk("6-0", "5", good, "k", "v")},
		{"headers cut short", rawChunk("5-0", "5", good[:10], "k", "v")},
		{"a pair too many", rawChunk("5-0", "5", good, "k", "v", "k2", "v2")},
		{"no first revision", rawChunk("5-0", "x", good, "k", "v")},
		{"empty key", rawChunk("5-0", "5", good, "", "v")},
		{"unknown type", rawChunk("5-0", "5", header(9, 5, 0), "k", "v")},
		{"a key that is not a string", rawChunk("5-0", "5", good, int64(3), "v")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := readChunk(tt.raw)
			if err == nil {
				err = c.events(func(kv.Event) bool { return true })
			}
			if !errors.Is(err, kv.ErrDataLoss) {
				t.Fatalf("%v, want ErrDataLoss", err)
			}
		})
	}
}

func TestMetaDamage(t *testing.T) {
	if _, _, _, err := parseMeta(strings.Repeat("x", metaSize-1)); !errors.Is(err, kv.ErrDataLoss) {
		t.Fatalf("metadata of %d bytes: %v, want ErrDataLoss", metaSize-1, err)
	}
	m := make([]byte, metaSize)
	binary.BigEndian.PutUint64(m[0:8], 42)
	binary.BigEndian.PutUint64(m[8:16], 1700000000000)
	binary.BigEndian.PutUint32(m[16:20], 7)
	if v, e, l, err := parseMeta(string(m)); err != nil || v != 42 || e != 1700000000000 || l != 7 {
		t.Fatalf("parseMeta: %d %d %d %v", v, e, l, err)
	}
}

func FuzzChunk(f *testing.F) {
	f.Add("12-0", "10", header(1, 10, 0)+header(2, 3, 0)+header(3, 4, 0), "a", "b", "c")
	f.Fuzz(func(t *testing.T, id, first, headers, k1, k2, k3 string) {
		c, err := readChunk(rawChunk(id, first, headers, k1, "v", k2, "", k3, ""))
		if err != nil {
			return
		}
		rev := c.first
		_ = c.events(func(ev kv.Event) bool {
			if ev.Revision != rev || ev.Key == "" {
				t.Fatalf("event %+v at position of revision %d", ev, rev)
			}
			rev++
			return true
		})
	})
}

// packed encodes events as a watched batch packs them (chunk.go).
func packed(events ...[3]string) string {
	var b []byte
	for _, ev := range events {
		b = append(b, ev[0]...)
		b = binary.BigEndian.AppendUint32(b, uint32(len(ev[1])))
		b = binary.BigEndian.AppendUint32(b, uint32(len(ev[2])))
		b = append(append(b, ev[1]...), ev[2]...)
	}
	return string(b)
}

func TestPackedChunkDecodes(t *testing.T) {
	raw := []any{"11-0", []any{"f", "10", "b", packed(
		[3]string{header(1, 10, 0), "a", "value of a"},
		[3]string{header(2, 7, 0), "b", ""},
	)}}
	c, err := readChunk(raw)
	if err != nil {
		t.Fatal(err)
	}
	var got []kv.Event
	if err := c.events(func(ev kv.Event) bool { got = append(got, ev); return true }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Type != kv.EventPut || got[0].Key != "a" || string(got[0].Value) != "value of a" || got[0].Revision != 10 ||
		got[1].Type != kv.EventDelete || got[1].Key != "b" || got[1].Version != 7 || got[1].Revision != 11 {
		t.Fatalf("events %+v", got)
	}
}

func TestPackedChunkDamage(t *testing.T) {
	good := packed([3]string{header(1, 5, 0), "k", "v"})
	tests := []struct {
		name   string
		packed string
		id     string
	}{
		{"cut short", good[:len(good)-1], "5-0"},
		{"a byte too many", good + "x", "5-0"},
		{"header only", good[:packedHeader-1], "5-0"},
		{"revisions disagree with the ID", good, "6-0"},
		{"empty key", packed([3]string{header(1, 5, 0), "", "v"}), "5-0"},
		{"unknown type", packed([3]string{header(9, 5, 0), "k", "v"}), "5-0"},
		{"nothing", "", "5-0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := readChunk([]any{tt.id, []any{"f", "5", "b", tt.packed}})
			if err == nil {
				err = c.events(func(kv.Event) bool { return true })
			}
			if !errors.Is(err, kv.ErrDataLoss) {
				t.Fatalf("%v, want ErrDataLoss", err)
			}
		})
	}
}
