package redis

import (
	"context"
	"errors"
	"testing"

	goredis "github.com/redis/go-redis/v9"

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

// A Redis out of memory refuses every command queued in a transaction,
// reads too: Get, GetMany and List then read with scripts, and answer.
func TestReadsOnAFullRedis(t *testing.T) {
	srv := startPrivateServer(t)
	s := newTestStore(t, srv.Addr(), Config{})
	ctx := t.Context()
	put, err := s.Put(ctx, kv.PutRequest{Key: "k", Value: []byte("value")})
	if err != nil {
		t.Fatal(err)
	}
	admin := goredis.NewClient(&goredis.Options{Addr: srv.Addr(), MaxRetries: -1})
	defer admin.Close()
	if err := admin.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	defer admin.ConfigSet(context.Background(), "maxmemory", "0")
	if _, err := s.Put(ctx, kv.PutRequest{Key: "more", Value: []byte("x")}); !errors.Is(err, kv.ErrStorageFull) {
		t.Fatalf("a put on a full Redis: %v, want ErrStorageFull", err)
	}
	if g, err := s.Get(ctx, "k"); err != nil || !g.Found || string(g.Entry.Value) != "value" || g.Revision != put.Version {
		t.Errorf("get on a full Redis: %+v %v", g, err)
	}
	if g, err := s.GetMany(ctx, []string{"k", "missing"}); err != nil || len(g.Entries) != 2 || g.Entries[0] == nil || g.Entries[1] != nil {
		t.Errorf("get-many on a full Redis: %+v %v", g, err)
	}
	if l, err := s.List(ctx, kv.ListRequest{}); err != nil || len(l.Entries) != 1 || string(l.Entries[0].Value) != "value" || l.Revision != put.Version {
		t.Errorf("list on a full Redis: %+v %v", l, err)
	}
}
