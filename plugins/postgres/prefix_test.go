package postgres

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestPrefixEnd(t *testing.T) {
	tests := []struct{ prefix, want string }{
		{"", ""},
		{"a", "b"},
		{"ab/", "ab0"},
		{"a\u00bf", "a\u00c0"}, // kv.PrefixEnd: "a\xc2\xc0", not UTF-8
		{"a\u07ff", "a\u0800"},
		{"a\ud7ff", "a\ue000"}, // past the surrogates
		{"a\uffff", "a\U00010000"},
		{"a\U0010ffff", "b"},
		{"a\U0010ffff\U0010ffff", "b"},
		{"\U0010ffff", ""},
	}
	for _, tt := range tests {
		if got := prefixEnd(tt.prefix); got != tt.want {
			t.Errorf("prefixEnd(%q) = %q, want %q", tt.prefix, got, tt.want)
		}
	}
	// Every key under a prefix sorts below its end, which is UTF-8 and not
	// under the prefix.
	for _, p := range []string{"x", "x\u00bf", "x\u07ff", "x\ud7ff", "x\uffff", "x\U0010ffff", "\u00e9t\u00e9"} {
		end := prefixEnd(p)
		if !utf8.ValidString(end) || strings.HasPrefix(end, p) {
			t.Errorf("prefixEnd(%q) = %q: not UTF-8, or under the prefix", p, end)
		}
		for _, suffix := range []string{"", "\x00", "a", "\u00bf", "\U0010ffff", "\U0010ffff\U0010ffff"} {
			if k := p + suffix; end != "" && k >= end {
				t.Errorf("key %q under %q sorts at or after the end %q", k, p, end)
			}
		}
	}
}
