package sdk

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"
)

// record builds a request record by hand, independently of the host.
func record(op Op, key, principal, tenant string, value []byte, ttlMS, nowMS int64, flags uint32) []byte {
	b := make([]byte, RecordHeaderSize)
	b[0], b[1] = RecordVersion, byte(op)
	binary.LittleEndian.PutUint16(b[2:], RecordHeaderSize)
	binary.LittleEndian.PutUint32(b[4:], flags)
	binary.LittleEndian.PutUint64(b[8:], uint64(ttlMS))
	binary.LittleEndian.PutUint64(b[16:], uint64(nowMS))
	binary.LittleEndian.PutUint32(b[24:], uint32(len(value)))
	binary.LittleEndian.PutUint32(b[28:], uint32(len(key)))
	binary.LittleEndian.PutUint32(b[32:], uint32(len(principal)))
	binary.LittleEndian.PutUint32(b[36:], uint32(len(tenant)))
	b = append(append(append(b, key...), principal...), tenant...)
	if flags&FlagValueIncluded != 0 {
		b = append(b, value...)
	}
	return b
}

func TestDecodeRequest(t *testing.T) {
	b := record(OpPut, "k/1", "alice", "acme", []byte("val"), 1500, 1_700_000_000_000, FlagValueIncluded|FlagInBatch)
	req, err := DecodeRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	if req.Op != OpPut || req.Key != "k/1" || req.Principal != "alice" || req.Tenant != "acme" ||
		string(req.Value) != "val" || req.ValueLen != 3 || req.TTL != 1500*time.Millisecond ||
		req.Now.UnixMilli() != 1_700_000_000_000 || !req.InBatch {
		t.Fatalf("decoded %+v", req)
	}
	// The strings are copies: reusing the buffer does not change them.
	for i := range b {
		b[i] = 'x'
	}
	if req.Key != "k/1" || string(req.Value) != "val" {
		t.Fatal("decoded fields alias the record")
	}
	// Without the flag only the length travels.
	req, err = DecodeRequest(record(OpPut, "k", "", "", []byte("12345"), 0, 0, 0))
	if err != nil || req.Value != nil || req.ValueLen != 5 || !req.Now.IsZero() {
		t.Fatalf("decoded %+v, %v", req, err)
	}
}

func TestDecodeRequestRejects(t *testing.T) {
	good := record(OpGet, "key", "p", "t", nil, 0, 0, 0)
	for name, b := range map[string][]byte{
		"short":        good[:10],
		"version":      append([]byte{2}, good[1:]...),
		"truncated":    good[:len(good)-1],
		"trailing":     append(append([]byte(nil), good...), 0),
		"negative ttl": record(OpGet, "k", "", "", nil, -1, 0, 0),
	} {
		if _, err := DecodeRequest(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestDecision(t *testing.T) {
	b := AppendDecision(nil, Deny(strings.Repeat("r", MaxReasonLen+10)).WithCode("c"))
	if b[0] != AnswerVersion || b[1] != VerdictDeny || b[2] != 1 || binary.LittleEndian.Uint32(b[4:]) != MaxReasonLen {
		t.Fatalf("header % x", b[:16])
	}
	b = AppendDecision(nil, AllowWithTTL(1500*time.Microsecond))
	if binary.LittleEndian.Uint64(b[8:]) != 2 {
		t.Fatalf("1.5ms became %d ms; a sub-millisecond part must round up", binary.LittleEndian.Uint64(b[8:]))
	}
	if Allow().String() != "allow" || !AllowWithTTL(time.Second).Allowed() || Deny("x").Allowed() {
		t.Fatal("verdicts")
	}
}

func TestHooks(t *testing.T) {
	handler, configure = nil, nil
	if err := initPolicy(nil); err == nil || !strings.Contains(err.Error(), "sdk.Handle") {
		t.Fatalf("init without handler: %v", err)
	}
	var got []byte
	Configure(func(c []byte) error { got = c; return nil })
	Handle(func(r Request) Decision {
		if r.Key == "no" {
			return Deny("no").WithCode("nope")
		}
		return Allow()
	})
	cfg := []byte(`{"a":1}`)
	if err := initPolicy(cfg); err != nil || string(got) != `{"a":1}` {
		t.Fatalf("init: %v, config %q", err, got)
	}
	cfg[0] = 'x'
	if got[0] != '{' {
		t.Fatal("the configuration aliases the host's buffer")
	}
	if ans := evaluateRecord(nil, record(OpGet, "yes", "", "", nil, 0, 0, 0)); ans != nil {
		t.Fatalf("allow answered %q", ans)
	}
	ans := evaluateRecord(nil, record(OpGet, "no", "", "", nil, 0, 0, 0))
	if ans == nil || ans[1] != VerdictDeny || string(ans[16:]) != "nopeno" {
		t.Fatalf("deny answered %q", ans)
	}
	ans = evaluateRecord(nil, []byte{1, 2, 3})
	if ans == nil || ans[1] != VerdictDeny || !strings.Contains(string(ans), "sdk_bad_request") {
		t.Fatalf("garbage answered %q", ans)
	}
}

func TestEvaluateDoesNotAllocate(t *testing.T) {
	Handle(func(r Request) Decision {
		if r.TTL > 0 {
			return AllowWithTTL(r.TTL * 2)
		}
		return Allow()
	})
	allow := record(OpPut, "key", "alice", "acme", []byte("v"), 0, 1, FlagValueIncluded)
	rewrite := record(OpPut, "key", "alice", "acme", nil, 1000, 1, 0)
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() {
		evaluateRecord(buf[:0], allow)
		evaluateRecord(buf[:0], rewrite)
	}); n != 0 {
		t.Fatalf("%v allocations per request", n)
	}
	if ans := evaluateRecord(nil, rewrite); ans == nil || ans[1] != VerdictAllowTTL || binary.LittleEndian.Uint64(ans[8:]) != 2000 {
		t.Fatalf("rewrite answered % x", ans)
	}
}
