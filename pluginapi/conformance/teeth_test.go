package conformance_test

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi/conformance"
	"github.com/kvhost/kvhost/plugins/memory"
)

// The suite must have teeth: each deliberately broken backend below fails
// the subtest that guards the rule it breaks, and the unbroken one passes.
// Each runs in a child test process so that its failures are observed, not
// suffered.
func TestSuiteHasTeeth(t *testing.T) {
	cases := []struct {
		broken   string
		wantFail []string
	}{
		{"none", nil},
		{"ignores-ttl", []string{"TTL", "TTLInvisibleEverywhere"}},
		{"reuses-versions", []string{"NoABA"}},
		{"underscore-wildcard", []string{"LiteralPrefixes"}},
		{"half-batch", []string{"BatchAtomic"}},
		{"drops-events", []string{"Watch"}},
		{"ignores-cleanup-limit", []string{"CleanupExpired"}},
	}
	for _, tc := range cases {
		t.Run(tc.broken, func(t *testing.T) {
			t.Parallel()
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run", "^TestBrokenBackend$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), "KVHOST_BROKEN="+tc.broken)
			out, err := cmd.CombinedOutput()
			if tc.wantFail == nil {
				if err != nil {
					t.Fatalf("the unbroken backend failed the suite: %v\n%s", err, out)
				}
				return
			}
			if err == nil {
				t.Fatalf("backend that %s passed the suite\n%s", tc.broken, out)
			}
			for _, name := range tc.wantFail {
				if !strings.Contains(string(out), "--- FAIL: TestBrokenBackend/"+name+" ") {
					t.Errorf("backend that %s did not fail subtest %s\n%s", tc.broken, name, out)
				}
			}
		})
	}
}

// TestBrokenBackend is the child of TestSuiteHasTeeth.
func TestBrokenBackend(t *testing.T) {
	broken := os.Getenv("KVHOST_BROKEN")
	if broken == "" {
		t.Skip("runs only as the child process of TestSuiteHasTeeth")
	}
	conformance.Run(t, func(testing.TB) kv.Backend {
		return &brokenBackend{Backend: memory.New(), how: broken, deleted: map[string]int64{}}
	})
}

// brokenBackend breaks one rule of the contract on top of a correct backend.
type brokenBackend struct {
	kv.Backend
	how     string
	deleted map[string]int64 // for reuses-versions (tests use it from one goroutine where it matters)
}

func (b *brokenBackend) Put(ctx context.Context, req kv.PutRequest) (kv.Entry, error) {
	switch b.how {
	case "ignores-ttl":
		req.TTL = 0
	case "reuses-versions":
		e, err := b.Backend.Put(ctx, req)
		if v, ok := b.deleted[req.Key]; ok && err == nil {
			e.Version = v
		}
		return e, err
	}
	return b.Backend.Put(ctx, req)
}

func (b *brokenBackend) Delete(ctx context.Context, key string, cond kv.Condition) (kv.DeleteResult, error) {
	if b.how == "reuses-versions" {
		if r, err := b.Backend.Get(ctx, key); err == nil && r.Found {
			b.deleted[key] = r.Entry.Version
		}
	}
	return b.Backend.Delete(ctx, key, cond)
}

// like turns a prefix into the pattern an unescaped SQL LIKE 'prefix%' is.
func like(prefix string) *regexp.Regexp {
	var sb strings.Builder
	sb.WriteString("^")
	for _, r := range prefix {
		switch r {
		case '_':
			sb.WriteString(".")
		case '%':
			sb.WriteString(".*")
		default:
			sb.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	return regexp.MustCompile(sb.String())
}

func (b *brokenBackend) List(ctx context.Context, req kv.ListRequest) (kv.ListResult, error) {
	if b.how != "underscore-wildcard" {
		return b.Backend.List(ctx, req)
	}
	all, err := b.Backend.List(ctx, kv.ListRequest{StartAfter: req.StartAfter, Limit: kv.MaxListLimit, KeysOnly: req.KeysOnly})
	if err != nil {
		return all, err
	}
	out := kv.ListResult{Revision: all.Revision}
	re := like(req.Prefix)
	for _, e := range all.Entries {
		if re.MatchString(e.Key) {
			out.Entries = append(out.Entries, e)
		}
	}
	return out, nil
}

func (b *brokenBackend) Count(ctx context.Context, prefix string) (kv.CountResult, error) {
	if b.how != "underscore-wildcard" {
		return b.Backend.Count(ctx, prefix)
	}
	res, err := b.List(ctx, kv.ListRequest{Prefix: prefix, KeysOnly: true})
	return kv.CountResult{Count: int64(len(res.Entries)), Revision: res.Revision}, err
}

func (b *brokenBackend) Batch(ctx context.Context, ops []kv.Op) (kv.BatchResult, error) {
	if b.how != "half-batch" {
		return b.Backend.Batch(ctx, ops)
	}
	out := kv.BatchResult{Results: make([]kv.OpResult, len(ops))}
	for i, op := range ops {
		res, err := b.Backend.Batch(ctx, []kv.Op{op})
		if err != nil {
			return kv.BatchResult{}, err
		}
		out.Results[i] = res.Results[0]
		out.Revision = res.Revision
	}
	return out, nil
}

// The broken backend keeps the memory backend's watch and cleanup, so the
// suite's watch and cleanup tests run against it too.

func (b *brokenBackend) Watch(ctx context.Context, req kv.WatchRequest) (kv.WatchStream, error) {
	ws, err := b.Backend.(kv.Watcher).Watch(ctx, req)
	if err != nil || b.how != "drops-events" {
		return ws, err
	}
	return &droppingStream{WatchStream: ws}, nil
}

func (b *brokenBackend) CleanupExpired(ctx context.Context, limit int) (int64, error) {
	if b.how == "ignores-cleanup-limit" {
		limit = 0 // removes everything expired in one go
	}
	return b.Backend.(kv.Expirer).CleanupExpired(ctx, limit)
}

// droppingStream loses every third event: the kind of bug a watch
// implementation with a lossy buffer has.
type droppingStream struct {
	kv.WatchStream
	n int
}

func (d *droppingStream) Recv() (kv.Event, error) {
	for {
		ev, err := d.WatchStream.Recv()
		if err != nil {
			return ev, err
		}
		d.n++
		if d.n%3 != 0 {
			return ev, nil
		}
	}
}
