package kit_test

import (
	"context"
	"fmt"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi/kit"
)

// A backend on a store is one call; the store here is the kit's own
// MemStore, where an author passes theirs.
func Example() {
	ctx := context.Background()
	b, err := kit.New(ctx, kit.NewMemStore(), "example", "1.0.0")
	if err != nil {
		panic(err)
	}
	defer b.Close()
	e, _ := b.Put(ctx, kv.PutRequest{Key: "greeting", Value: []byte("hello")})
	_, err = b.Put(ctx, kv.PutRequest{Key: "greeting", Value: []byte("bye"), Cond: kv.IfVersion(e.Version + 1)})
	fmt.Println(err)
	n, _ := b.Increment(ctx, "visits", 2)
	g, _ := b.Get(ctx, "greeting")
	fmt.Printf("%s at version %d; visits %d at revision %d\n", g.Entry.Value, g.Entry.Version, n.Value, g.Revision)
	// Output:
	// example: put "greeting": kvhost: condition failed: key "greeting" is at version 1
	// hello at version 1; visits 2 at revision 2
}
