// Package registry is the two registries a distributed actor framework
// keeps in kvhost: actors (where each actor lives; read on every message,
// written when an actor is placed) and nodes (which members of the
// cluster are alive: each registers with a TTL and heartbeats to keep it,
// and one that stops is gone once the TTL passes).
//
// Actors are keys Prefix+ID holding the actor's address. Register is a
// put-if-absent, so an actor has one placement at a time even when two
// nodes race to place it; Unregister and Move are conditioned on the
// placement's version, so a node that lost an actor cannot remove or move
// its new placement.
//
// Nodes are keys Prefix+ID with a TTL, holding whatever the node
// publishes about itself. Heartbeat refreshes the TTL (a TTL change keeps
// the version); a node whose heartbeats stopped for a TTL has expired and
// must Register again. Watch reports arrivals and departures, built on a
// mirror.Mirror so that a cut stream or a restarted host loses none.
package registry

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"
	"time"

	"github.com/kvhost/kvhost/client"
	"github.com/kvhost/kvhost/kv"
)

// Default key prefixes.
const (
	DefaultActorPrefix = "actors/"
	DefaultNodePrefix  = "nodes/"
)

// ErrPlaced is the error of registering an actor that already has a
// placement; it wraps a *kv.ConflictError with the placement's version.
var ErrPlaced = errors.New("actor is already placed")

// Actor is an actor's placement.
type Actor struct {
	ID      string
	Address string
	// Version identifies this placement: Unregister and Move take it.
	Version int64
}

// Actors is the actor registry.
type Actors struct {
	c      *client.Client
	prefix string
}

// NewActors returns the actor registry under prefix ("" for
// DefaultActorPrefix).
func NewActors(c *client.Client, prefix string) *Actors {
	if prefix == "" {
		prefix = DefaultActorPrefix
	}
	return &Actors{c: c, prefix: prefix}
}

func checkID(kind, id string) error {
	if id == "" {
		return fmt.Errorf("registry: %w: a %s needs an ID", kv.ErrInvalidArgument, kind)
	}
	return nil
}

// Register places the actor at address unless it is placed already; then
// it fails with ErrPlaced (and a *kv.ConflictError naming the current
// placement's version).
func (a *Actors) Register(ctx context.Context, id, address string) (Actor, error) {
	if err := checkID("actor", id); err != nil {
		return Actor{}, err
	}
	e, err := a.c.Put(ctx, a.prefix+id, []byte(address), client.IfAbsent())
	if errors.Is(err, kv.ErrConflict) {
		return Actor{}, fmt.Errorf("registry: actor %q: %w: %w", id, ErrPlaced, err)
	}
	if err != nil {
		return Actor{}, fmt.Errorf("registry: register actor %q: %w", id, err)
	}
	return Actor{ID: id, Address: address, Version: e.Version}, nil
}

// Move changes the placement at version from to address. It fails with a
// conflict when the placement is no longer that one.
func (a *Actors) Move(ctx context.Context, id string, from int64, address string) (Actor, error) {
	e, err := a.c.Put(ctx, a.prefix+id, []byte(address), client.IfVersion(from))
	if err != nil {
		return Actor{}, fmt.Errorf("registry: move actor %q: %w", id, err)
	}
	return Actor{ID: id, Address: address, Version: e.Version}, nil
}

// Unregister removes the placement at version; another placement is left
// alone (a conflict).
func (a *Actors) Unregister(ctx context.Context, id string, version int64) error {
	if _, err := a.c.Delete(ctx, a.prefix+id, client.IfVersion(version)); err != nil {
		return fmt.Errorf("registry: unregister actor %q: %w", id, err)
	}
	return nil
}

// Lookup returns the actor's placement, or an error wrapping
// kv.ErrNotFound.
func (a *Actors) Lookup(ctx context.Context, id string) (Actor, error) {
	e, err := a.c.Get(ctx, a.prefix+id)
	if err != nil {
		return Actor{}, fmt.Errorf("registry: lookup actor %q: %w", id, err)
	}
	return Actor{ID: id, Address: string(e.Value), Version: e.Version}, nil
}

// All iterates over every placement in ID order, page by page.
func (a *Actors) All(ctx context.Context) iter.Seq2[Actor, error] {
	return func(yield func(Actor, error) bool) {
		for e, err := range a.c.All(ctx, a.prefix) {
			if err != nil {
				yield(Actor{}, fmt.Errorf("registry: list actors: %w", err))
				return
			}
			if !yield(Actor{ID: strings.TrimPrefix(e.Key, a.prefix), Address: string(e.Value), Version: e.Version}, nil) {
				return
			}
		}
	}
}

// Node is a live member of the cluster.
type Node struct {
	ID        string
	Info      []byte
	Version   int64
	ExpiresAt time.Time
}

// Nodes is the node registry.
type Nodes struct {
	c      *client.Client
	prefix string
}

// NewNodes returns the node registry under prefix ("" for
// DefaultNodePrefix).
func NewNodes(c *client.Client, prefix string) *Nodes {
	if prefix == "" {
		prefix = DefaultNodePrefix
	}
	return &Nodes{c: c, prefix: prefix}
}

// Register announces the node, alive for ttl unless it heartbeats. A node
// that registers again (after a restart) replaces its earlier entry.
func (n *Nodes) Register(ctx context.Context, id string, info []byte, ttl time.Duration) (Node, error) {
	if err := checkID("node", id); err != nil {
		return Node{}, err
	}
	if ttl <= 0 {
		return Node{}, fmt.Errorf("registry: node %q: %w: a node needs a positive TTL", id, kv.ErrInvalidArgument)
	}
	e, err := n.c.Put(ctx, n.prefix+id, info, client.WithTTL(ttl))
	if err != nil {
		return Node{}, fmt.Errorf("registry: register node %q: %w", id, err)
	}
	return Node{ID: id, Info: info, Version: e.Version, ExpiresAt: e.ExpiresAt}, nil
}

// Heartbeat keeps the node alive for ttl from now. A node that expired
// gets an error wrapping kv.ErrNotFound: it must Register again (its
// departure has been seen).
func (n *Nodes) Heartbeat(ctx context.Context, id string, ttl time.Duration) (time.Time, error) {
	e, err := n.c.RefreshTTL(ctx, n.prefix+id, ttl)
	if err != nil {
		return time.Time{}, fmt.Errorf("registry: heartbeat node %q: %w", id, err)
	}
	return e.ExpiresAt, nil
}

// Leave removes the node at once.
func (n *Nodes) Leave(ctx context.Context, id string) error {
	if _, err := n.c.Delete(ctx, n.prefix+id); err != nil {
		return fmt.Errorf("registry: node %q leaves: %w", id, err)
	}
	return nil
}

// Lookup returns a live node, or an error wrapping kv.ErrNotFound.
func (n *Nodes) Lookup(ctx context.Context, id string) (Node, error) {
	e, err := n.c.Get(ctx, n.prefix+id)
	if err != nil {
		return Node{}, fmt.Errorf("registry: lookup node %q: %w", id, err)
	}
	return n.node(e), nil
}

func (n *Nodes) node(e kv.Entry) Node {
	return Node{ID: strings.TrimPrefix(e.Key, n.prefix), Info: e.Value, Version: e.Version, ExpiresAt: e.ExpiresAt}
}

// Alive lists the live nodes in ID order.
func (n *Nodes) Alive(ctx context.Context) ([]Node, error) {
	var out []Node
	for e, err := range n.c.All(ctx, n.prefix) {
		if err != nil {
			return nil, fmt.Errorf("registry: list nodes: %w", err)
		}
		out = append(out, n.node(e))
	}
	return out, nil
}
