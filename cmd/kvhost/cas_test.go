package main_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	apipb "github.com/kvhost/kvhost/api/kvhostv1"
	"github.com/kvhost/kvhost/client"
	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/policies/policytest"
)

// casBound ends a test that would otherwise hang; no step is expected to
// take more than a fraction of it, however loaded the machine.
const casBound = 3 * time.Minute

// TestCompareAndSwap runs compare-and-swap by value, exists and the
// exact-key watch through real hosts on every backend; on PostgreSQL and
// Redis the writers are spread over two hosts on one store.
func TestCompareAndSwap(t *testing.T) {
	forEachBackend(t, func(t *testing.T, clients []*client.Client) {
		t.Run("increments", func(t *testing.T) { testCASIncrements(t, clients) })
		t.Run("mismatch", func(t *testing.T) { testCASMismatch(t, clients[0]) })
		t.Run("absent-race", func(t *testing.T) { testCASAbsentRace(t, clients) })
		t.Run("exists", func(t *testing.T) { testExists(t, clients[0]) })
		t.Run("exact-watch", func(t *testing.T) { testExactWatch(t, clients[0], clients[len(clients)-1]) })
	})
}

// casIncrement adds one to the decimal counter under key by value:
// read, swap old for old+1, and on a lost race go on from the value the
// swap reports. It returns how many swaps were refused on the way.
func casIncrement(ctx context.Context, c *client.Client, key string) (refused int, err error) {
	expect, n := client.ExpectAbsent(), 0
	if e, err := c.Get(ctx, key); err == nil {
		expect = client.ExpectValue(e.Value)
		if n, err = strconv.Atoi(string(e.Value)); err != nil {
			return 0, err
		}
	} else if !errors.Is(err, client.ErrNotFound) {
		return 0, err
	}
	for {
		swapped, cur, err := c.CompareAndSwap(ctx, key, expect, []byte(strconv.Itoa(n+1)))
		if err != nil || swapped {
			return refused, err
		}
		refused++
		if cur.Version == 0 {
			return refused, fmt.Errorf("counter %q vanished", key)
		}
		expect = client.ExpectValue(cur.Value)
		if n, err = strconv.Atoi(string(cur.Value)); err != nil {
			return refused, err
		}
	}
}

// 8 writers, spread over the hosts, each add N by compare-and-swap: the
// counter ends at exactly 8N, or an update was lost.
func testCASIncrements(t *testing.T, clients []*client.Client) {
	ctx, cancel := context.WithTimeout(t.Context(), casBound)
	defer cancel()
	const writers, each = 8, 25
	key := "cas/counter"
	var (
		wg      sync.WaitGroup
		refused atomic.Int64
		mu      sync.Mutex
		errs    []error
	)
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := clients[g%len(clients)]
			for range each {
				r, err := casIncrement(ctx, c, key)
				refused.Add(int64(r))
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("writer %d: %w", g, err))
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	e, err := clients[0].Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(e.Value); got != strconv.Itoa(writers*each) {
		t.Fatalf("counter is %s after %d increments by compare-and-swap: updates were lost", got, writers*each)
	}
	t.Logf("%d increments, %d swaps refused on the way", writers*each, refused.Load())
}

// A swap that does not happen is an answer: false, with the key as it is,
// and nothing written.
func testCASMismatch(t *testing.T, c *client.Client) {
	ctx := t.Context()
	before, err := c.Put(ctx, "cas/m", []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	swapped, cur, err := c.CompareAndSwap(ctx, "cas/m", client.ExpectValue([]byte("b")), []byte("c"))
	if err != nil || swapped || string(cur.Value) != "a" || cur.Version != before.Version || cur.Key != "cas/m" {
		t.Fatalf("swap from a wrong value: swapped %v, current %+v, %v; want false with a at version %d", swapped, cur, err, before.Version)
	}
	swapped, cur, err = c.CompareAndSwap(ctx, "cas/m", client.ExpectAbsent(), []byte("c"))
	if err != nil || swapped || string(cur.Value) != "a" || cur.Version != before.Version {
		t.Fatalf("swap from absent over a live key: swapped %v, current %+v, %v", swapped, cur, err)
	}
	if e, err := c.Get(ctx, "cas/m"); err != nil || string(e.Value) != "a" || e.Version != before.Version {
		t.Fatalf("after refused swaps the key is %+v (%v), want a at version %d", e, err, before.Version)
	}
	swapped, cur, err = c.CompareAndSwap(ctx, "cas/missing", client.ExpectValue([]byte("a")), []byte("c"))
	if err != nil || swapped || cur.Version != 0 {
		t.Fatalf("swap of a missing key from a value: swapped %v, current %+v, %v; want false, version 0", swapped, cur, err)
	}
	if _, found, err := c.Exists(ctx, "cas/missing"); err != nil || found {
		t.Fatalf("a refused swap created the key: %v %v", found, err)
	}
	// A match writes, with the TTL asked for; the empty value is a value.
	swapped, cur, err = c.CompareAndSwap(ctx, "cas/m", client.ExpectValue([]byte("a")), nil, client.WithTTL(time.Hour))
	if err != nil || !swapped || cur.Version <= before.Version || cur.ExpiresAt.IsZero() {
		t.Fatalf("swap from the right value: swapped %v, current %+v, %v", swapped, cur, err)
	}
	swapped, cur, err = c.CompareAndSwap(ctx, "cas/m", client.ExpectValue(nil), []byte("d"))
	if err != nil || !swapped || !cur.ExpiresAt.IsZero() {
		t.Fatalf("swap from the empty value: swapped %v, current %+v, %v (a swap without a TTL clears it)", swapped, cur, err)
	}
	if _, _, err := c.CompareAndSwap(ctx, "cas/m", client.Expectation{}, []byte("x")); !errors.Is(err, client.ErrInvalidArgument) {
		t.Fatalf("a swap that expects nothing: %v, want invalid argument", err)
	}
}

// Of 8 racers that all expect the key absent, exactly one creates it; the
// others are told what it holds.
func testCASAbsentRace(t *testing.T, clients []*client.Client) {
	ctx, cancel := context.WithTimeout(t.Context(), casBound)
	defer cancel()
	const racers = 8
	var (
		wg      sync.WaitGroup
		winners atomic.Int32
		seen    = make([]string, racers)
		errs    = make([]error, racers)
	)
	for g := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := []byte(fmt.Sprintf("racer-%d", g))
			swapped, cur, err := clients[g%len(clients)].CompareAndSwap(ctx, "cas/once", client.ExpectAbsent(), mine)
			switch {
			case err != nil:
				errs[g] = err
			case swapped:
				winners.Add(1)
				seen[g] = string(mine)
			default:
				seen[g] = string(cur.Value)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if n := winners.Load(); n != 1 {
		t.Fatalf("%d racers created the key, want exactly 1", n)
	}
	e, err := clients[0].Get(ctx, "cas/once")
	if err != nil {
		t.Fatal(err)
	}
	for g, v := range seen {
		if v != string(e.Value) {
			t.Errorf("racer %d saw %q, the key holds %q", g, v, e.Value)
		}
	}
}

func testExists(t *testing.T, c *client.Client) {
	ctx := t.Context()
	big := bytes.Repeat([]byte("v"), 256<<10)
	put, err := c.Put(ctx, "ex/key", big, client.WithTTL(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "ex/keyx/child", []byte("x")); err != nil {
		t.Fatal(err)
	}
	e, found, err := c.Exists(ctx, "ex/key")
	if err != nil || !found || e.Key != "ex/key" || e.Version != put.Version || !e.ExpiresAt.Equal(put.ExpiresAt) || e.Value != nil {
		t.Fatalf("exists of a live key: %+v %v %v; want version %d, expiry %v, no value", e, found, err, put.Version, put.ExpiresAt)
	}
	// A key that only prefixes others, and a key that is missing.
	for _, k := range []string{"ex/keyx", "ex/missing", "ex/ke"} {
		if e, found, err := c.Exists(ctx, k); err != nil || found {
			t.Fatalf("exists %q: %+v %v %v, want false", k, e, found, err)
		}
	}
	short, err := c.Put(ctx, "ex/short", []byte("x"), client.WithTTL(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	// Waiting for the clock, not for another actor: the key is invisible
	// from the instant it expires, cleaned up or not.
	time.Sleep(time.Until(short.ExpiresAt) + 5*time.Millisecond)
	if _, found, err := c.Exists(ctx, "ex/short"); err != nil || found {
		t.Fatalf("exists of an expired key: %v %v, want false", found, err)
	}
}

// A watch of one key delivers that key's put, delete and expire, and
// nothing of the keys it prefixes.
func testExactWatch(t *testing.T, watcher, writer *client.Client) {
	ctx, cancel := context.WithTimeout(t.Context(), casBound)
	defer cancel()
	ws, err := watcher.Watch(ctx, "xw/key", client.ExactKey(), client.WithProgressInterval(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	noise := func() {
		t.Helper()
		for _, k := range []string{"xw/keyx", "xw/key/child", "xw/ke"} {
			if _, err := writer.Put(ctx, k, []byte("noise")); err != nil {
				t.Fatal(err)
			}
		}
	}
	noise()
	if _, err := writer.Put(ctx, "xw/key", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	noise()
	if _, err := writer.Delete(ctx, "xw/key"); err != nil {
		t.Fatal(err)
	}
	noise()
	if _, err := writer.Put(ctx, "xw/key", []byte("v2"), client.WithTTL(time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	noise()
	want := []string{"PUT xw/key v1", "DELETE xw/key", "PUT xw/key v2", "EXPIRE xw/key"}
	var got []string
	for len(got) < len(want) {
		ev, err := ws.Recv()
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		if ev.Type == kv.EventProgress {
			continue
		}
		s := ev.Type.String() + " " + ev.Key
		if ev.Type == kv.EventPut {
			s += " " + string(ev.Value)
		}
		got = append(got, s)
	}
	noise()
	// One more change to the key: the next event must be it, not noise.
	if _, err := writer.Put(ctx, "xw/key", []byte("end")); err != nil {
		t.Fatal(err)
	}
	for {
		ev, err := ws.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if ev.Type == kv.EventProgress {
			continue
		}
		got = append(got, ev.Type.String()+" "+ev.Key+" "+string(ev.Value))
		break
	}
	want = append(want, "PUT xw/key end")
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("exact watch of xw/key delivered\n%q\nwant\n%q", got, want)
	}
}

// An exact watch of a key whose longer keys keep changing still hears
// progress, past the revisions of the changes it does not deliver. The
// watch is read on the wire, without the Go client (which drops other
// keys' events too, in case its server predates exact watches), so that
// what is checked is the server's filter.
func TestExactWatchProgress(t *testing.T) {
	s := startServer(t, "auth: {anonymous: true}\nbackend: {plugin: memory}\n")
	c := s.client(t, "")
	ctx, cancel := context.WithTimeout(t.Context(), casBound)
	defer cancel()
	conn, err := grpc.NewClient(s.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	st, err := apipb.NewKVClient(conn).Watch(ctx, &apipb.WatchRequest{Prefix: "p/key", Exact: true, ProgressIntervalMs: 20})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := st.Recv(); err != nil || !m.Ready {
		t.Fatalf("first watch message: %v %v, want ready", m, err)
	}
	first, err := c.Put(ctx, "p/keyx", []byte("first"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ctx.Err() == nil; i++ {
			if _, err := c.Put(ctx, "p/key/"+strconv.Itoa(i%7), []byte("noise")); err != nil {
				return
			}
		}
	}()
	defer func() { cancel(); <-done }()
	for {
		m, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range m.Events {
			if ev.Type != apipb.Event_TYPE_PROGRESS {
				t.Fatalf("exact watch of p/key delivered %s %q", ev.Type, ev.Key)
			}
			if ev.Revision >= first.Version {
				return // progress past a change it did not deliver
			}
		}
	}
}

// Tenancy: a tenant's compare-and-swap, exists and exact watch see only
// its own keys.
func TestCompareAndSwapTenancy(t *testing.T) {
	s := startServer(t, twoTenants)
	ctx, cancel := context.WithTimeout(t.Context(), casBound)
	defer cancel()
	alice, bob := s.client(t, "tok-alice"), s.client(t, "tok-bob")
	if _, err := alice.Put(ctx, "shared", []byte("alice's")); err != nil {
		t.Fatal(err)
	}
	if _, found, err := bob.Exists(ctx, "shared"); err != nil || found {
		t.Fatalf("bob sees alice's key: %v %v", found, err)
	}
	swapped, cur, err := bob.CompareAndSwap(ctx, "shared", client.ExpectValue([]byte("alice's")), []byte("bob's"))
	if err != nil || swapped || cur.Version != 0 {
		t.Fatalf("bob swapped alice's key: %v %+v %v", swapped, cur, err)
	}
	ws, err := alice.Watch(ctx, "shared", client.ExactKey(), client.WithProgressInterval(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	// Bob's own key of the same name is created, alice's left as it was.
	if swapped, _, err := bob.CompareAndSwap(ctx, "shared", client.ExpectAbsent(), []byte("bob's")); err != nil || !swapped {
		t.Fatalf("bob's swap in his own tenant: %v %v", swapped, err)
	}
	if e, err := alice.Get(ctx, "shared"); err != nil || string(e.Value) != "alice's" {
		t.Fatalf("alice's key is %q (%v)", e.Value, err)
	}
	if _, err := alice.Put(ctx, "shared", []byte("alice's 2")); err != nil {
		t.Fatal(err)
	}
	ev, err := ws.Recv()
	if err != nil || ev.Type != kv.EventPut || string(ev.Value) != "alice's 2" {
		t.Fatalf("alice's exact watch: %+v %v, want her own put (not bob's)", ev, err)
	}
}

// A policy that denies writes denies a compare-and-swap, whether or not it
// would have swapped; a read-only caller may still ask whether a key
// exists. The acl example policy: bob may read and list app/, not write.
func TestCompareAndSwapPolicy(t *testing.T) {
	dir := t.TempDir()
	wasm := filepath.Join(dir, "acl.wasm")
	copyFile(t, policytest.Build(t, "policies/acl"), wasm)
	compilePolicies(t, wasm)
	aclConfig := filepath.Join(dir, "acl.yaml")
	writeFile(t, aclConfig, []byte(`rules:
  - {principals: [alice], prefixes: [""], operations: ["*"]}
  - {principals: [bob], prefixes: ["app/"], operations: [read, list]}
`))
	s := startServer(t, `
auth:
  tokens:
    - {token: tok-alice, principal: alice, tenant: acme}
    - {token: tok-bob, principal: bob, tenant: acme}
policy_cache_dir: `+policyCacheDir(t)+`
policies:
  - name: acl
    path: `+wasm+`
    timeout: `+decisionTimeout+`
    config_file: `+aclConfig+`
`)
	ctx, cancel := context.WithTimeout(t.Context(), casBound)
	defer cancel()
	alice, bob := s.client(t, "tok-alice"), s.client(t, "tok-bob")
	if swapped, _, err := alice.CompareAndSwap(ctx, "app/x", client.ExpectAbsent(), []byte("v1")); err != nil || !swapped {
		t.Fatalf("alice's swap: %v %v", swapped, err)
	}
	for _, expect := range []client.Expectation{client.ExpectValue([]byte("v1")), client.ExpectValue([]byte("other")), client.ExpectAbsent()} {
		_, _, err := bob.CompareAndSwap(ctx, "app/x", expect, []byte("bob's"))
		if !errors.Is(err, client.ErrPermissionDenied) || !strings.Contains(err.Error(), `"acl"`) {
			t.Fatalf("bob's swap: %v, want permission denied by acl", err)
		}
	}
	if e, err := alice.Get(ctx, "app/x"); err != nil || string(e.Value) != "v1" {
		t.Fatalf("app/x is %q (%v) after bob's refused swaps", e.Value, err)
	}
	if _, found, err := bob.Exists(ctx, "app/x"); err != nil || !found {
		t.Fatalf("bob, who may read, asks whether app/x exists: %v %v", found, err)
	}
	if _, _, err := bob.Exists(ctx, "other/x"); !errors.Is(err, client.ErrPermissionDenied) {
		t.Fatalf("bob asks about a key he may not read: %v, want permission denied", err)
	}
}
