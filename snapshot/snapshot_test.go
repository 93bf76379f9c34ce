package snapshot_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/snapshot"
)

var t0 = time.UnixMilli(1_800_000_000_000)

// sample is a small image: a key without expiry, one with, an empty
// value and a value that is not UTF-8.
func sample() []snapshot.Record {
	return []snapshot.Record{
		{Key: "a", Value: []byte("one"), Version: 3},
		{Key: "session/1", Value: []byte("s"), Version: 7, ExpiresAt: t0.Add(time.Hour)},
		{Key: "empty", Value: []byte{}, Version: 8},
		{Key: "bin", Value: []byte{0, 0xff, 0xfe}, Version: 12},
	}
}

func encode(t testing.TB, h snapshot.Header, recs []snapshot.Record) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := snapshot.NewWriter(&buf, h)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func decode(data []byte) (snapshot.Header, []snapshot.Record, error) {
	r, err := snapshot.NewReader(bytes.NewReader(data))
	if err != nil {
		return snapshot.Header{}, nil, err
	}
	var recs []snapshot.Record
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return r.Header(), recs, nil
		}
		if err != nil {
			return r.Header(), recs, err
		}
		recs = append(recs, rec)
	}
}

func TestRoundTrip(t *testing.T) {
	h := snapshot.Header{Revision: 12, Created: t0, Source: "kvhost 127.0.0.1:7070 (sqlite)"}
	data := encode(t, h, sample())
	got, recs, err := decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != snapshot.FormatVersion || got.Revision != 12 || !got.Created.Equal(t0) || got.Source != h.Source {
		t.Errorf("header %+v, want %+v", got, h)
	}
	want := sample()
	if len(recs) != len(want) {
		t.Fatalf("%d records, want %d", len(recs), len(want))
	}
	for i := range want {
		r, w := recs[i], want[i]
		if r.Key != w.Key || !bytes.Equal(r.Value, w.Value) || r.Version != w.Version || !r.ExpiresAt.Equal(w.ExpiresAt) {
			t.Errorf("record %d = %+v, want %+v", i, r, w)
		}
	}
	h2, n, sum, err := snapshot.Verify(bytes.NewReader(data))
	if err != nil || n != 4 || h2.Revision != 12 || sum == [32]byte{} {
		t.Errorf("Verify = %+v, %d, %x, %v", h2, n, sum, err)
	}
}

func TestRecordTTL(t *testing.T) {
	for _, tc := range []struct {
		name    string
		expires time.Time
		ttl     time.Duration
		ok      bool
	}{
		{"no expiry", time.Time{}, 0, true},
		{"left", t0.Add(1500 * time.Millisecond), 1500 * time.Millisecond, true},
		{"now", t0, 0, false},
		{"past", t0.Add(-time.Second), 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ttl, ok := snapshot.Record{ExpiresAt: tc.expires}.TTL(t0)
			if ttl != tc.ttl || ok != tc.ok {
				t.Errorf("TTL = %v, %v; want %v, %v", ttl, ok, tc.ttl, tc.ok)
			}
		})
	}
}

func TestWriterRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		recs []snapshot.Record
	}{
		{"versions out of order", []snapshot.Record{{Key: "a", Version: 5}, {Key: "b", Version: 5}}},
		{"version zero", []snapshot.Record{{Key: "a", Version: 0}}},
		{"empty key", []snapshot.Record{{Key: "", Version: 1}}},
		{"NUL in key", []snapshot.Record{{Key: "a\x00", Version: 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := snapshot.NewWriter(io.Discard, snapshot.Header{})
			if err != nil {
				t.Fatal(err)
			}
			var last error
			for _, r := range tc.recs {
				last = w.Write(r)
			}
			if !errors.Is(last, kv.ErrInvalidArgument) {
				t.Errorf("Write = %v, want ErrInvalidArgument", last)
			}
		})
	}
}

func TestReaderRefuses(t *testing.T) {
	good := encode(t, snapshot.Header{Revision: 12, Created: t0}, sample())
	with := func(f func(b []byte) []byte) []byte { return f(slices.Clone(good)) }
	for _, tc := range []struct {
		name string
		data []byte
		want error
		says string
	}{
		{"empty file", nil, snapshot.ErrTruncated, "ends in the magic"},
		{"bad magic", with(func(b []byte) []byte { b[1] = 'X'; return b }), snapshot.ErrNotSnapshot, "starts with"},
		{"text file", []byte("key,value\na,1\n"), snapshot.ErrNotSnapshot, "bad magic"},
		{"future version", with(func(b []byte) []byte { b[9] = 2; return b }), snapshot.ErrVersion, "format version 2"},
		{"unknown flags", with(func(b []byte) []byte { b[11] = 1; return b }), snapshot.ErrCorrupt, "flags"},
		{"truncated in a record", good[:len(good)-60], snapshot.ErrTruncated, "ends in record"},
		{"truncated in the trailer", good[:len(good)-10], snapshot.ErrTruncated, "ends in the trailer"},
		{"no trailer", good[:len(good)-41], snapshot.ErrTruncated, "record 5 or the trailer"},
		{"value flipped", with(func(b []byte) []byte { b[bytes.Index(b, []byte("one"))] = 'O'; return b }), snapshot.ErrChecksum, "checksum mismatch"},
		{"revision changed", with(func(b []byte) []byte { b[19] = 13; return b }), snapshot.ErrChecksum, "sha256"},
		{"checksum flipped", with(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), snapshot.ErrChecksum, "sha256"},
		{"count wrong", with(func(b []byte) []byte { b[len(b)-33] = 9; return b }), snapshot.ErrCorrupt, "counts 9 records"},
		{"bad tag", with(func(b []byte) []byte { b[len(b)-41] = 7; return b }), snapshot.ErrCorrupt, "tag 0x07"},
		{"data after the trailer", append(slices.Clone(good), 0), snapshot.ErrCorrupt, "follows the trailer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := decode(tc.data)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %v, want %v saying %q", err, tc.want, tc.says)
			}
		})
	}
}

// Every byte of a file matters: a flip anywhere, or a cut anywhere, is
// refused.
func TestEveryByteIsChecked(t *testing.T) {
	good := encode(t, snapshot.Header{Revision: 12, Created: t0, Source: "test"}, sample())
	for i := range good {
		bad := slices.Clone(good)
		bad[i] ^= 0x40
		if _, _, _, err := snapshot.Verify(bytes.NewReader(bad)); err == nil {
			t.Errorf("a flip of byte %d of %d went unnoticed", i, len(good))
		}
		if _, _, _, err := snapshot.Verify(bytes.NewReader(good[:i])); !errors.Is(err, snapshot.ErrTruncated) {
			t.Errorf("cut at %d of %d: %v, want ErrTruncated", i, len(good), err)
		}
	}
}

// A damaged length does not make the reader allocate what the file does
// not hold.
func TestHugeLengthIsCheap(t *testing.T) {
	good := encode(t, snapshot.Header{Created: t0}, []snapshot.Record{{Key: "k", Value: []byte("v"), Version: 1}})
	bad := slices.Clone(good)
	off := len(snapshot.Magic) + 22 + 1 + 2 // the first record's value length
	copy(bad[off:], []byte{0x0f, 0xff, 0xff, 0xff})
	allocs := testing.AllocsPerRun(1, func() { _, _, _, _ = snapshot.Verify(bytes.NewReader(bad)) })
	_, _, _, err := snapshot.Verify(bytes.NewReader(bad))
	if !errors.Is(err, snapshot.ErrTruncated) || allocs > 100 {
		t.Errorf("error %v after %v allocations", err, allocs)
	}
}

func FuzzReader(f *testing.F) {
	f.Add(encode(f, snapshot.Header{Revision: 12, Created: t0, Source: "seed"}, sample()))
	f.Add(encode(f, snapshot.Header{}, nil))
	good := encode(f, snapshot.Header{Revision: 12}, sample()[:1])
	f.Add(good[:len(good)-5])
	f.Add([]byte(snapshot.Magic))
	f.Add([]byte("not a snapshot"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, recs, err := decode(data)
		if err != nil {
			for _, known := range []error{snapshot.ErrNotSnapshot, snapshot.ErrVersion, snapshot.ErrTruncated, snapshot.ErrCorrupt, snapshot.ErrChecksum} {
				if errors.Is(err, known) {
					return
				}
			}
			t.Fatalf("error outside the package's sentinels: %v", err)
		}
		// Whatever reads clean writes back to the same bytes.
		again := encode(t, h, recs)
		if !bytes.Equal(again, data) {
			t.Fatalf("a file that reads clean does not write back the same:\n%x\n%x", data, again)
		}
	})
}

func ExampleWriter() {
	var buf bytes.Buffer
	w, _ := snapshot.NewWriter(&buf, snapshot.Header{Revision: 2, Created: t0, Source: "example"})
	_ = w.Write(snapshot.Record{Key: "greeting", Value: []byte("hello"), Version: 1})
	_ = w.Write(snapshot.Record{Key: "node/n1", Value: []byte("up"), Version: 2, ExpiresAt: t0.Add(30 * time.Second)})
	_, _ = w.Close()

	r, _ := snapshot.NewReader(&buf)
	for {
		rec, err := r.Next()
		if err != nil {
			fmt.Println(err, r.Count())
			break
		}
		ttl, _ := rec.TTL(t0)
		fmt.Println(rec.Key, string(rec.Value), rec.Version, ttl)
	}
	// Output:
	// greeting hello 1 0s
	// node/n1 up 2 30s
	// EOF 2
}
