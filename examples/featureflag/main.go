// Command featureflag hot-reloads a feature flag from a kvhost server: it
// mirrors the keys under flags/ and prints the flag's state whenever it
// changes, without restarting and without asking the server on each read.
//
//	go run ./examples/featureflag &
//	kvhost put flags/new-checkout on
//	kvhost put flags/new-checkout off
//
// The address and token come from KVHOST_ADDR and KVHOST_TOKEN, as for
// the kvhost command.
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"

	"github.com/kvhost/kvhost/client"
	"github.com/kvhost/kvhost/client/mirror"
	"github.com/kvhost/kvhost/kv"
)

const flag = "flags/new-checkout"

func main() {
	addr := os.Getenv("KVHOST_ADDR")
	if addr == "" {
		addr = client.DefaultAddr
	}
	c, err := client.New(addr, client.WithToken(os.Getenv("KVHOST_TOKEN")))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	m := mirror.New(c, "flags/", mirror.OnChange(func(evs []kv.Event) {
		for _, ev := range evs {
			if ev.Key == flag {
				fmt.Printf("revision %d: %s is %s\n", ev.Revision, flag, state(ev))
			}
		}
	}))
	go func() {
		if err := m.Wait(ctx, 0); err == nil {
			if _, ok := m.Get(flag); !ok {
				fmt.Printf("revision %d: %s is not set (off)\n", m.Revision(), flag)
			}
		}
	}()
	if err := m.Run(ctx); err != nil && ctx.Err() == nil {
		log.Fatal(err)
	}
}

// state is what an event leaves the flag at.
func state(ev kv.Event) string {
	switch ev.Type {
	case kv.EventPut:
		return string(ev.Value)
	case kv.EventTTL:
		return "unchanged (its expiry moved)"
	}
	return "removed (off)"
}
