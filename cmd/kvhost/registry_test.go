package main_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/kvhost/kvhost/client"
	"github.com/kvhost/kvhost/client/registry"
	"github.com/kvhost/kvhost/kv"
)

// The registries on every backend: an actor has one placement however
// many nodes race to place it, and a stale placement cannot be moved or
// removed; a node that stops heartbeating departs, and a watcher on
// another host sees it arrive and depart.
func TestRegistry(t *testing.T) {
	forEachBackend(t, func(t *testing.T, clients []*client.Client) {
		t.Run("actors", func(t *testing.T) { testActors(t, clients) })
		t.Run("nodes", func(t *testing.T) { testNodes(t, clients) })
	})
}

func testActors(t *testing.T, clients []*client.Client) {
	ctx, cancel := context.WithTimeout(t.Context(), lockBound)
	defer cancel()
	regs := make([]*registry.Actors, len(clients))
	for i, c := range clients {
		regs[i] = registry.NewActors(c, "")
	}
	// Eight nodes race to place the same actor: one placement wins.
	won := make(chan registry.Actor, 8)
	errs := make(chan error, 8)
	for g := range 8 {
		go func() {
			a, err := regs[g%len(regs)].Register(ctx, "cart-42", fmt.Sprintf("node-%d", g))
			if err != nil {
				errs <- err
				return
			}
			won <- a
		}()
	}
	var winner registry.Actor
	for range 8 {
		select {
		case a := <-won:
			if winner.ID != "" {
				t.Fatalf("two placements won: %+v and %+v", winner, a)
			}
			winner = a
		case err := <-errs:
			if !errors.Is(err, registry.ErrPlaced) {
				t.Fatalf("a losing placement: %v, want ErrPlaced", err)
			}
		}
	}
	got, err := regs[len(regs)-1].Lookup(ctx, "cart-42")
	if err != nil || got != winner {
		t.Fatalf("lookup on the other host: %+v (%v), want the winner %+v", got, err, winner)
	}
	moved, err := regs[0].Move(ctx, "cart-42", winner.Version, "node-9")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := regs[0].Move(ctx, "cart-42", winner.Version, "node-stale"); !errors.Is(err, kv.ErrConflict) {
		t.Fatalf("moving a stale placement: %v, want a conflict", err)
	}
	if err := regs[0].Unregister(ctx, "cart-42", winner.Version); !errors.Is(err, kv.ErrConflict) {
		t.Fatalf("removing a stale placement: %v, want a conflict", err)
	}
	var n int
	for a, err := range regs[len(regs)-1].All(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		if a != moved {
			t.Fatalf("listed %+v, want %+v", a, moved)
		}
		n++
	}
	if n != 1 {
		t.Fatalf("listed %d actors, want 1", n)
	}
	if err := regs[0].Unregister(ctx, "cart-42", moved.Version); err != nil {
		t.Fatal(err)
	}
	if _, err := regs[0].Lookup(ctx, "cart-42"); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("lookup after unregister: %v", err)
	}
}

func testNodes(t *testing.T, clients []*client.Client) {
	ctx, cancel := context.WithTimeout(t.Context(), lockBound)
	defer cancel()
	member := registry.NewNodes(clients[0], "")
	watcher := registry.NewNodes(clients[len(clients)-1], "")
	if _, err := member.Register(ctx, "steady", []byte("10.0.0.1"), time.Minute); err != nil {
		t.Fatal(err)
	}
	changes := watcher.Watch(ctx)
	next := func(what string) registry.Change {
		t.Helper()
		select {
		case c, ok := <-changes:
			if !ok {
				t.Fatalf("%s: the watch ended", what)
			}
			return c
		case <-ctx.Done():
			t.Fatalf("%s: no change within %v", what, lockBound)
		}
		return registry.Change{}
	}
	if c := next("the node alive at the start"); c.Kind != registry.Arrived || c.Node.ID != "steady" {
		t.Fatalf("first change %v %+v, want steady arrived", c.Kind, c.Node)
	}
	// A node with a short TTL arrives, heartbeats once, then stops.
	if _, err := member.Register(ctx, "flaky", []byte("10.0.0.2"), time.Second); err != nil {
		t.Fatal(err)
	}
	if c := next("flaky arriving"); c.Kind != registry.Arrived || c.Node.ID != "flaky" || string(c.Node.Info) != "10.0.0.2" {
		t.Fatalf("change %v %+v, want flaky arrived", c.Kind, c.Node)
	}
	if _, err := member.Heartbeat(ctx, "flaky", time.Second); err != nil {
		t.Fatal(err)
	}
	// The key is invisible from its expiry on; its EXPIRE event comes
	// when the server's cleanup next runs.
	for {
		if _, err := member.Lookup(ctx, "flaky"); errors.Is(err, kv.ErrNotFound) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("flaky never expired")
		case <-time.After(50 * time.Millisecond): // polling what the clock brings about
		}
	}
	if c := next("flaky departing"); c.Kind != registry.Departed || c.Node.ID != "flaky" {
		t.Fatalf("change %v %+v, want flaky departed", c.Kind, c.Node)
	}
	if _, err := member.Heartbeat(ctx, "flaky", time.Second); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("an expired node's heartbeat: %v, want ErrNotFound", err)
	}
	alive, err := watcher.Alive(ctx)
	if err != nil || len(alive) != 1 || alive[0].ID != "steady" {
		t.Fatalf("alive nodes: %+v (%v), want steady only", alive, err)
	}
}
