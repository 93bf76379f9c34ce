package rpcerr_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/kvhost/kvhost/api/rpcerr"
	"github.com/kvhost/kvhost/kv"
)

// Every sentinel keeps its identity through ToStatus and FromStatus, the
// path every error takes across the plugin wire.
func TestErrorTableRoundTrip(t *testing.T) {
	sentinels := []error{
		kv.ErrNotFound, kv.ErrConflict, kv.ErrInvalidArgument,
		kv.ErrUnavailable, kv.ErrNotSupported, kv.ErrWatchOverflow,
		kv.ErrTooLarge, kv.ErrPermissionDenied, kv.ErrUnauthenticated,
		kv.ErrInternal, context.Canceled, context.DeadlineExceeded,
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
