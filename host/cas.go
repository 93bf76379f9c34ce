package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kvhost/kvhost/kv"
)

// Compare-and-swap by value and exists are built here, in the host, on
// what the contract already guarantees of every backend (a conditional
// put, a get, a keys-only list), so they work on every backend, a
// third-party one included, with no change to the contract or the plugin
// protocol. Every layer takes part as it does in the contract's
// operations (composite): metered times them under their own names,
// limited bounds their keys and values, guarded has a policy vet a
// compare-and-swap as a read and a write of its key and an exists as a
// read, and tenantView scopes them to the caller's tenant and runs them
// on the backend below it. docs/RATIONALE.md, "Compare-and-swap by value,
// exists, exact-key watch", says why.

// Expect is what a compare-and-swap expects to find under its key.
type Expect struct {
	// Absent expects no live key (an expired key is absent).
	Absent bool
	// Value, when Absent is false, is the value the live key must hold,
	// byte for byte (nil and empty both mean the empty value).
	Value []byte
}

// SwapRequest is one compare-and-swap: when the key holds what Expect
// says, Value replaces it, with TTL (0: no expiry, clearing an earlier
// one, as a put does).
type SwapRequest struct {
	Key    string
	Expect Expect
	Value  []byte
	TTL    time.Duration
}

// SwapResult answers a compare-and-swap. A swap that did not happen is an
// answer, not an error: Swapped is false, Found says whether a live key
// was there and Entry is that key, value included (to retry with it
// without another read), as of Revision. After a swap, Entry is the key as
// written: its new version and expiry, without the value (the caller has
// it), and Revision is the swap's own revision (the new version).
type SwapResult struct {
	Swapped  bool
	Found    bool
	Entry    kv.Entry
	Revision int64
}

// ExistsResult says whether a live key exists and, when it does, its
// version and expiry (never its value), as of Revision.
type ExistsResult struct {
	Found    bool
	Entry    kv.Entry
	Revision int64
}

// MaxSwapAttempts bounds how many times a compare-and-swap by value reads
// and writes again after a concurrent write to its key came between its
// read and its write. Each lost attempt means another writer's change was
// committed, so the store as a whole progresses; a key written that hard
// makes the call fail with ErrConflict rather than spin.
const MaxSwapAttempts = 64

// composite is the part of a layer that serves the operations the host
// builds on the contract.
type composite interface {
	CompareAndSwap(ctx context.Context, req SwapRequest) (SwapResult, error)
	Exists(ctx context.Context, key string) (ExistsResult, error)
}

// CompareAndSwap writes req.Value under req.Key when the key holds what
// req.Expect says, atomically: of concurrent swaps from the same expected
// value exactly one succeeds, and none is lost. It is checked as a get and
// a put of the key, so a caller needs the right to both.
func (s *Store) CompareAndSwap(ctx context.Context, req SwapRequest) (SwapResult, error) {
	return s.top.CompareAndSwap(ctx, req)
}

// Exists reports whether key has a live entry, with its version and
// expiry but not its value. It is checked as a get.
func (s *Store) Exists(ctx context.Context, key string) (ExistsResult, error) {
	return s.top.Exists(ctx, key)
}

// compareAndSwap runs a compare-and-swap on b, in b's keys. It is
// linearizable: a swap by value writes only at the version whose value it
// compared (kv.IfVersion), and versions have no ABA problem, so it takes
// effect at its write as if the comparison were made there too; a swap
// that did not happen takes effect at the read that saw the mismatch.
func compareAndSwap(ctx context.Context, b kv.Backend, req SwapRequest) (SwapResult, error) {
	for range MaxSwapAttempts {
		res, done, err := swapOnce(ctx, b, req)
		if err != nil || done {
			return res, err
		}
		if err := ctx.Err(); err != nil {
			return SwapResult{}, fmt.Errorf("compare-and-swap %q: %w", req.Key, err)
		}
	}
	return SwapResult{}, fmt.Errorf("%w: compare-and-swap %q: a concurrent write to the key came between the read and the write %d times in a row; the key is under heavy contention, retry later",
		kv.ErrConflict, req.Key, MaxSwapAttempts)
}

// swapOnce makes one attempt; done is false when a concurrent write got
// in the way and the attempt must be made again.
func swapOnce(ctx context.Context, b kv.Backend, req SwapRequest) (res SwapResult, done bool, err error) {
	if req.Expect.Absent {
		e, err := b.Put(ctx, kv.PutRequest{Key: req.Key, Value: req.Value, TTL: req.TTL, Cond: kv.IfAbsent()})
		if err == nil {
			return swapped(e), true, nil
		}
		if !isConflict(err) {
			return SwapResult{}, true, err
		}
		got, err := b.Get(ctx, req.Key)
		if err != nil || !got.Found {
			// Gone again since the put saw it: try again.
			return SwapResult{}, err != nil, err
		}
		return SwapResult{Found: true, Entry: got.Entry, Revision: got.Revision}, true, nil
	}
	got, err := b.Get(ctx, req.Key)
	if err != nil {
		return SwapResult{}, true, err
	}
	if !got.Found || !bytes.Equal(got.Entry.Value, req.Expect.Value) {
		return SwapResult{Found: got.Found, Entry: got.Entry, Revision: got.Revision}, true, nil
	}
	e, err := b.Put(ctx, kv.PutRequest{Key: req.Key, Value: req.Value, TTL: req.TTL, Cond: kv.IfVersion(got.Entry.Version)})
	switch {
	case err == nil:
		return swapped(e), true, nil
	case isConflict(err):
		return SwapResult{}, false, nil // written in between: compare again
	}
	return SwapResult{}, true, err
}

func swapped(e kv.Entry) SwapResult {
	e.Value = nil
	return SwapResult{Swapped: true, Found: true, Entry: e, Revision: e.Version}
}

// isConflict reports whether err is a failed condition of the put itself
// (a *kv.ConflictError), not some other refusal that wraps ErrConflict.
func isConflict(err error) bool {
	var ce *kv.ConflictError
	return errors.As(err, &ce)
}

// exists looks key up in b with a keys-only list of the prefix key,
// limit 1: the key itself sorts first among the keys it prefixes, and its
// value never leaves the backend (docs/RATIONALE.md says why this and not
// a get).
func exists(ctx context.Context, b kv.Backend, key string) (ExistsResult, error) {
	res, err := b.List(ctx, kv.ListRequest{Prefix: key, Limit: 1, KeysOnly: true})
	if err != nil {
		return ExistsResult{}, err
	}
	if len(res.Entries) == 0 || res.Entries[0].Key != key {
		return ExistsResult{Revision: res.Revision}, nil
	}
	e := res.Entries[0]
	e.Value = nil
	return ExistsResult{Found: true, Entry: e, Revision: res.Revision}, nil
}

// composed returns b's composite part: a layer's own, or, for a backend
// that is no layer (the cleanup's meter sits on the bare backend), the
// operations run on it directly.
func composed(b backend) composite {
	if c, ok := b.(composite); ok {
		return c
	}
	return direct{b}
}

type direct struct{ kv.Backend }

func (d direct) CompareAndSwap(ctx context.Context, req SwapRequest) (SwapResult, error) {
	return compareAndSwap(ctx, d.Backend, req)
}

func (d direct) Exists(ctx context.Context, key string) (ExistsResult, error) {
	return exists(ctx, d.Backend, key)
}
