package client_test

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	apipb "github.com/kvhost/kvhost/api/kvhostv1"
	"github.com/kvhost/kvhost/client"
	"github.com/kvhost/kvhost/host/server"
)

// eventually polls cond until it holds; the bound only ends a test that
// would otherwise hang, however loaded the machine, and says what for.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(time.Millisecond) // polling what the server pushes
	}
}

// nearClient dials addr with a near cache and waits until it serves.
func nearClient(t *testing.T, addr string, opts ...client.Option) *client.Client {
	t.Helper()
	c := dial(t, addr, append(opts, client.WithNearCache(1<<20))...)
	eventually(t, "the near cache's tracking session", func() bool { return c.NearCacheStats().Serving })
	return c
}

// A near cache serves repeated reads from memory, and forgets a key when
// another client changes it, deletes it or it expires; its own writes it
// reads back at once.
func TestNearCache(t *testing.T) {
	addr := startServer(t, server.Options{Anonymous: true})
	ctx := ctxOf(t)
	reader, writer := nearClient(t, addr), dial(t, addr)
	value := func(key string) string {
		e, err := reader.Get(ctx, key)
		if errors.Is(err, client.ErrNotFound) {
			return "<missing>"
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(e.Value)
	}

	if _, err := writer.Put(ctx, "k", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	// The put's own report may still be on its way while the first read
	// is: then that read's answer is dropped, harmlessly, and a later one
	// is kept.
	eventually(t, "a read served from memory", func() bool {
		before := reader.NearCacheStats()
		if got := value("k"); got != "v1" {
			t.Fatalf("read %q, want v1", got)
		}
		after := reader.NearCacheStats()
		return after.Hits == before.Hits+1 && after.Misses == before.Misses
	})

	t.Run("another client's write is pushed", func(t *testing.T) {
		if _, err := writer.Put(ctx, "k", []byte("v2")); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the write's report", func() bool { return value("k") == "v2" })
		if _, err := writer.Delete(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the delete's report", func() bool { return value("k") == "<missing>" })
	})

	t.Run("own writes are read back at once", func(t *testing.T) {
		for i, v := range []string{"a", "b", "c"} {
			if _, err := reader.Put(ctx, "own", []byte(v)); err != nil {
				t.Fatal(err)
			}
			if got := value("own"); got != v {
				t.Fatalf("write %d: read %q back, want %q", i, got, v)
			}
		}
		if _, err := reader.Delete(ctx, "own"); err != nil {
			t.Fatal(err)
		}
		if got := value("own"); got != "<missing>" {
			t.Fatalf("read %q after deleting, want missing", got)
		}
		if _, err := reader.Increment(ctx, "own", 5); err != nil {
			t.Fatal(err)
		}
		if got := value("own"); got != "5" {
			t.Fatalf("read %q after incrementing, want 5", got)
		}
	})

	t.Run("a missing key is cached until it appears", func(t *testing.T) {
		eventually(t, "absence served from memory", func() bool {
			before := reader.NearCacheStats()
			if r, err := reader.Read(ctx, "absent"); err != nil || r.Found || r.Revision == 0 {
				t.Fatalf("read of a missing key: %+v %v, want not found with a revision", r, err)
			}
			return reader.NearCacheStats().Hits == before.Hits+1
		})
		if _, err := writer.Put(ctx, "absent", []byte("here")); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the report of the new key", func() bool { return value("absent") == "here" })
	})

	t.Run("never served past its expiry", func(t *testing.T) {
		e, err := writer.Put(ctx, "ttl", []byte("x"), client.WithTTL(300*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, "the key with a TTL served from memory", func() bool {
			before := reader.NearCacheStats()
			if got := value("ttl"); got != "x" && time.Now().Before(e.ExpiresAt) {
				t.Fatalf("read %q before expiry", got)
			}
			return reader.NearCacheStats().Hits == before.Hits+1 || !time.Now().Before(e.ExpiresAt)
		})
		time.Sleep(time.Until(e.ExpiresAt) + time.Millisecond) // the clock passing the expiry is the condition
		if got := value("ttl"); got != "<missing>" {
			t.Fatalf("read %q after its expiry", got)
		}
	})

	t.Run("a linearizable read goes to the server", func(t *testing.T) {
		value("k2")
		before := reader.NearCacheStats()
		if _, err := reader.Read(ctx, "k2", client.Linearizable()); err != nil {
			t.Fatal(err)
		}
		if after := reader.NearCacheStats(); after.Hits != before.Hits {
			t.Fatalf("a linearizable read was served from memory: %+v then %+v", before, after)
		}
	})
}

// A tracking session belongs to its tenant: another tenant naming it
// tracks nothing, and its reports never carry another tenant's keys.
func TestTrackingIsPerTenant(t *testing.T) {
	addr := startServer(t, server.Options{Tokens: []server.Token{
		{Token: "tok-a", Principal: "alice", Tenant: "a"},
		{Token: "tok-b", Principal: "bob", Tenant: "b"},
	}})
	ctx := ctxOf(t)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rpc := apipb.NewKVClient(conn)
	as := func(tok string) metadata.MD { return metadata.Pairs("authorization", "Bearer "+tok) }
	actx, bctx := metadata.NewOutgoingContext(ctx, as("tok-a")), metadata.NewOutgoingContext(ctx, as("tok-b"))

	st, err := rpc.Track(actx, &apipb.TrackRequest{})
	if err != nil {
		t.Fatal(err)
	}
	first, err := st.Recv()
	if err != nil || first.TrackingId == "" {
		t.Fatalf("first tracking message %v %v, want an id", first, err)
	}
	if m, err := st.Recv(); err != nil || !m.Ready {
		t.Fatalf("second tracking message %v %v, want ready", m, err)
	}
	r, err := rpc.Get(bctx, &apipb.GetRequest{Key: "k", TrackingId: first.TrackingId, AllowMissing: true})
	if err != nil || r.Tracked {
		t.Fatalf("tenant b read with a's session: %v %v, want an untracked answer", r, err)
	}
	r, err = rpc.Get(actx, &apipb.GetRequest{Key: "k", TrackingId: first.TrackingId, AllowMissing: true})
	if err != nil || !r.Tracked {
		t.Fatalf("tenant a read with its session: %v %v, want tracked", r, err)
	}
	if _, err := rpc.Put(bctx, &apipb.PutRequest{Key: "k", Value: []byte("b's")}); err != nil {
		t.Fatal(err)
	}
	if _, err := rpc.Put(actx, &apipb.PutRequest{Key: "k", Value: []byte("a's")}); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Keys) == 0 {
			continue // progress
		}
		if len(m.Keys) != 1 || m.Keys[0] != "k" {
			t.Fatalf("report %v, want exactly a's key k, without its tenant prefix", m.Keys)
		}
		return
	}
}
