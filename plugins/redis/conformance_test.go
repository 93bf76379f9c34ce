package redis

import (
	"context"
	"regexp"
	"testing"

	"github.com/kvhost/kvhost/internal/testbin"
	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi/conformance"
)

// retention is the history the stores under test keep: the default. The
// compaction rule writes more than that; the overflow rule writes 60 000
// events that the follower must read before Redis trims them, which a
// loaded machine could fail to do against a smaller history (the watch
// would then rightly end compacted, not overflowed).
const retention = DefaultHistory

// Every subtest gets a store of its own: its own key prefix on the test
// Redis, removed when the subtest ends.
func TestConformance(t *testing.T) {
	addr := testAddr(t)
	conformance.Run(t, func(t testing.TB) kv.Backend {
		return newTestStore(t, addr, Config{History: retention})
	}, conformance.WithRetention(retention))
}

func TestConformanceGRPC(t *testing.T) {
	addr := testAddr(t)
	conformance.RunGRPC(t, Open, testSettings(addr, retention), conformance.WithRetention(retention))
}

func TestConformancePlugin(t *testing.T) {
	addr := testAddr(t)
	conformance.RunPlugin(t, testbin.Plugin(t, "redis"), testSettings(addr, retention), conformance.WithRetention(retention))
}

// TestConformanceSharedStore runs the suite as hosts share a store: every
// subtest opens its own Store (its own connections and follower) on one
// key prefix, which holds keys of others outside the suite's namespace.
func TestConformanceSharedStore(t *testing.T) {
	addr := testAddr(t)
	prefix := testPrefix(t, addr)
	owner := newTestStore(t, addr, Config{KeyPrefix: prefix, History: retention})
	foreign := []string{"foreign", "suite", "suite0", "suitf/x"}
	ctx := context.Background()
	for _, k := range foreign {
		if _, err := owner.Put(ctx, kv.PutRequest{Key: k, Value: []byte("not the suite's")}); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { // after every subtest
		for _, k := range foreign {
			if r, err := owner.Get(ctx, k); err != nil || !r.Found {
				t.Errorf("the suite touched %q outside its namespace: %+v %v", k, r, err)
			}
		}
		if n, err := owner.Count(ctx, "suite/"); err != nil || n.Count != 0 {
			t.Errorf("the suite left %d keys in its namespace (%v)", n.Count, err)
		}
	})
	conformance.Run(t, func(t testing.TB) kv.Backend {
		return newTestStore(t, addr, Config{KeyPrefix: prefix, History: retention})
	}, conformance.WithNamespace("suite/"), conformance.WithRetention(retention))
}

// TestConformanceScriptedLists runs the rules that list with every page
// read by the script, the path List takes when writers keep aborting its
// watched reads.
func TestConformanceScriptedLists(t *testing.T) {
	addr := testAddr(t)
	conformance.Run(t, func(t testing.TB) kv.Backend {
		return newTestStore(t, addr, Config{History: retention, scriptedLists: true})
	}, conformance.WithRetention(retention), conformance.WithFilter(regexp.MustCompile(`list|prefix|invisible|reads-report|expire`)))
}

// TestConformanceScriptedBatches runs the rules that write batches with
// every batch applied by the script, the path Batch takes when writers
// keep aborting its watched tries or the batch involves expiries.
func TestConformanceScriptedBatches(t *testing.T) {
	addr := testAddr(t)
	conformance.Run(t, func(t testing.TB) kv.Backend {
		return newTestStore(t, addr, Config{History: retention, scriptedBatches: true})
	}, conformance.WithRetention(retention), conformance.WithFilter(regexp.MustCompile(`batch|revision|ttl|expire|watch`)))
}
