package pluginapi

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/kvhost/kvhost/internal/benchkit"
	"github.com/kvhost/kvhost/kv"
	pb "github.com/kvhost/kvhost/pluginapi/internal/pluginpb"
	"google.golang.org/protobuf/proto"
)

// FuzzPackedEntries: whatever a plugin sends as a packed page, the host
// decodes it or refuses it with an error, never panics; and what it packs
// comes back exactly.
func FuzzPackedEntries(f *testing.F) {
	f.Add([]byte{}, "k", []byte("v"), int64(7), int64(0))
	f.Add(packEntries([]kv.Entry{{Key: "a", Value: []byte("1"), Version: 3}}), "", []byte{}, int64(1), int64(1700000000000))
	f.Add([]byte{0xff, 0xff, 0xff}, "\xff", []byte{0}, int64(1<<62), int64(1))
	f.Add([]byte{5, 'a'}, "x", []byte{}, int64(0), int64(0))
	f.Fuzz(func(t *testing.T, garbage []byte, key string, value []byte, version, expMs int64) {
		if es, err := unpackEntries(garbage); err != nil && !errors.Is(err, kv.ErrInternal) {
			t.Fatalf("garbage: %v, want an internal error", err)
		} else if err == nil {
			again, err := unpackEntries(packEntries(es))
			if err != nil || len(again) != len(es) {
				t.Fatalf("%x decoded to %d entries, which do not round-trip: %d, %v", garbage, len(es), len(again), err)
			}
		}
		version, expMs = max(version, 0), max(expMs, 0)
		in := []kv.Entry{
			{Key: key, Value: value, Version: version, ExpiresAt: kv.FromUnixMillis(expMs)},
			{Key: key + "/next", Version: 1},
		}
		out, err := unpackEntries(packEntries(in))
		if err != nil || len(out) != len(in) {
			t.Fatalf("round trip: %d entries, %v", len(out), err)
		}
		for i := range in {
			if out[i].Key != in[i].Key || !bytes.Equal(out[i].Value, in[i].Value) || out[i].Version != in[i].Version ||
				!out[i].ExpiresAt.Equal(in[i].ExpiresAt) {
				t.Fatalf("entry %d: %+v, want %+v", i, out[i], in[i])
			}
		}
		if len(out[0].Value) > 0 {
			_ = append(out[0].Value, 'x') // must not reach the next entry's bytes
			if out[1].Key != key+"/next" {
				t.Fatal("appending to a value overwrote the next entry")
			}
		}
	})
}

// BenchmarkListPage: what a page of 10K entries of 100-byte values costs
// to encode in the plugin and decode in the host, as a message per entry
// and packed, alternating in one loop (the gRPC transport, the same for
// both, left out).
func BenchmarkListPage(b *testing.B) {
	es := make([]kv.Entry, 10000)
	for i := range es {
		es[i] = kv.Entry{Key: fmt.Sprintf("p%02d/k%04d", i/100, i), Value: bytes.Repeat([]byte{'v'}, 100), Version: int64(i + 1)}
	}
	var perEntry, packed benchkit.Latencies
	for b.Loop() {
		start := time.Now()
		msg := &pb.ListResponse{Entries: make([]*pb.Entry, len(es))}
		for i, e := range es {
			msg.Entries[i] = entryToPB(e)
		}
		wire, err := proto.Marshal(msg)
		if err != nil {
			b.Fatal(err)
		}
		var got pb.ListResponse
		if err := proto.Unmarshal(wire, &got); err != nil {
			b.Fatal(err)
		}
		out := make([]kv.Entry, len(got.Entries))
		for i, e := range got.Entries {
			out[i] = entryFromPB(e)
		}
		perEntry.Time(start)

		start = time.Now()
		wire, err = proto.Marshal(&pb.ListResponse{Packed: packEntries(es)})
		if err != nil {
			b.Fatal(err)
		}
		if err := proto.Unmarshal(wire, &got); err != nil {
			b.Fatal(err)
		}
		if out, err = unpackEntries(got.Packed); err != nil || len(out) != len(es) {
			b.Fatal(len(out), err)
		}
		packed.Time(start)
	}
	p1, _ := perEntry.Percentiles()
	p2, _ := packed.Percentiles()
	b.ReportMetric(p1/1e3, "per-entry-ms")
	b.ReportMetric(p2/1e3, "packed-ms")
	b.ReportMetric(p2/p1, "packed/per-entry")
}
