package pluginapi_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi"
	"github.com/kvhost/kvhost/plugins/memory"
)

// A backend served over the real plugin protocol, used the way the host
// uses it: values, versions, conditions and errors all cross the wire.
func Example() {
	ctx := context.Background()
	b, err := pluginapi.ServeInProcess(ctx, memory.Open)
	if err != nil {
		panic(err)
	}
	defer b.Close()
	if err := b.Open(ctx, nil); err != nil {
		panic(err)
	}

	e, _ := b.Put(ctx, kv.PutRequest{Key: "lock/leader", Value: []byte("node-1"), Cond: kv.IfAbsent()})
	_, err = b.Put(ctx, kv.PutRequest{Key: "lock/leader", Value: []byte("node-2"), Cond: kv.IfAbsent()})

	var conflict *kv.ConflictError
	if errors.As(err, &conflict) {
		fmt.Println("lock held at version", conflict.CurrentVersion == e.Version)
	}
	g, _ := b.Get(ctx, "lock/follower")
	fmt.Println("found:", g.Found, "at the lock's revision:", g.Revision == e.Version)

	c, _ := b.Increment(ctx, "counter/requests", 5)
	fmt.Println("counter:", c.Value)
	// Output:
	// lock held at version true
	// found: false at the lock's revision: true
	// counter: 5
}
