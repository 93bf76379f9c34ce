package redis

import (
	"errors"
	"testing"

	"github.com/kvhost/kvhost/kv"
)

// A value that is missing is kv.ErrDataLoss on the watched read and on
// the script's; the watched read, which reads a missing field as empty,
// also checks every value's length against the metadata.
func TestListDamagedValue(t *testing.T) {
	addr := testAddr(t)
	for _, scripted := range []bool{false, true} {
		s := newTestStore(t, addr, Config{scriptedLists: scripted})
		ctx := t.Context()
		for _, k := range []string{"a", "b"} {
			if _, err := s.Put(ctx, kv.PutRequest{Key: k, Value: []byte("value")}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.rdb.HSet(ctx, s.keys[keyVal], "a", "val").Err(); err != nil {
			t.Fatal(err)
		}
		if err := s.rdb.HDel(ctx, s.keys[keyVal], "b").Err(); err != nil {
			t.Fatal(err)
		}
		damaged := []string{"b"} // missing
		if !scripted {
			damaged = append(damaged, "a") // shorter than its metadata says
		}
		for _, prefix := range damaged {
			if _, err := s.List(ctx, kv.ListRequest{Prefix: prefix}); !errors.Is(err, kv.ErrDataLoss) {
				t.Errorf("scripted %v: list of a damaged %q: %v, want ErrDataLoss", scripted, prefix, err)
			}
		}
	}
}
