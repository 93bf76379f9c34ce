package memory_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kvhost/kvhost/internal/testbin"
	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi/conformance"
	"github.com/kvhost/kvhost/plugins/memory"
)

// retention is the history the stores under test keep: small, so that the
// suite can force compaction quickly.
const retention = 500

func settings(testing.TB) map[string]string {
	return map[string]string{"history": strconv.Itoa(retention)}
}

func TestConformance(t *testing.T) {
	conformance.Run(t, func(testing.TB) kv.Backend { return memory.New(memory.WithHistory(retention)) },
		conformance.WithRetention(retention))
}

func TestConformanceGRPC(t *testing.T) {
	conformance.RunGRPC(t, memory.Open, settings, conformance.WithRetention(retention))
}

func TestConformancePlugin(t *testing.T) {
	conformance.RunPlugin(t, testbin.Plugin(t, "memory"), settings, conformance.WithRetention(retention))
}

// TestConformanceSharedStore runs the suite the way a backend on a shared
// database server runs it: every subtest gets a handle to one store that
// holds keys of others, outside the suite's namespace.
func TestConformanceSharedStore(t *testing.T) {
	store := memory.New(memory.WithHistory(retention))
	foreign := []string{"foreign", "suite", "suite0", "suitf/x"}
	for _, k := range foreign {
		if _, err := store.Put(t.Context(), kv.PutRequest{Key: k, Value: []byte("not the suite's")}); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { // after every subtest
		for _, k := range foreign {
			if r, err := store.Get(t.Context(), k); err != nil || !r.Found {
				t.Errorf("the suite touched %q outside its namespace: %+v %v", k, r, err)
			}
		}
		if n, err := store.Count(t.Context(), "suite/"); err != nil || n.Count != 0 {
			t.Errorf("the suite left %d keys in its namespace (%v)", n.Count, err)
		}
		_ = store.Close()
	})
	conformance.Run(t, func(testing.TB) kv.Backend { return handle{store} },
		conformance.WithNamespace("suite/"), conformance.WithRetention(retention))
}

// handle shares the store: closing it leaves the store open.
type handle struct{ *memory.Store }

func (handle) Close() error { return nil }

// A store's revisions start at the clock, so that a restarted memory
// process never numbers a change with a revision an earlier process used
// (host.TestResumeAcrossAMemoryPluginRestartIsCompacted checks the
// restart itself); revision_base sets the start.
func TestRevisionBase(t *testing.T) {
	ctx := t.Context()
	firstRevision := func(settings map[string]string) int64 {
		t.Helper()
		b, err := memory.Open(ctx, settings)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if _, err := b.Put(ctx, kv.PutRequest{Key: "k", Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
		st, err := b.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st.Revision
	}
	before := time.Now().UnixMicro()
	if rev := firstRevision(nil); rev <= before {
		t.Errorf("the first change of a store made at %d µs is revision %d: not numbered from the clock", before, rev)
	}
	if rev := firstRevision(map[string]string{"revision_base": "0"}); rev != 1 {
		t.Errorf("revision_base 0: first change is revision %d, want 1", rev)
	}
	if rev := firstRevision(map[string]string{"revision_base": "41"}); rev != 42 {
		t.Errorf("revision_base 41: first change is revision %d, want 42", rev)
	}
	for _, bad := range []string{"-1", "x", "1.5", ""} {
		_, err := memory.Open(ctx, map[string]string{"revision_base": bad})
		if !errors.Is(err, kv.ErrInvalidArgument) || !strings.Contains(err.Error(), "revision_base") {
			t.Errorf("revision_base %q: %v, want an invalid-argument error naming the setting", bad, err)
		}
	}
}
