package policy

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/kvhost/kvhost/policies/sdk"
)

// FuzzRequestRecord: what the host encodes, the SDK decodes to the same
// request, whatever the fields.
func FuzzRequestRecord(f *testing.F) {
	f.Add(uint8(OpPut), "app/x", []byte("value"), int64(1500), "alice", "acme", int64(1_700_000_000_123), true, true)
	f.Add(uint8(OpList), "", []byte(nil), int64(0), "", "", int64(0), false, false)
	f.Add(uint8(OpGet), "k\x00\xff", []byte{}, int64(-5), "p", "\xfe", int64(-1), true, false)
	f.Fuzz(func(t *testing.T, op uint8, key string, value []byte, ttlNanos int64, principal, tenant string, nowMS int64, withValue, inBatch bool) {
		req := Request{Op: Op(op), Key: key, Value: value, ValueLen: len(value), TTL: time.Duration(ttlNanos),
			Principal: principal, Tenant: tenant, InBatch: inBatch}
		if nowMS != 0 {
			req.Now = time.UnixMilli(nowMS)
		}
		buf := make([]byte, recordSize(&req, withValue))
		encodeRequest(buf, &req, withValue)
		got, err := sdk.DecodeRequest(buf)
		if err != nil {
			t.Fatalf("SDK cannot decode the host's record: %v", err)
		}
		wantTTL := time.Duration(durationMillis(req.TTL)) * time.Millisecond
		if got.Op != sdk.Op(op) || got.Key != key || got.Principal != principal || got.Tenant != tenant ||
			got.ValueLen != len(value) || got.TTL != wantTTL || got.InBatch != inBatch {
			t.Fatalf("round trip: sent %+v, got %+v", req, got)
		}
		if req.TTL > 0 && got.TTL < req.TTL {
			t.Fatalf("TTL %v shrank to %v", req.TTL, got.TTL)
		}
		if (nowMS == 0) != got.Now.IsZero() || (nowMS != 0 && got.Now.UnixMilli() != nowMS) {
			t.Fatalf("now %d came back as %v", nowMS, got.Now)
		}
		if withValue && !bytes.Equal(got.Value, value) || !withValue && got.Value != nil {
			t.Fatalf("value %q (included %v) came back as %q", value, withValue, got.Value)
		}
	})
}

// FuzzDecodeRequest: no record makes the SDK panic.
func FuzzDecodeRequest(f *testing.F) {
	req := Request{Op: OpPut, Key: "k", Principal: "p", Tenant: "t", Value: []byte("v"), ValueLen: 1}
	buf := make([]byte, recordSize(&req, true))
	encodeRequest(buf, &req, true)
	f.Add(buf)
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = sdk.DecodeRequest(b)
	})
}

// FuzzAnswerRecord: what the SDK answers, the host reads back; and no
// answer bytes make the host panic.
func FuzzAnswerRecord(f *testing.F) {
	f.Add(uint8(1), "key_too_long", "key is too long", int64(0))
	f.Add(uint8(2), "", "", int64(90_000_000_000))
	f.Add(uint8(1), "bad code!", strings.Repeat("é", 700), int64(0))
	f.Fuzz(func(t *testing.T, verdict uint8, code, reason string, ttlNanos int64) {
		var d sdk.Decision
		switch verdict % 3 {
		case 0:
			d = sdk.Allow()
		case 1:
			d = sdk.Deny(reason).WithCode(code)
		case 2:
			d = sdk.AllowWithTTL(time.Duration(ttlNanos))
		}
		b := sdk.AppendDecision(nil, d)
		a, err := decodeAnswer(b)
		if err != nil {
			t.Fatalf("host cannot decode the SDK's answer %v: %v", d, err)
		}
		if a.verdict != verdict%3 {
			t.Fatalf("verdict %d came back as %d", verdict%3, a.verdict)
		}
		if a.verdict == verdictDeny {
			wantReason := reason
			if len(wantReason) > maxReasonLen {
				wantReason = wantReason[:maxReasonLen]
			}
			if a.reason != strings.ToValidUTF8(wantReason, "\uFFFD") {
				t.Fatalf("reason %q came back as %q", reason, a.reason)
			}
			if len(a.code) > maxCodeLen {
				t.Fatalf("code %q too long", a.code)
			}
		}
		if ttl, ok := d.TTL(); ok && a.ttl != time.Duration(durationMillis(ttl))*time.Millisecond {
			t.Fatalf("ttl %v came back as %v", ttl, a.ttl)
		}
		_, _ = decodeAnswer(b[:len(b)/2])
		_, _ = decodeAnswer([]byte(reason))
	})
}
