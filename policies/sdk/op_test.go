package sdk

import (
	"strings"
	"testing"

	"github.com/kvhost/kvhost/kv/op"
)

// The SDK is compiled to WebAssembly on its own and keeps its own copy of
// the operation numbering; this test holds the copy equal to the host's
// one table (package kv/op), name for name and number for number.
func TestOpsAgreeWithTheHostTable(t *testing.T) {
	seen := 0
	for _, o := range op.All() {
		if !o.Policy() {
			continue
		}
		seen++
		if got := Op(o).String(); got != o.String() {
			t.Errorf("operation %d is %q in the SDK and %q in kv/op", uint8(o), got, o.String())
		}
		if Op(o).IsPrefixOp() != o.IsPrefix() {
			t.Errorf("operation %s: the SDK and kv/op disagree on whether its key is a prefix", o)
		}
	}
	for i := range 256 {
		name := Op(i).String()
		if _, err := op.Parse(name); err == nil {
			continue
		}
		if !strings.HasPrefix(name, "op(") {
			t.Errorf("the SDK names operation %d %q, which kv/op does not know", i, name)
		}
	}
	if seen != len(opNames)-1 {
		t.Errorf("kv/op has %d policy operations, the SDK %d", seen, len(opNames)-1)
	}
}
