package kit_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi/conformance"
	"github.com/kvhost/kvhost/pluginapi/kit"
)

// retention is the history the backends under test keep: small, so that
// the suite forces compaction quickly.
const retention = 500

// open is the OpenFunc of a kit backend on a MemStore.
func open(ctx context.Context, settings map[string]string) (kv.Backend, error) {
	opts, err := kit.Settings("kit-memory", settings)
	if err != nil {
		return nil, err
	}
	return kit.New(ctx, kit.NewMemStore(), "kit-memory", "test", opts...)
}

func newBackend(t testing.TB, store kit.Store) kv.Backend {
	t.Helper()
	b, err := kit.New(t.Context(), store, "kit-memory", "test", kit.WithHistory(retention))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConformance(t *testing.T) {
	conformance.Run(t, func(t testing.TB) kv.Backend { return newBackend(t, kit.NewMemStore()) },
		conformance.WithRetention(retention))
}

func TestConformanceGRPC(t *testing.T) {
	conformance.RunGRPC(t, open, func(testing.TB) map[string]string {
		return map[string]string{"history": strconv.Itoa(retention)}
	}, conformance.WithRetention(retention))
}
