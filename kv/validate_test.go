package kv_test

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/kvhost/kvhost/kv"
)

func TestPrefixEnd(t *testing.T) {
	cases := []struct{ prefix, want string }{
		{"", ""},
		{"a", "b"},
		{"a/", "a0"},
		{"a\xff", "b"},
		{"\xff\xff", ""},
		{"é", "\xc3\xaa"},
	}
	for _, tc := range cases {
		if got := kv.PrefixEnd(tc.prefix); got != tc.want {
			t.Errorf("PrefixEnd(%q) = %q, want %q", tc.prefix, got, tc.want)
		}
	}
}

func TestTTLMillisRoundsUp(t *testing.T) {
	cases := map[time.Duration]int64{0: 0, -time.Second: 0, time.Nanosecond: 1, time.Millisecond: 1, 1500 * time.Microsecond: 2, time.Hour: 3600000}
	for in, want := range cases {
		if got := kv.TTLMillis(in); got != want {
			t.Errorf("TTLMillis(%v) = %d, want %d", in, got, want)
		}
	}
}

// FuzzValidateKey: a key the validator accepts is one the contract allows,
// and the validator never panics.
func FuzzValidateKey(f *testing.F) {
	for _, s := range []string{"", "a", "a\x00", "\xff", strings.Repeat("x", 1025), "node:é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		err := kv.ValidateKey(key)
		ok := key != "" && len(key) <= kv.MaxKeyLen && utf8.ValidString(key) && !strings.ContainsRune(key, 0)
		if ok != (err == nil) {
			t.Fatalf("ValidateKey(%q) = %v, want ok=%v", key, err, ok)
		}
		if err != nil && !errors.Is(err, kv.ErrInvalidArgument) {
			t.Fatalf("ValidateKey error %v is not ErrInvalidArgument", err)
		}
	})
}

// FuzzParseCounter: parse accepts exactly the decimal int64 texts and
// never panics; AddCounter never wraps.
func FuzzParseCounter(f *testing.F) {
	f.Add([]byte("0"), int64(1))
	f.Add([]byte("9223372036854775807"), int64(1))
	f.Add([]byte("-5"), int64(-9223372036854775808))
	f.Add([]byte("x"), int64(0))
	f.Fuzz(func(t *testing.T, v []byte, delta int64) {
		n, err := kv.ParseCounter("k", v)
		if err != nil {
			if !errors.Is(err, kv.ErrInvalidArgument) {
				t.Fatal(err)
			}
			return
		}
		sum, err := kv.AddCounter("k", n, delta)
		if err == nil && (sum-delta != n) {
			t.Fatalf("%d + %d = %d wrapped", n, delta, sum)
		}
		big := float64(n) + float64(delta)
		if err == nil && (big > 9.3e18 || big < -9.3e18) {
			t.Fatalf("%d + %d accepted though it overflows", n, delta)
		}
	})
}
