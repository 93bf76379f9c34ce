package pluginapi_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi"
	"github.com/kvhost/kvhost/plugins/memory"
)

// FuzzWire drives arbitrary requests across the real plugin protocol
// (in-process gRPC) into the memory backend: bad input is refused with
// ErrInvalidArgument, good input round-trips byte for byte, and nothing
// panics on either side.
func FuzzWire(f *testing.F) {
	c, err := pluginapi.ServeInProcess(f.Context(), memory.Open)
	if err != nil {
		f.Fatal(err)
	}
	if err := c.Open(f.Context(), nil); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = c.Close() })
	f.Add("k", []byte("v"), int64(0), "", 0)
	f.Add("a\x00", []byte{}, int64(5), "a", 3)
	f.Add("\xff", []byte{0}, int64(-1), "\xff", -1)
	f.Add("x_%", []byte("1"), int64(1000), "x_", 20000)
	f.Fuzz(func(t *testing.T, key string, value []byte, ttlMs int64, prefix string, limit int) {
		ctx := t.Context()
		ttl := time.Duration(ttlMs) * time.Millisecond
		if ttlMs > 0 {
			ttl += time.Hour // long enough not to expire during the check
		}
		e, err := c.Put(ctx, kv.PutRequest{Key: key, Value: value, TTL: ttl})
		if verr := kv.ValidatePut(kv.PutRequest{Key: key, TTL: ttl}); verr != nil {
			if !errors.Is(err, kv.ErrInvalidArgument) {
				t.Fatalf("put %q ttl %v: %v, want invalid argument", key, ttl, err)
			}
		} else {
			if err != nil {
				t.Fatalf("put %q: %v", key, err)
			}
			g, err := c.Get(ctx, key)
			if err != nil || !g.Found || !bytes.Equal(g.Entry.Value, value) || g.Entry.Version != e.Version {
				t.Fatalf("get %q after put: %+v %v", key, g, err)
			}
		}
		_, err = c.List(ctx, kv.ListRequest{Prefix: prefix, Limit: limit, KeysOnly: true})
		if _, verr := kv.NormalizeList(kv.ListRequest{Prefix: prefix, Limit: limit}); (verr == nil) != (err == nil) {
			t.Fatalf("list %q limit %d: %v, validator says %v", prefix, limit, err, verr)
		}
	})
}
