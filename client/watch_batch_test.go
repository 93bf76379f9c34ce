package client_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/kvhost/kvhost/kv"
)

// Events that come faster than they are sent travel several to a message
// through the plugin protocol and the public API; the watcher still sees
// each exactly once, in commit order.
func TestWatchBurstInOrder(t *testing.T) {
	c := anonymous(t)
	ctx := ctxOf(t)
	ws, err := c.Watch(ctx, "burst/")
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	var versions []int64
	for round := range 3 {
		ops := make([]kv.Op, 1000)
		for i := range ops {
			ops[i] = kv.PutOp(fmt.Sprintf("burst/%d/%04d", round, i), []byte("v"), 0, kv.Condition{})
		}
		res, err := c.Batch(ctx, ops)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			versions = append(versions, r.Version)
		}
	}
	done := make(chan error, 1)
	go func() {
		for i, want := range versions {
			ev, err := ws.Recv()
			if err != nil {
				done <- err
				return
			}
			if ev.Version != want || ev.Type != kv.EventPut {
				done <- fmt.Errorf("event %d: %v v%d, want PUT v%d", i, ev.Type, ev.Version, want)
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the burst did not arrive")
	}
}
