package rpcerr_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/kvhost/kvhost/api/rpcerr"
	"github.com/kvhost/kvhost/kv"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Every sentinel keeps its identity through ToStatus and FromStatus, the
// path every error takes across the plugin wire.
func TestErrorTableRoundTrip(t *testing.T) {
	var sentinels []error
	for _, row := range rpcerr.Table {
		sentinels = append(sentinels, row.Err)
	}
	for _, s := range sentinels {
		t.Run(s.Error(), func(t *testing.T) {
			wrapped := fmt.Errorf("sqlite: get %q: %w", "k", s)
			back := rpcerr.FromStatus(rpcerr.ToStatus(wrapped))
			if !errors.Is(back, s) {
				t.Fatalf("%v came back as %v, which is not %v", wrapped, back, s)
			}
			if back.Error() != wrapped.Error() {
				t.Fatalf("message %q came back as %q", wrapped, back)
			}
			for _, other := range sentinels {
				if other != s && errors.Is(back, other) {
					t.Fatalf("%v came back also matching %v", s, other)
				}
			}
		})
	}
}

func TestClosedArrivesAsUnavailable(t *testing.T) {
	back := rpcerr.FromStatus(rpcerr.ToStatus(fmt.Errorf("memory: %w", kv.ErrClosed)))
	if !errors.Is(back, kv.ErrUnavailable) || errors.Is(back, context.Canceled) {
		t.Fatalf("ErrClosed came back as %v, want ErrUnavailable", back)
	}
}

func TestConflictErrorCrossesTheWire(t *testing.T) {
	in := &kv.ConflictError{Key: "lock", CurrentVersion: 42, OpIndex: 3}
	back := rpcerr.FromStatus(rpcerr.ToStatus(fmt.Errorf("batch: %w", in)))
	var ce *kv.ConflictError
	if !errors.As(back, &ce) || !errors.Is(back, kv.ErrConflict) {
		t.Fatalf("got %v (%T), want a *ConflictError", back, back)
	}
	if *ce != *in {
		t.Fatalf("got %+v, want %+v", *ce, *in)
	}
}

func TestUnknownErrorsBecomeInternal(t *testing.T) {
	back := rpcerr.FromStatus(rpcerr.ToStatus(errors.New("disk on fire")))
	if !errors.Is(back, kv.ErrInternal) || back.Error() != "disk on fire" {
		t.Fatalf("got %v", back)
	}
	if rpcerr.FromStatus(nil) != nil || rpcerr.ToStatus(nil) != nil {
		t.Fatal("nil must stay nil")
	}
}

func TestCompactedErrorCrossesTheWire(t *testing.T) {
	in := &kv.CompactedError{Requested: 7, Oldest: 1200}
	back := rpcerr.FromStatus(rpcerr.ToStatus(fmt.Errorf("sqlite: watch: %w", in)))
	var ce *kv.CompactedError
	if !errors.As(back, &ce) || !errors.Is(back, kv.ErrCompacted) || *ce != *in {
		t.Fatalf("got %v (%T), want %+v", back, back, in)
	}
	if st, _ := status.FromError(rpcerr.ToStatus(in)); st.Code() != codes.OutOfRange {
		t.Fatalf("compacted travels as %v, want OutOfRange", st.Code())
	}
}

// Errors that share a code keep their identity: too large and storage
// full are both RESOURCE_EXHAUSTED.
func TestSharedCodeKeepsIdentity(t *testing.T) {
	if rpcerr.Code(kv.ErrTooLarge) != rpcerr.Code(kv.ErrStorageFull) {
		t.Fatal("the table no longer has two errors sharing a code; pick another pair")
	}
	back := rpcerr.FromStatus(rpcerr.ToStatus(fmt.Errorf("sqlite: put: %w", kv.ErrStorageFull)))
	if !errors.Is(back, kv.ErrStorageFull) || errors.Is(back, kv.ErrTooLarge) {
		t.Fatalf("storage full came back as %v", back)
	}
}

// The reason, not the code, names the error: a status whose code another
// error shares (or a code a later table row moves to) arrives as the error
// its reason names.
func TestReasonOutranksCode(t *testing.T) {
	st, err := status.New(codes.FailedPrecondition, "sqlite: watch: gone").WithDetails(
		&errdetails.ErrorInfo{Domain: rpcerr.Domain, Reason: "COMPACTED", Metadata: map[string]string{"oldest_revision": "9"}})
	if err != nil {
		t.Fatal(err)
	}
	back := rpcerr.FromStatus(st.Err())
	if !errors.Is(back, kv.ErrCompacted) || errors.Is(back, kv.ErrConflict) {
		t.Fatalf("got %v, want ErrCompacted and not the code's ErrConflict", back)
	}
	// Without a kvhost reason (an older peer, or gRPC itself), the code decides.
	if back := rpcerr.FromStatus(status.Error(codes.NotFound, "x")); !errors.Is(back, kv.ErrNotFound) {
		t.Fatalf("bare NotFound came back as %v", back)
	}
	// Another domain's ErrorInfo is not ours to read.
	st, _ = status.New(codes.Unavailable, "y").WithDetails(&errdetails.ErrorInfo{Domain: "example.com", Reason: "NOT_FOUND"})
	if back := rpcerr.FromStatus(st.Err()); !errors.Is(back, kv.ErrUnavailable) {
		t.Fatalf("foreign reason was read: %v", back)
	}
}

// Every row has a distinct, stable reason: a reason is a public name.
func TestReasonsAreDistinct(t *testing.T) {
	seen := map[string]bool{}
	for _, row := range rpcerr.Table {
		if row.Reason == "" || seen[row.Reason] {
			t.Errorf("reason %q of %v is empty or used twice", row.Reason, row.Err)
		}
		seen[row.Reason] = true
		if got := rpcerr.Reason(fmt.Errorf("wrapped: %w", row.Err)); got != row.Reason {
			t.Errorf("Reason(%v) = %q, want %q", row.Err, got, row.Reason)
		}
	}
}

// A remote error forwarded over a second hop (plugin to host to client)
// keeps its reason.
func TestForwardedErrorKeepsItsReason(t *testing.T) {
	hop1 := rpcerr.FromStatus(rpcerr.ToStatus(&kv.CompactedError{Requested: 1, Oldest: 5}))
	hop2 := rpcerr.FromStatus(rpcerr.ToStatus(fmt.Errorf("host: %w", hop1)))
	if !errors.Is(hop2, kv.ErrCompacted) {
		t.Fatalf("after two hops: %v", hop2)
	}
	hop1 = rpcerr.FromStatus(rpcerr.ToStatus(kv.ErrWatchOverflow))
	if got := rpcerr.FromStatus(hop1.(interface{ GRPCStatus() *status.Status }).GRPCStatus().Err()); !errors.Is(got, kv.ErrWatchOverflow) {
		t.Fatalf("GRPCStatus of a remote error lost its reason: %v", got)
	}
}

// FromStatus reads what a peer sent: any code, reason and metadata must
// come back as an error wrapping one of the table's sentinels, never a
// panic.
func FuzzFromStatus(f *testing.F) {
	f.Add(uint32(9), "CONFLICT", "k", "12", "-1")
	f.Add(uint32(11), "COMPACTED", "", "x", "99999999999999999999")
	f.Add(uint32(2), "NO_SUCH_REASON", "\xff", "", "")
	f.Fuzz(func(t *testing.T, code uint32, reason, key, a, b string) {
		st, err := status.New(codes.Code(code%17), "msg").WithDetails(&errdetails.ErrorInfo{
			Domain: rpcerr.Domain, Reason: reason,
			Metadata: map[string]string{"key": key, "current_version": a, "op_index": b, "oldest_revision": a, "requested_revision": b},
		})
		if err != nil {
			return // invalid UTF-8 cannot be put in a proto string: a peer cannot send it
		}
		back := rpcerr.FromStatus(st.Err())
		if codes.Code(code%17) == codes.OK {
			return
		}
		for _, row := range rpcerr.Table {
			if errors.Is(back, row.Err) {
				return
			}
		}
		t.Fatalf("%v (code %d, reason %q) wraps no sentinel", back, code%17, reason)
	})
}
