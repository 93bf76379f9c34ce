package validate_test

import (
	"strings"
	"testing"

	"github.com/kvhost/kvhost/policies/keyvalidation/validate"
	"github.com/kvhost/kvhost/policies/sdk"
)

const cfg = `{
	"max_key_length": 32,
	"allowed_prefixes": ["app/", "session:", "node:"],
	"reserved_prefixes": ["app/_system/"],
	"exempt_principals": ["root"],
	"character_classes": ["lower", "digit"],
	"extra_characters": "/:_-.",
	"max_value_length": 100
}`

func TestValidate(t *testing.T) {
	v, err := validate.Parse([]byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		req  sdk.Request
		code string // "" allows
	}{
		{"plain key", sdk.Request{Op: sdk.OpPut, Key: "app/users/42"}, ""},
		{"empty key", sdk.Request{Op: sdk.OpGet, Key: ""}, "key_empty"},
		{"too long", sdk.Request{Op: sdk.OpGet, Key: "app/" + strings.Repeat("x", 29)}, "key_too_long"},
		{"upper case", sdk.Request{Op: sdk.OpGet, Key: "app/Users"}, "key_bad_character"},
		{"space", sdk.Request{Op: sdk.OpGet, Key: "app/a b"}, "key_bad_character"},
		{"invalid utf-8", sdk.Request{Op: sdk.OpGet, Key: "app/\xff"}, "key_bad_character"},
		{"outside allowed", sdk.Request{Op: sdk.OpPut, Key: "other/x"}, "prefix_not_allowed"},
		{"reserved", sdk.Request{Op: sdk.OpPut, Key: "app/_system/x"}, "reserved_prefix"},
		{"reserved read", sdk.Request{Op: sdk.OpGet, Key: "app/_system/x"}, "reserved_prefix"},
		{"reserved exempt", sdk.Request{Op: sdk.OpPut, Key: "app/_system/x", Principal: "root"}, ""},
		{"list broad prefix", sdk.Request{Op: sdk.OpList, Key: "ap"}, ""},
		{"list everything", sdk.Request{Op: sdk.OpList, Key: ""}, ""},
		{"list inside reserved", sdk.Request{Op: sdk.OpList, Key: "app/_system/"}, "reserved_prefix"},
		{"delete_prefix covering reserved", sdk.Request{Op: sdk.OpDeletePrefix, Key: "app/"}, "reserved_prefix"},
		{"delete_prefix beside reserved", sdk.Request{Op: sdk.OpDeletePrefix, Key: "app/users/"}, ""},
		{"list outside allowed", sdk.Request{Op: sdk.OpWatch, Key: "zzz"}, "prefix_not_allowed"},
		{"value too large", sdk.Request{Op: sdk.OpPut, Key: "app/x", ValueLen: 101}, "value_too_large"},
		{"value fits", sdk.Request{Op: sdk.OpPut, Key: "app/x", ValueLen: 100}, ""},
		{"stats has no key", sdk.Request{Op: sdk.OpStats}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := v.Evaluate(&tc.req)
			if d.Code() != tc.code || d.Allowed() != (tc.code == "") {
				t.Fatalf("got %v, want code %q", d, tc.code)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	v, err := validate.Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := v.Evaluate(&sdk.Request{Op: sdk.OpPut, Key: "Any/Printable-ASCII_key:1"}); !d.Allowed() {
		t.Fatal(d)
	}
	if d := v.Evaluate(&sdk.Request{Op: sdk.OpPut, Key: "tab\tkey"}); d.Allowed() {
		t.Fatal("control character allowed by default")
	}
	if d := v.Evaluate(&sdk.Request{Op: sdk.OpPut, Key: strings.Repeat("k", 1025)}); d.Code() != "key_too_long" {
		t.Fatal(d)
	}
	u, _ := validate.Parse([]byte(`{"character_classes":["unicode","lower"]}`))
	if d := u.Evaluate(&sdk.Request{Op: sdk.OpPut, Key: "clé"}); !d.Allowed() {
		t.Fatal(d)
	}
}

func TestBadConfig(t *testing.T) {
	for _, c := range []string{
		`{"max_key_length": -1}`,
		`{"character_classes": ["emoji"]}`,
		`{"allowed_prefixes": [""]}`,
		`{"extra_characters": "\t"}`,
		`{"max_key_lenght": 10}`,
		`[1,2]`,
	} {
		if _, err := validate.Parse([]byte(c)); err == nil {
			t.Errorf("%s accepted", c)
		}
	}
}

// In a Go policy an allocation costs as much as the rest of an
// evaluation: the allow path must not allocate.
func TestAllowDoesNotAllocate(t *testing.T) {
	v, _ := validate.Parse([]byte(cfg))
	req := sdk.Request{Op: sdk.OpPut, Key: "app/users/42", Principal: "alice"}
	if n := testing.AllocsPerRun(100, func() { v.Evaluate(&req) }); n != 0 {
		t.Fatalf("%v allocations per allowed request", n)
	}
}
