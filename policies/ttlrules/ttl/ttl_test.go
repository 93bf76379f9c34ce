package ttl_test

import (
	"testing"
	"time"

	"github.com/kvhost/kvhost/policies/sdk"
	"github.com/kvhost/kvhost/policies/ttlrules/ttl"
)

const cfg = `{"rules": [
	{"prefix": "session:", "default": "1h", "max": "24h", "required": true},
	{"prefix": "node:", "max": "60s", "required": true},
	{"prefix": "cache/", "min": "1s", "max": "1h", "clamp": true},
	{"prefix": "counter:", "max": "1d", "allow_increment": true},
	{"prefix": "", "max": "30d"}
]}`

func TestRules(t *testing.T) {
	r, err := ttl.Parse([]byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		allow bool
		ttl   time.Duration // rewritten TTL, 0: none
		code  string
	}
	for _, tc := range []struct {
		name string
		req  sdk.Request
		want want
	}{
		{"session default", sdk.Request{Op: sdk.OpPut, Key: "session:1"}, want{true, time.Hour, ""}},
		{"session within max", sdk.Request{Op: sdk.OpPut, Key: "session:1", TTL: 2 * time.Hour}, want{true, 0, ""}},
		{"session too long", sdk.Request{Op: sdk.OpPut, Key: "session:1", TTL: 25 * time.Hour}, want{false, 0, "ttl_too_long"}},
		{"session refresh without expiry", sdk.Request{Op: sdk.OpRefreshTTL, Key: "session:1"}, want{false, 0, "ttl_required"}},
		{"node needs ttl", sdk.Request{Op: sdk.OpPut, Key: "node:a"}, want{false, 0, "ttl_required"}},
		{"node ok", sdk.Request{Op: sdk.OpPut, Key: "node:a", TTL: 30 * time.Second}, want{true, 0, ""}},
		{"node too long", sdk.Request{Op: sdk.OpPut, Key: "node:a", TTL: 61 * time.Second}, want{false, 0, "ttl_too_long"}},
		{"node increment", sdk.Request{Op: sdk.OpIncrement, Key: "node:a"}, want{false, 0, "ttl_required"}},
		{"counter increment allowed", sdk.Request{Op: sdk.OpIncrement, Key: "counter:a"}, want{true, 0, ""}},
		{"cache clamps up", sdk.Request{Op: sdk.OpPut, Key: "cache/x", TTL: time.Millisecond}, want{true, time.Second, ""}},
		{"cache clamps down", sdk.Request{Op: sdk.OpPut, Key: "cache/x", TTL: 2 * time.Hour}, want{true, time.Hour, ""}},
		{"cache clamps forever", sdk.Request{Op: sdk.OpPut, Key: "cache/x"}, want{true, time.Hour, ""}},
		{"catch-all max", sdk.Request{Op: sdk.OpPut, Key: "misc", TTL: 31 * 24 * time.Hour}, want{false, 0, "ttl_too_long"}},
		{"catch-all forever", sdk.Request{Op: sdk.OpPut, Key: "misc"}, want{false, 0, "ttl_required"}},
		{"reads ungoverned", sdk.Request{Op: sdk.OpGet, Key: "node:a"}, want{true, 0, ""}},
		{"batch put governed", sdk.Request{Op: sdk.OpPut, Key: "node:a", InBatch: true}, want{false, 0, "ttl_required"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := r.Evaluate(&tc.req)
			got, rewritten := d.TTL()
			if !rewritten {
				got = 0
			}
			if d.Allowed() != tc.want.allow || got != tc.want.ttl || d.Code() != tc.want.code {
				t.Fatalf("got %v, want %+v", d, tc.want)
			}
		})
	}
}

func TestBadConfig(t *testing.T) {
	for _, c := range []string{
		``,
		`{"rules": []}`,
		`{"rules": [{"prefix": "a", "min": "2h", "max": "1h"}]}`,
		`{"rules": [{"prefix": "a", "default": "2h", "max": "1h"}]}`,
		`{"rules": [{"prefix": "a", "max": "1h"}, {"prefix": "a", "max": "2h"}]}`,
		`{"rules": [{"prefix": "a", "max": 3600}]}`,
		`{"rules": [{"prefix": "a", "max": "soon"}]}`,
		`{"rules": [{"prefix": "a"}]}`,
		`{"rules": [{"prefix": "a", "max": "500us"}]}`,
	} {
		if _, err := ttl.Parse([]byte(c)); err == nil {
			t.Errorf("%q accepted", c)
		}
	}
}

func TestAllowDoesNotAllocate(t *testing.T) {
	r, _ := ttl.Parse([]byte(cfg))
	for _, req := range []sdk.Request{{Op: sdk.OpPut, Key: "session:1"}, {Op: sdk.OpPut, Key: "node:1", TTL: time.Second}} {
		if n := testing.AllocsPerRun(100, func() { r.Evaluate(&req) }); n != 0 {
			t.Fatalf("%v allocations per allowed request", n)
		}
	}
}
