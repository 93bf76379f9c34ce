package access_test

import (
	"strings"
	"testing"

	"github.com/kvhost/kvhost/policies/acl/access"
	"github.com/kvhost/kvhost/policies/sdk"
)

const cfg = `{"rules": [
	{"principals": ["alice", "bob"], "prefixes": ["app/"], "operations": ["read", "write", "list"]},
	{"principals": ["bob"], "prefixes": ["app/tmp/"], "operations": ["delete"]},
	{"principals": ["*"], "prefixes": ["public/"], "operations": ["read", "list", "watch"]},
	{"principals": ["@authenticated"], "prefixes": ["users/{principal}/"], "operations": ["*"]},
	{"principals": ["@anonymous"], "prefixes": ["guest/"], "operations": ["write"]},
	{"principals": ["carol"], "tenants": ["acme"], "prefixes": ["t/{tenant}/"], "operations": ["read"]},
	{"principals": ["root"], "prefixes": [""], "operations": ["admin"]}
]}`

func TestACL(t *testing.T) {
	l, err := access.Parse([]byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		req   sdk.Request
		allow bool
	}{
		{sdk.Request{Op: sdk.OpGet, Key: "app/x", Principal: "alice"}, true},
		{sdk.Request{Op: sdk.OpPut, Key: "app/x", Principal: "alice"}, true},
		{sdk.Request{Op: sdk.OpDelete, Key: "app/x", Principal: "alice"}, false},
		{sdk.Request{Op: sdk.OpDelete, Key: "app/tmp/x", Principal: "bob"}, true},
		{sdk.Request{Op: sdk.OpDeletePrefix, Key: "app/tmp/", Principal: "bob"}, true},
		{sdk.Request{Op: sdk.OpDeletePrefix, Key: "app/", Principal: "bob"}, false},
		{sdk.Request{Op: sdk.OpList, Key: "app/", Principal: "bob"}, true},
		{sdk.Request{Op: sdk.OpList, Key: "ap", Principal: "bob"}, false},
		{sdk.Request{Op: sdk.OpWatch, Key: "app/", Principal: "bob"}, false},
		{sdk.Request{Op: sdk.OpIncrement, Key: "app/n", Principal: "bob"}, true},
		{sdk.Request{Op: sdk.OpGet, Key: "public/x"}, true},
		{sdk.Request{Op: sdk.OpWatch, Key: "public/", Principal: "dave"}, true},
		{sdk.Request{Op: sdk.OpPut, Key: "public/x", Principal: "dave"}, false},
		{sdk.Request{Op: sdk.OpPut, Key: "users/dave/a", Principal: "dave"}, true},
		{sdk.Request{Op: sdk.OpDeletePrefix, Key: "users/dave/", Principal: "dave"}, true},
		{sdk.Request{Op: sdk.OpGet, Key: "users/erin/a", Principal: "dave"}, false},
		{sdk.Request{Op: sdk.OpGet, Key: "users//a"}, false},
		{sdk.Request{Op: sdk.OpPut, Key: "guest/a"}, true},
		{sdk.Request{Op: sdk.OpPut, Key: "guest/a", Principal: "dave"}, false},
		{sdk.Request{Op: sdk.OpGet, Key: "t/acme/x", Principal: "carol", Tenant: "acme"}, true},
		{sdk.Request{Op: sdk.OpGet, Key: "t/acme/x", Principal: "carol", Tenant: "other"}, false},
		{sdk.Request{Op: sdk.OpStats, Principal: "root"}, true},
		{sdk.Request{Op: sdk.OpStats, Principal: "alice"}, false},
		{sdk.Request{Op: sdk.OpDeletePrefix, Key: "anything", Principal: "root"}, true},
	} {
		d := l.Evaluate(&tc.req)
		if d.Allowed() != tc.allow {
			t.Errorf("%s %q by %q (tenant %q): got %v, want allow=%v", tc.req.Op, tc.req.Key, tc.req.Principal, tc.req.Tenant, d, tc.allow)
		}
		if !d.Allowed() && (d.Code() != "forbidden" || d.Reason() == "") {
			t.Errorf("denial without code or reason: %v", d)
		}
	}
	d := l.Evaluate(&sdk.Request{Op: sdk.OpDelete, Key: "app/x", Principal: "alice"})
	if want := `principal "alice" may not delete key "app/x" (needs delete)`; d.Reason() != want {
		t.Fatalf("reason %q, want %q", d.Reason(), want)
	}
	d = l.Evaluate(&sdk.Request{Op: sdk.OpPut, Key: "app/x"})
	if !strings.HasPrefix(d.Reason(), "an anonymous caller may not put") {
		t.Fatalf("reason %q", d.Reason())
	}
}

func TestBadConfig(t *testing.T) {
	for _, c := range []string{
		``,
		`{"rules": [{"principals": [], "prefixes": [""], "operations": ["read"]}]}`,
		`{"rules": [{"principals": ["a"], "prefixes": [], "operations": ["read"]}]}`,
		`{"rules": [{"principals": ["a"], "prefixes": [""], "operations": ["fly"]}]}`,
		`{"rules": [{"principals": [""], "prefixes": [""], "operations": ["read"]}]}`,
		`{"rules": [{"principals": ["a"], "prefixes": ["{user}/"], "operations": ["read"]}]}`,
		`{"rule": []}`,
	} {
		if _, err := access.Parse([]byte(c)); err == nil {
			t.Errorf("%q accepted", c)
		}
	}
}

func TestAllowDoesNotAllocate(t *testing.T) {
	l, _ := access.Parse([]byte(cfg))
	for _, req := range []sdk.Request{
		{Op: sdk.OpPut, Key: "app/x", Principal: "alice"},
		{Op: sdk.OpPut, Key: "users/dave/a", Principal: "dave"},
	} {
		if n := testing.AllocsPerRun(100, func() { l.Evaluate(&req) }); n != 0 {
			t.Fatalf("%v allocations per allowed request", n)
		}
	}
}
