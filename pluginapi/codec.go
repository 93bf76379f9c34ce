package pluginapi

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	pb "github.com/kvhost/kvhost/pluginapi/internal/pluginpb"
)

// wireCodec is the plugin wire's gRPC codec on both ends: gRPC's own
// protobuf codec for every message, except that a packed list page
// (ListResponse.packed, about 1.1 MB for 10K entries of 100 bytes) is
// copied once instead of three times. The plugin sends the buffer it
// packed into, taken from gRPC's buffer pool and given back to it once
// written; the host gathers the received frames into one buffer and keeps
// it as the page, and the entries it unpacks are views of it. gRPC's
// codec would also copy the page into the message's encoding and out of
// it into a fresh field: garbage that, on a 2-core machine, a collection
// then takes CPU from the list for (docs/PERFORMANCE.md, "Zero-copy list
// pages").
//
// The messages stay protobuf: a plugin or host that does not use this
// codec reads and writes the same bytes.
type wireCodec struct{ proto encoding.CodecV2 }

func newWireCodec() wireCodec { return wireCodec{proto: encoding.GetCodecV2("proto")} }

// Name is the content subtype on the wire: this codec is protobuf.
func (wireCodec) Name() string { return "proto" }

// Marshal encodes v. A ListResponse gives its packed buffer to the wire:
// it goes back to mem.DefaultBufferPool when gRPC has written it, and
// m.Packed is nil afterwards. Only the plugin server marshals list
// responses, and it packs every page into a pooled buffer
// (packEntriesPooled, PackedPage): a page anyone still holds must never be
// put in a ListResponse that this codec writes.
func (c wireCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(*pb.ListResponse)
	if !ok || len(m.Packed) == 0 {
		return c.proto.Marshal(v)
	}
	packed := m.Packed
	m.Packed = nil
	head, err := proto.Marshal(m)
	if err != nil {
		mem.DefaultBufferPool().Put(&packed)
		return nil, err
	}
	head = protowire.AppendTag(head, packedField, protowire.BytesType)
	head = protowire.AppendVarint(head, uint64(len(packed)))
	return mem.BufferSlice{mem.SliceBuffer(head), mem.NewBuffer(&packed, mem.DefaultBufferPool())}, nil
}

// Unmarshal decodes data into v. A ListResponse's packed field is a
// slice of the received bytes instead of a copy of them.
func (c wireCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(*pb.ListResponse)
	if !ok || mem.IsBelowBufferPoolingThreshold(data.Len()) {
		return c.proto.Unmarshal(data, v)
	}
	return unmarshalListResponse(data.Materialize(), m)
}

// packedField is ListResponse.packed's field number.
const packedField protowire.Number = 4

// unmarshalListResponse is proto.Unmarshal(b, m) except that m.Packed is
// a slice of b (capped: appending to it cannot write into b). b must not
// change afterwards. Every field but packed, and any b it cannot parse,
// goes to proto.Unmarshal, whose answer and errors are the rule.
func unmarshalListResponse(b []byte, m *pb.ListResponse) error {
	var (
		packed []byte
		found  bool
		rest   []byte
	)
	for in := b; len(in) > 0; {
		num, typ, n := protowire.ConsumeTag(in)
		if n < 0 {
			return proto.Unmarshal(b, m)
		}
		size := protowire.ConsumeFieldValue(num, typ, in[n:])
		if size < 0 {
			return proto.Unmarshal(b, m)
		}
		field := in[:n+size]
		in = in[n+size:]
		if num != packedField || typ != protowire.BytesType {
			rest = append(rest, field...)
			continue
		}
		v, _ := protowire.ConsumeBytes(field[n:])
		packed, found = v[:len(v):len(v)], true // the last one wins, as in proto.Unmarshal
	}
	if !found {
		return proto.Unmarshal(b, m)
	}
	if err := proto.Unmarshal(rest, m); err != nil {
		return err
	}
	if len(packed) > 0 {
		m.Packed = packed
	}
	return nil
}

// codecServerOption and codecCallOption put wireCodec on a server and on
// a client connection's calls.
func codecServerOption() grpc.ServerOption { return grpc.ForceServerCodecV2(newWireCodec()) }

func codecCallOption() grpc.CallOption { return grpc.ForceCodecV2(newWireCodec()) }
