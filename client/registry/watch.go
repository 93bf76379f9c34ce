package registry

import (
	"context"
	"strings"

	"github.com/kvhost/kvhost/client/mirror"
	"github.com/kvhost/kvhost/kv"
)

// Change is a node arriving, updating what it publishes, or departing.
type Change struct {
	Kind ChangeKind
	Node Node
	// Revision is the store revision of the change.
	Revision int64
}

// ChangeKind says what happened to a node.
type ChangeKind int

// The kinds of Change.
const (
	Arrived ChangeKind = iota + 1
	Updated
	Departed // left, or expired: its heartbeats stopped
)

func (k ChangeKind) String() string {
	switch k {
	case Arrived:
		return "arrived"
	case Updated:
		return "updated"
	case Departed:
		return "departed"
	}
	return "unknown"
}

// Watch reports the nodes alive now as arrivals, then every arrival,
// update and departure, until ctx ends; then it closes the channel. A cut
// stream or a restarted host is resumed without losing a change (see
// mirror). Heartbeats are not changes. Receive promptly: a slow receiver
// delays the watch, not the nodes.
func (n *Nodes) Watch(ctx context.Context) <-chan Change {
	out := make(chan Change, 64)
	alive := map[string]bool{}
	send := func(c Change) {
		select {
		case out <- c:
		case <-ctx.Done():
		}
	}
	m := mirror.New(n.c, n.prefix, mirror.OnChange(func(evs []kv.Event) {
		for _, ev := range evs {
			id := strings.TrimPrefix(ev.Key, n.prefix)
			node := Node{ID: id, Info: ev.Value, Version: ev.Version, ExpiresAt: ev.ExpiresAt}
			switch ev.Type {
			case kv.EventPut:
				kind := Updated
				if !alive[id] {
					kind, alive[id] = Arrived, true
				}
				send(Change{Kind: kind, Node: node, Revision: ev.Revision})
			case kv.EventDelete, kv.EventExpire:
				if alive[id] {
					delete(alive, id)
					send(Change{Kind: Departed, Node: Node{ID: id, Version: ev.Version}, Revision: ev.Revision})
				}
			}
		}
	}))
	go func() {
		defer close(out)
		_ = m.Run(ctx)
	}()
	return out
}
