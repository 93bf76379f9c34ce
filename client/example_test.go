package client_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kvhost/kvhost/client"
)

// A session against a running server (here one that TestMain started;
// yours is at client.DefaultAddr after `kvhost serve`): store, read,
// compare-and-set, and the errors a caller tests for.
func Example() {
	ctx := context.Background()
	c, err := client.New(exampleAddr) // add client.WithToken(...) where the server wants one
	if err != nil {
		panic(err)
	}
	defer c.Close()

	e, err := c.Put(ctx, "lock/leader", []byte("node-1"), client.IfAbsent(), client.WithTTL(time.Minute))
	if err != nil {
		panic(err)
	}
	got, _ := c.Get(ctx, "lock/leader")
	fmt.Printf("%s holds the lock\n", got.Value)

	_, err = c.Put(ctx, "lock/leader", []byte("node-2"), client.IfAbsent())
	var conflict *client.ConflictError
	if errors.As(err, &conflict) {
		fmt.Println("node-2 lost: the lock is at the holder's version:", conflict.CurrentVersion == e.Version)
	}

	_, err = c.Get(ctx, "lock/follower")
	fmt.Println("not found:", errors.Is(err, client.ErrNotFound))

	// Releasing only our own lock: a delete at the version we wrote.
	deleted, _ := c.Delete(ctx, "lock/leader", client.IfVersion(e.Version))
	fmt.Println("released:", deleted)
	// Output:
	// node-1 holds the lock
	// node-2 lost: the lock is at the holder's version: true
	// not found: true
	// released: true
}

// Iterating over a prefix: All fetches a page at a time.
func ExampleClient_All() {
	ctx := context.Background()
	c, err := client.New(exampleAddr)
	if err != nil {
		panic(err)
	}
	defer c.Close()
	for _, k := range []string{"fruit/apple", "fruit/fig", "fruit/pear", "veg/leek"} {
		if _, err := c.Put(ctx, k, []byte("1")); err != nil {
			panic(err)
		}
	}

	for e, err := range c.All(ctx, "fruit/", client.Limit(2)) {
		if err != nil {
			panic(err)
		}
		fmt.Println(e.Key)
	}
	// Output:
	// fruit/apple
	// fruit/fig
	// fruit/pear
}

// Watching a prefix: Watch returns once the subscription is live, so a
// write made after it is certain to arrive.
func ExampleClient_Watch() {
	ctx := context.Background()
	c, err := client.New(exampleAddr)
	if err != nil {
		panic(err)
	}
	defer c.Close()

	w, err := c.Watch(ctx, "jobs/")
	if err != nil {
		panic(err)
	}
	defer w.Close()

	if _, err := c.Put(ctx, "jobs/1", []byte("queued")); err != nil {
		panic(err)
	}
	if _, err := c.Delete(ctx, "jobs/1"); err != nil {
		panic(err)
	}
	for range 2 {
		ev, err := w.Recv()
		if err != nil {
			panic(err)
		}
		fmt.Println(ev.Type, ev.Key, string(ev.Value))
	}
	// Output:
	// PUT jobs/1 queued
	// DELETE jobs/1
}
