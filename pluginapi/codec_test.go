package pluginapi

import (
	"bytes"
	"fmt"
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/kvhost/kvhost/kv"
	pb "github.com/kvhost/kvhost/pluginapi/internal/pluginpb"
)

// A page built an entry at a time is the page packEntries makes of the
// same entries, whatever its length: fewer than 128 entries (a one-byte
// count), more, past the first buffer (it grows), and past 16383 (a
// three-byte count, more than a page may hold today).
func TestPackedPageIsPackEntries(t *testing.T) {
	for _, n := range []int{0, 1, 127, 128, 129, 3000, kv.MaxListLimit, 16383, 16384, 20000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			es := make([]kv.Entry, n)
			page := newPackedPage()
			for i := range es {
				es[i] = kv.Entry{Key: fmt.Sprintf("k/%05d", i), Value: bytes.Repeat([]byte{byte(i)}, i%300), Version: int64(i + 1),
					ExpiresAt: kv.FromUnixMillis(int64(i % 2 * 1_700_000_000_000))}
				page.Append([]byte(es[i].Key), es[i].Value, es[i].Version, kv.UnixMillis(es[i].ExpiresAt))
			}
			if page.Len() != n {
				t.Fatalf("Len = %d, want %d", page.Len(), n)
			}
			got, want := page.bytes(), packEntries(es)
			if !bytes.Equal(got, want) {
				t.Fatalf("page of %d entries: %d bytes, packEntries %d bytes, and they differ", n, len(got), len(want))
			}
			mem.DefaultBufferPool().Put(&got)
		})
	}
}

// What the codec writes for a list page is what protobuf writes, and what
// it reads back is the message, with the page's bytes its own.
func TestWireCodecListPage(t *testing.T) {
	c := newWireCodec()
	es := []kv.Entry{{Key: "a", Value: []byte("1"), Version: 3}, {Key: "b", Value: bytes.Repeat([]byte("v"), 4096), Version: 4}}
	packed := packEntries(es)
	want, err := proto.Marshal(&pb.ListResponse{More: true, Revision: 42, Packed: packed})
	if err != nil {
		t.Fatal(err)
	}
	m := &pb.ListResponse{More: true, Revision: 42, Packed: packEntriesPooled(es)}
	data, err := c.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if got := data.Materialize(); !bytes.Equal(got, want) {
		t.Fatalf("codec wrote %d bytes, protobuf %d, and they differ", len(got), len(want))
	}
	if m.Packed != nil {
		t.Fatal("the message still holds the page the wire now owns")
	}
	var back pb.ListResponse
	if err := c.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	data.Free()
	if !back.More || back.Revision != 42 || !bytes.Equal(back.Packed, packed) {
		t.Fatalf("read back more=%v revision=%d and %d packed bytes", back.More, back.Revision, len(back.Packed))
	}
	out, err := unpackEntries(back.Packed)
	if err != nil || len(out) != 2 || out[1].Key != "b" || len(out[1].Value) != 4096 {
		t.Fatalf("unpacked %+v, %v", out, err)
	}
}

// FuzzUnmarshalListResponse: the codec's reading of a list response is
// protobuf's, for any bytes: the same message or an error where protobuf
// has one.
func FuzzUnmarshalListResponse(f *testing.F) {
	for _, m := range []*pb.ListResponse{
		{},
		{More: true, Revision: 7, Packed: packEntries([]kv.Entry{{Key: "k", Value: []byte("v"), Version: 1}})},
		{Entries: []*pb.Entry{{Key: "k", Value: []byte("v"), Version: 2}}, Revision: 3},
	} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x22, 0x03, 'a', 'b', 'c', 0x22, 0x01, 'z'}) // packed twice: the last wins
	f.Add([]byte{0x20, 0x01})                                 // field 4 as a varint
	f.Add([]byte{0x22, 0x05, 'a'})                            // cut short
	f.Fuzz(func(t *testing.T, b []byte) {
		var want, got pb.ListResponse
		werr := proto.Unmarshal(b, &want)
		gerr := unmarshalListResponse(bytes.Clone(b), &got)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("%x: protobuf says %v, the codec %v", b, werr, gerr)
		}
		if werr == nil && !proto.Equal(&want, &got) {
			t.Fatalf("%x: protobuf read %v, the codec %v", b, &want, &got)
		}
	})
}
