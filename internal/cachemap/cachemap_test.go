package cachemap

import (
	"fmt"
	"testing"
)

func size(key string, v string) int64 { return int64(len(key) + len(v)) }

func serving() *Map[string] {
	m := New(1<<20, size)
	m.Serve()
	return m
}

// fill is a read that missed and found v.
func fill(m *Map[string], key, v string) bool {
	_, _, _, t := m.Lookup(key)
	return m.Fill(t, v)
}

func TestServesWhatWasFilled(t *testing.T) {
	m := serving()
	if !fill(m, "k", "v") {
		t.Fatal("a quiet fill was refused")
	}
	if v, _, found, _ := m.Lookup("k"); !found || v != "v" {
		t.Fatalf("lookup = %q %v, want v", v, found)
	}
	m.Changed(7, "k")
	if _, pos, found, _ := m.Lookup("k"); found || pos != 7 {
		t.Fatalf("after a change: found %v at %d, want forgotten at 7", found, pos)
	}
}

// A fill is refused when anything that could make it stale happened
// while its read was in flight.
func TestFillRefusedAfterRace(t *testing.T) {
	for name, race := range map[string]func(m *Map[string]){
		"a change to its key":      func(m *Map[string]) { m.Changed(1, "k") },
		"a change in its stripe":   func(m *Map[string]) { m.Changed(1, sameStripe(m, "k")) },
		"a write began":            func(m *Map[string]) { m.Begin([]string{"k"}, false) },
		"a write came and went":    func(m *Map[string]) { m.Begin([]string{"k"}, false)() },
		"a prefix write":           func(m *Map[string]) { m.Begin(nil, true)() },
		"the stream was lost":      func(m *Map[string]) { m.Reset() },
		"the stream lost and back": func(m *Map[string]) { m.Reset(); m.Serve() },
	} {
		t.Run(name, func(t *testing.T) {
			m := serving()
			_, _, _, ticket := m.Lookup("k")
			race(m)
			if m.Fill(ticket, "stale") {
				t.Fatal("the fill was kept")
			}
			if v, _, found, _ := m.Lookup("k"); found {
				t.Fatalf("served %q", v)
			}
		})
	}
	m := serving()
	_, _, _, ticket := m.Lookup("k")
	m.Changed(1, otherStripe(m, "k"))
	if !m.Fill(ticket, "v") {
		t.Fatal("a change in another stripe voided the fill")
	}
}

func TestNothingServedWhileWritingOrDown(t *testing.T) {
	m := serving()
	fill(m, "k", "v")
	end := m.Begin([]string{"k"}, false)
	if _, _, found, _ := m.Lookup("k"); found {
		t.Fatal("served while a write was in flight")
	}
	end()
	if _, _, found, _ := m.Lookup("k"); found {
		t.Fatal("the written key was not forgotten")
	}
	fill(m, "k", "v")
	m.Reset()
	if _, _, found, _ := m.Lookup("k"); found {
		t.Fatal("served after the stream was lost")
	}
	if fill(m, "k", "v") {
		t.Fatal("filled while the stream was down")
	}
}

func TestBoundedInBytes(t *testing.T) {
	m := New(1000, size)
	m.Serve()
	for i := range 200 {
		fill(m, fmt.Sprintf("key-%03d", i), "0123456789") // 17 bytes each
	}
	if n, bytes := m.Size(); bytes > 1000 || n > 1000/17 {
		t.Fatalf("holds %d entries, %d bytes: over the 1000-byte bound", n, bytes)
	}
	if fill(m, "big", string(make([]byte, 200))) {
		t.Fatal("kept a value over an eighth of the bound")
	}
}

func sameStripe(m *Map[string], key string) string {
	for i := 0; ; i++ {
		if k := fmt.Sprint("probe-", i); m.stripe(k) == m.stripe(key) && k != key {
			return k
		}
	}
}

func otherStripe(m *Map[string], key string) string {
	for i := 0; ; i++ {
		if k := fmt.Sprint("probe-", i); m.stripe(k) != m.stripe(key) {
			return k
		}
	}
}
