package sdk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unsafe"
)

// Op is the storage operation a request is about. The numbering is part
// of the ABI.
type Op uint8

// Operations. For OpList, OpCount, OpWatch and OpDeletePrefix the
// request's Key is the prefix the operation covers.
const (
	OpGet          Op = 1
	OpPut          Op = 2
	OpDelete       Op = 3
	OpList         Op = 4
	OpCount        Op = 5
	OpDeletePrefix Op = 6
	OpIncrement    Op = 7
	OpRefreshTTL   Op = 8
	OpWatch        Op = 9
	OpStats        Op = 10
	OpAdmin        Op = 11
)

var opNames = [...]string{
	OpGet: "get", OpPut: "put", OpDelete: "delete", OpList: "list", OpCount: "count",
	OpDeletePrefix: "delete_prefix", OpIncrement: "increment", OpRefreshTTL: "refresh_ttl",
	OpWatch: "watch", OpStats: "stats", OpAdmin: "admin",
}

// String returns the operation's ABI name, such as "delete_prefix".
func (o Op) String() string {
	if int(o) < len(opNames) && opNames[o] != "" {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// IsPrefixOp reports whether the operation's Key is a prefix covering many
// keys rather than one key.
func (o Op) IsPrefixOp() bool {
	return o == OpList || o == OpCount || o == OpWatch || o == OpDeletePrefix
}

// Request is one operation the host asks the policy about.
//
// In the request a handler receives, Key, Principal, Tenant and Value
// share memory with the SDK's request buffer, which the next request
// overwrites: they are valid until the handler returns. To keep one (in
// a map, a global, a goroutine), copy it with strings.Clone or
// bytes.Clone. This saves an allocation per request, which in a Go
// policy costs more than the rest of a typical evaluation.
type Request struct {
	Op Op
	// Key is the key, or the prefix for a prefix operation.
	Key string
	// Value holds the value bytes only when the policy called NeedValue
	// and the operation carries a value; ValueLen is always set.
	Value    []byte
	ValueLen int
	// TTL is the requested time to live (put, refresh_ttl), already
	// rewritten by any earlier policy in the chain. Zero means no expiry.
	// The ABI carries milliseconds.
	TTL time.Duration
	// Principal is the authenticated caller, "" when anonymous.
	Principal string
	Tenant    string
	// Now is the host's clock when the operation arrived, to the
	// millisecond. Use it instead of time.Now.
	Now time.Time
	// InBatch is set for operations that are part of a batch; each op of
	// a batch is evaluated on its own.
	InBatch bool
}

// Request record layout, version 1 (all integers little-endian).
const (
	RecordVersion    = 1
	RecordHeaderSize = 48

	// FlagValueIncluded says the value bytes follow the tenant.
	FlagValueIncluded = 1 << 0
	// FlagInBatch says the operation is one op of a batch.
	FlagInBatch = 1 << 1
)

// ErrBadRecord is returned for a request record that does not decode.
var ErrBadRecord = errors.New("sdk: malformed request record")

// DecodeRequest decodes a request record. Strings are copied out of b.
func DecodeRequest(b []byte) (Request, error) {
	var req Request
	err := decodeRequest(&req, b, true)
	return req, err
}

// decodeRequest decodes a record into req; without copy the strings
// alias b.
func decodeRequest(req *Request, b []byte, copy bool) error {
	if len(b) < RecordHeaderSize {
		return fmt.Errorf("%w: %d bytes, header needs %d", ErrBadRecord, len(b), RecordHeaderSize)
	}
	if b[0] != RecordVersion {
		return fmt.Errorf("%w: version %d, want %d", ErrBadRecord, b[0], RecordVersion)
	}
	hdr := int(binary.LittleEndian.Uint16(b[2:]))
	if hdr < RecordHeaderSize || hdr > len(b) {
		return fmt.Errorf("%w: header length %d", ErrBadRecord, hdr)
	}
	flags := binary.LittleEndian.Uint32(b[4:])
	ttl := int64(binary.LittleEndian.Uint64(b[8:]))
	now := int64(binary.LittleEndian.Uint64(b[16:]))
	valueLen := uint64(binary.LittleEndian.Uint32(b[24:]))
	keyLen := uint64(binary.LittleEndian.Uint32(b[28:]))
	prinLen := uint64(binary.LittleEndian.Uint32(b[32:]))
	tenLen := uint64(binary.LittleEndian.Uint32(b[36:]))
	if ttl < 0 || ttl > int64(1<<63-1)/int64(time.Millisecond) {
		return fmt.Errorf("%w: ttl %d ms", ErrBadRecord, ttl)
	}
	want := uint64(hdr) + keyLen + prinLen + tenLen
	if flags&FlagValueIncluded != 0 {
		want += valueLen
	}
	if want != uint64(len(b)) {
		return fmt.Errorf("%w: %d bytes, fields need %d", ErrBadRecord, len(b), want)
	}
	req.Op = Op(b[1])
	req.ValueLen = int(valueLen)
	req.TTL = time.Duration(ttl) * time.Millisecond
	req.InBatch = flags&FlagInBatch != 0
	req.Now = time.Time{}
	if now != 0 {
		req.Now = time.UnixMilli(now)
	}
	req.Value = nil
	strs := b[hdr : uint64(hdr)+keyLen+prinLen+tenLen]
	var rest string
	if copy {
		rest = string(strs) // one allocation for the three strings
	} else if len(strs) > 0 {
		rest = unsafe.String(unsafe.SliceData(strs), len(strs))
	}
	req.Key = rest[:keyLen]
	req.Principal = rest[keyLen : keyLen+prinLen]
	req.Tenant = rest[keyLen+prinLen:]
	if flags&FlagValueIncluded != 0 {
		off := uint64(hdr) + keyLen + prinLen + tenLen
		req.Value = b[off : off+valueLen : off+valueLen]
		if copy {
			req.Value = append([]byte(nil), req.Value...)
		}
	}
	return nil
}
