// Package op is the one table of kvhost's operations: their names, as
// guards, metrics, logs and policies see them, and their numbers, which
// are the operation codes of the policy ABI (policies/ABI.md). The host,
// the policy engine and the policy SDK all number operations by it (the
// SDK, compiled to WebAssembly on its own, keeps a copy that a test holds
// equal to this one).
package op

import "fmt"

// Op is one operation. Its value is the policy ABI's operation code.
type Op uint8

// The operations. A batch is checked op by op as Put and Delete; a
// get-many key by key as Get. For List, Count, Watch and DeletePrefix the
// key a policy sees is the prefix.
const (
	Get          Op = 1
	Put          Op = 2
	Delete       Op = 3
	List         Op = 4
	Count        Op = 5
	DeletePrefix Op = 6
	Increment    Op = 7
	RefreshTTL   Op = 8
	Watch        Op = 9
	Stats        Op = 10
	Admin        Op = 11
	// Batch, CleanupExpired, CompareAndSwap and Exists are never seen by
	// a policy; they name metrics. A batch is vetted op by op; cleanup is
	// the host's own; a compare-and-swap is vetted as a Get and a Put of
	// its key (it reads and it writes), an exists as a Get: the host
	// builds them on the contract's operations, and every policy already
	// written decides them rightly without knowing they exist.
	Batch          Op = 12
	CleanupExpired Op = 13
	CompareAndSwap Op = 14
	Exists         Op = 15
)

var names = [...]string{
	Get: "get", Put: "put", Delete: "delete", List: "list", Count: "count",
	DeletePrefix: "delete_prefix", Increment: "increment", RefreshTTL: "refresh_ttl",
	Watch: "watch", Stats: "stats", Admin: "admin",
	Batch: "batch", CleanupExpired: "cleanup_expired",
	CompareAndSwap: "compare_and_swap", Exists: "exists",
}

// String returns the operation's name, such as "delete_prefix".
func (o Op) String() string {
	if int(o) < len(names) && names[o] != "" {
		return names[o]
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Parse parses an operation name such as "delete_prefix".
func Parse(s string) (Op, error) {
	for i, n := range names {
		if n != "" && n == s {
			return Op(i), nil
		}
	}
	return 0, fmt.Errorf("unknown operation %q", s)
}

// Policy reports whether policies see this operation (the ABI's codes 1
// to 11).
func (o Op) Policy() bool { return o >= Get && o <= Admin }

// IsPrefix reports whether the operation's key is a prefix covering many
// keys rather than one key.
func (o Op) IsPrefix() bool {
	return o == List || o == Count || o == Watch || o == DeletePrefix
}

// All lists every operation in numeric order.
func All() []Op {
	out := make([]Op, 0, len(names))
	for i, n := range names {
		if n != "" {
			out = append(out, Op(i))
		}
	}
	return out
}
