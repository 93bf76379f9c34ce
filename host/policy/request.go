package policy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kvhost/kvhost/kv/op"
)

// Op is the storage operation a request is about: the operation table of
// package kv/op, whose numbers are the ABI's operation codes. The names
// below are that table's, under the names policy code has always used.
type Op = op.Op

// Operations. For OpList, OpCount, OpWatch and OpDeletePrefix the
// request's Key is the prefix; each op of a batch is evaluated on its own
// as OpPut or OpDelete with Request.InBatch set, and each key of a
// multi-get as OpGet.
const (
	OpGet          = op.Get
	OpPut          = op.Put
	OpDelete       = op.Delete
	OpList         = op.List
	OpCount        = op.Count
	OpDeletePrefix = op.DeletePrefix
	OpIncrement    = op.Increment
	OpRefreshTTL   = op.RefreshTTL
	OpWatch        = op.Watch
	OpStats        = op.Stats
	OpAdmin        = op.Admin
)

// ParseOp parses an ABI operation name such as "delete_prefix".
func ParseOp(s string) (Op, error) {
	o, err := op.Parse(s)
	if err != nil {
		return 0, fmt.Errorf("policy: %w", err)
	}
	if !o.Policy() {
		return 0, fmt.Errorf("policy: operation %q is not one policies see", s)
	}
	return o, nil
}

// Request is one operation to vet.
type Request struct {
	Op Op
	// Key is the key, or the prefix of a prefix operation.
	Key string
	// Value is sent only to policies that declare they need it.
	Value []byte
	// ValueLen is the value's length; when 0 it is taken from Value.
	ValueLen int
	// TTL is the requested time to live; zero means no expiry.
	TTL       time.Duration
	Principal string
	Tenant    string
	// Now is the host clock for the operation; zero means time.Now().
	Now     time.Time
	InBatch bool
}

// Decision is the outcome of the chain.
type Decision struct {
	Allow bool
	// Policy names the policy that denied, or the last one that rewrote
	// the TTL.
	Policy string
	// Reason says why the operation was denied; Code is the policy's
	// short machine-readable code for it, if any.
	Reason string
	Code   string
	// TTL is the TTL to apply: the request's, or the rewritten one when
	// TTLRewritten. Hosts apply it to put and refresh_ttl only.
	TTL          time.Duration
	TTLRewritten bool
}

// Request record, ABI v1. See policies/ABI.md.
const (
	recordVersion    = 1
	recordHeaderSize = 48
	flagValue        = 1 << 0
	flagInBatch      = 1 << 1
)

// recordSize returns the encoded size of req.
func recordSize(req *Request, withValue bool) int {
	n := recordHeaderSize + len(req.Key) + len(req.Principal) + len(req.Tenant)
	if withValue {
		n += len(req.Value)
	}
	return n
}

// encodeRequest writes req's record into dst, which is recordSize long.
// withValue is honoured only when the value bytes are all there.
func encodeRequest(dst []byte, req *Request, withValue bool) {
	var flags uint32
	if withValue {
		flags |= flagValue
	}
	if req.InBatch {
		flags |= flagInBatch
	}
	dst[0] = recordVersion
	dst[1] = byte(req.Op)
	binary.LittleEndian.PutUint16(dst[2:], recordHeaderSize)
	binary.LittleEndian.PutUint32(dst[4:], flags)
	binary.LittleEndian.PutUint64(dst[8:], uint64(durationMillis(req.TTL)))
	var now int64
	if !req.Now.IsZero() {
		now = req.Now.UnixMilli()
	}
	binary.LittleEndian.PutUint64(dst[16:], uint64(now))
	binary.LittleEndian.PutUint32(dst[24:], uint32(req.ValueLen))
	binary.LittleEndian.PutUint32(dst[28:], uint32(len(req.Key)))
	binary.LittleEndian.PutUint32(dst[32:], uint32(len(req.Principal)))
	binary.LittleEndian.PutUint32(dst[36:], uint32(len(req.Tenant)))
	binary.LittleEndian.PutUint64(dst[40:], 0)
	n := recordHeaderSize
	n += copy(dst[n:], req.Key)
	n += copy(dst[n:], req.Principal)
	n += copy(dst[n:], req.Tenant)
	if withValue {
		copy(dst[n:], req.Value)
	}
}

// durationMillis converts a TTL to whole milliseconds, rounding a positive
// sub-millisecond TTL up so that it never turns into "no expiry".
func durationMillis(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

// Answer record, ABI v1.
const (
	answerVersion    = 1
	answerHeaderSize = 16
	verdictAllow     = 0
	verdictDeny      = 1
	verdictAllowTTL  = 2
	maxCodeLen       = 64
	maxReasonLen     = 1024
)

type answer struct {
	verdict uint8
	ttl     time.Duration
	code    string
	reason  string
}

var errBadAnswer = errors.New("malformed answer record")

// decodeAnswer decodes an answer record. The strings are copied: b is a
// view of the instance's memory.
func decodeAnswer(b []byte) (answer, error) {
	if len(b) < answerHeaderSize {
		return answer{}, fmt.Errorf("%w: %d bytes, header needs %d", errBadAnswer, len(b), answerHeaderSize)
	}
	if b[0] != answerVersion {
		return answer{}, fmt.Errorf("%w: version %d, want %d", errBadAnswer, b[0], answerVersion)
	}
	a := answer{verdict: b[1]}
	if a.verdict > verdictAllowTTL {
		return answer{}, fmt.Errorf("%w: unknown verdict %d", errBadAnswer, a.verdict)
	}
	codeLen := int(b[2])
	reasonLen := uint64(binary.LittleEndian.Uint32(b[4:]))
	ttl := int64(binary.LittleEndian.Uint64(b[8:]))
	if ttl < 0 || ttl > int64(1<<63-1)/int64(time.Millisecond) {
		return answer{}, fmt.Errorf("%w: ttl %d ms", errBadAnswer, ttl)
	}
	if uint64(answerHeaderSize+codeLen)+reasonLen != uint64(len(b)) {
		return answer{}, fmt.Errorf("%w: %d bytes, fields need %d", errBadAnswer, len(b), uint64(answerHeaderSize+codeLen)+reasonLen)
	}
	a.ttl = time.Duration(ttl) * time.Millisecond
	a.code = cleanCode(b[answerHeaderSize : answerHeaderSize+codeLen])
	reason := b[answerHeaderSize+codeLen:]
	if len(reason) > maxReasonLen {
		reason = reason[:maxReasonLen]
	}
	a.reason = strings.ToValidUTF8(string(reason), "\uFFFD")
	return a, nil
}

// cleanCode keeps codes usable as metric labels: short, [a-z0-9_.-].
func cleanCode(b []byte) string {
	if len(b) > maxCodeLen {
		b = b[:maxCodeLen]
	}
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c >= 'A' && c <= 'Z') {
			return "invalid_code"
		}
	}
	return string(b)
}

// sanitize makes guest text safe to log and return: at most max bytes of
// valid UTF-8.
func sanitize(s string, max int) string {
	if len(s) > max {
		s = s[:max]
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
