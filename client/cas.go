package client

import (
	"context"
	"fmt"

	apipb "github.com/kvhost/kvhost/api/kvhostv1"
	"github.com/kvhost/kvhost/kv"
)

// Expectation is what CompareAndSwap expects to find under its key: make
// one with ExpectAbsent or ExpectValue (the zero Expectation is refused).
type Expectation struct {
	set    bool
	absent bool
	value  []byte
}

// ExpectAbsent expects no live key (an expired key is absent): the swap
// creates the key, as a put with IfAbsent does.
func ExpectAbsent() Expectation { return Expectation{set: true, absent: true} }

// ExpectValue expects a live key holding exactly v (nil and empty both
// mean the empty value).
func ExpectValue(v []byte) Expectation { return Expectation{set: true, value: v} }

// CompareAndSwap writes value under key when the key holds what expect
// says, atomically, and reports whether it did. A swap that did not happen
// is an answer, not an error: swapped is false and current is the key as
// the server found it, value included, so the caller can retry from it
// without another read; its Version is 0 when there was no live key.
// After a swap, current is the key as written: its new version and
// expiry, without the value. Of concurrent swaps from one expected value
// exactly one succeeds, on every backend.
//
// It takes WithTTL (a swap without it clears an earlier expiry, as a put
// does); conditions are refused, the expectation is the condition. A
// caller needs the right to read and to write the key. A key so hotly
// written that the server's bounded attempts all lost to other writers
// fails with an error wrapping ErrConflict (not a *ConflictError): retry
// later.
func (c *Client) CompareAndSwap(ctx context.Context, key string, expect Expectation, value []byte, opts ...WriteOption) (swapped bool, current kv.Entry, err error) {
	if err := c.check(); err != nil {
		return false, kv.Entry{}, err
	}
	o := writeOpts(opts)
	switch {
	case !expect.set:
		return false, kv.Entry{}, fmt.Errorf("%w: compare-and-swap %q expects nothing: use ExpectAbsent or ExpectValue", ErrInvalidArgument, key)
	case o.cond.Kind != kv.CondNone:
		return false, kv.Entry{}, fmt.Errorf("%w: compare-and-swap %q takes no IfAbsent or IfVersion: its expectation is its condition", ErrInvalidArgument, key)
	}
	if err := kv.ValidatePut(kv.PutRequest{Key: key, Value: value, TTL: o.ttl}); err != nil {
		return false, kv.Entry{}, err
	}
	req := &apipb.CompareAndSwapRequest{Key: key, Value: value, TtlMs: kv.TTLMillis(o.ttl)}
	if expect.absent {
		req.Expect = &apipb.CompareAndSwapRequest_ExpectAbsent{ExpectAbsent: true}
	} else {
		v := expect.value
		if v == nil {
			v = []byte{} // the empty value, explicitly
		}
		req.Expect = &apipb.CompareAndSwapRequest_ExpectedValue{ExpectedValue: v}
	}
	defer c.writing(false, key)()
	r, err := c.rpc.CompareAndSwap(ctx, req)
	if err != nil {
		return false, kv.Entry{}, c.wireErr(err)
	}
	if !r.Found {
		return r.Swapped, kv.Entry{}, nil
	}
	return r.Swapped, entryFromPB(r.Entry), nil
}

// Exists reports whether key has a live entry and, when it does, returns
// it with its version and expiry but without its value: the value never
// leaves the server, however large. A caller needs the right to read the
// key.
func (c *Client) Exists(ctx context.Context, key string) (kv.Entry, bool, error) {
	if err := c.check(); err != nil {
		return kv.Entry{}, false, err
	}
	if err := kv.ValidateKey(key); err != nil {
		return kv.Entry{}, false, err
	}
	r, err := c.rpc.Exists(ctx, &apipb.ExistsRequest{Key: key})
	if err != nil {
		return kv.Entry{}, false, c.wireErr(err)
	}
	if !r.Exists {
		return kv.Entry{}, false, nil
	}
	return entryFromPB(r.Entry), true, nil
}
