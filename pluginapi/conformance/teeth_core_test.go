package conformance_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi"
)

// tooth is a deliberately broken backend: the memory backend with a few
// hooks that break one rule. fails lists the rules whose subtests it must
// fail, and no others.
type tooth struct {
	name  string
	fails []string
	apply func(*broken)
}

// Backends that are not broken: they must pass every rule they claim.
var passing = []tooth{
	{"none", nil, func(*broken) {}},
	{"claims-nothing-and-refuses-it", nil, func(b *broken) {
		b.info = func(ctx context.Context) (kv.Info, error) {
			info, err := b.s.Info(ctx)
			info.Capabilities = kv.Capabilities{}
			return info, err
		}
		b.watch = func(context.Context, kv.WatchRequest) (kv.WatchStream, error) { return nil, kv.ErrNotSupported }
		b.cleanup = func(context.Context, int) (int64, error) { return 0, kv.ErrNotSupported }
	}},
	{"claims-watch-without-history-and-refuses-it", nil, func(b *broken) {
		b.info = func(ctx context.Context) (kv.Info, error) {
			info, err := b.s.Info(ctx)
			info.Capabilities.WatchHistory = false
			return info, err
		}
		b.watch = func(ctx context.Context, req kv.WatchRequest) (kv.WatchStream, error) {
			if req.StartRevision > 0 {
				return nil, fmt.Errorf("%w: watch history", kv.ErrNotSupported)
			}
			return b.s.Watch(ctx, req)
		}
	}},
}

var coreTeeth = []tooth{
	{"speaks-protocol-1", []string{"core/info-names-the-backend-its-protocol-and-what-it-implements"}, func(b *broken) {
		b.info = func(ctx context.Context) (kv.Info, error) {
			info, err := b.s.Info(ctx)
			info.ProtocolVersion = 1
			return info, err
		}
	}},
	{"keys-limited-to-255-bytes", []string{"core/keys-of-1-to-1024-bytes-of-utf8-round-trip"}, func(b *broken) {
		b.put = func(ctx context.Context, req kv.PutRequest) (kv.Entry, error) {
			if len(req.Key) > 255 {
				return kv.Entry{}, fmt.Errorf("%w: key longer than the column", kv.ErrInvalidArgument)
			}
			return b.s.Put(ctx, req)
		}
	}},
	{"accepts-bad-keys", []string{"core/invalid-input-is-refused-and-changes-nothing"}, func(b *broken) {
		b.put = func(ctx context.Context, req kv.PutRequest) (kv.Entry, error) {
			if kv.ValidateKey(req.Key) != nil {
				return kv.Entry{Key: req.Key, Version: 1}, nil
			}
			return b.s.Put(ctx, req)
		}
	}},
	{"strips-trailing-zero-bytes", []string{"core/values-are-any-bytes-including-empty"}, func(b *broken) {
		b.put = func(ctx context.Context, req kv.PutRequest) (kv.Entry, error) {
			req.Value = bytes.TrimRight(req.Value, "\x00")
			return b.s.Put(ctx, req)
		}
	}},
	{"values-limited-to-1-mib", []string{"core/values-of-16-mib-are-accepted"}, func(b *broken) {
		b.put = func(ctx context.Context, req kv.PutRequest) (kv.Entry, error) {
			if len(req.Value) > 1<<20 {
				return kv.Entry{}, kv.ErrTooLarge
			}
			return b.s.Put(ctx, req)
		}
	}},
	{"missing-key-reports-no-revision", []string{"core/get-of-a-missing-key-is-found-false-not-an-error", "core/reads-report-the-revision-they-were-served-at"}, func(b *broken) {
		b.get = func(ctx context.Context, key string) (kv.GetResult, error) {
			r, err := b.s.Get(ctx, key)
			if !r.Found {
				r.Revision = 0
			}
			return r, err
		}
	}},
	{"refresh-bumps-the-version", []string{
		"core/versions-are-the-revisions-of-value-changes", "core/each-change-takes-the-next-revision",
		"ttl/refresh-changes-only-the-expiry-and-keeps-the-version", "watch/events-carry-their-revision-version-and-expiry",
		"watch/ttl-events-only-when-asked", "watch-history/replays-from-a-revision-exactly-once-then-continues-live",
	}, func(b *broken) {
		b.refresh = func(ctx context.Context, req kv.RefreshRequest) (kv.RefreshResult, error) {
			r, err := b.s.RefreshTTL(ctx, req)
			if err != nil {
				return r, err
			}
			g, _ := b.s.Get(ctx, req.Key)
			e, err := b.s.Put(ctx, kv.PutRequest{Key: req.Key, Value: g.Entry.Value, TTL: req.TTL})
			return kv.RefreshResult{Entry: e, Revision: e.Version}, err
		}
	}},
	{"reuses-versions-of-deleted-keys", []string{"core/a-recreated-key-never-reuses-a-version"}, func(b *broken) {
		deleted := map[string]int64{}
		b.delete = func(ctx context.Context, key string, cond kv.Condition) (kv.DeleteResult, error) {
			if r, err := b.s.Get(ctx, key); err == nil && r.Found {
				b.mu.Lock()
				deleted[key] = r.Entry.Version
				b.mu.Unlock()
			}
			return b.s.Delete(ctx, key, cond)
		}
		b.put = func(ctx context.Context, req kv.PutRequest) (kv.Entry, error) {
			e, err := b.s.Put(ctx, req)
			b.mu.Lock()
			defer b.mu.Unlock()
			if v, ok := deleted[req.Key]; ok && err == nil {
				e.Version = v
			}
			return e, err
		}
	}},
	{"skips-a-revision-after-a-delete", []string{"core/each-change-takes-the-next-revision"}, func(b *broken) {
		b.delete = func(ctx context.Context, key string, cond kv.Condition) (kv.DeleteResult, error) {
			r, err := b.s.Delete(ctx, key, cond)
			if err == nil && r.Deleted {
				b.burn(ctx)
			}
			return r, err
		}
	}},
	{"batch-ops-share-one-revision", []string{
		"core/each-change-takes-the-next-revision", "watch/delivers-every-change-under-its-prefix-once-in-order",
		"watch/a-slow-watcher-ends-with-overflow-and-never-blocks-writers",
	}, func(b *broken) {
		b.batch = func(ctx context.Context, ops []kv.Op) (kv.BatchResult, error) {
			r, err := b.s.Batch(ctx, ops)
			for i := range r.Results {
				if r.Results[i].Revision != 0 {
					r.Results[i].Revision = r.Revision
				}
			}
			return r, err
		}
	}},
	{"a-failed-batch-takes-revisions", []string{"core/a-write-that-changes-nothing-takes-no-revision"}, func(b *broken) {
		b.batch = func(ctx context.Context, ops []kv.Op) (kv.BatchResult, error) {
			r, err := b.s.Batch(ctx, ops)
			if errors.Is(err, kv.ErrConflict) {
				b.burn(ctx)
			}
			return r, err
		}
	}},
	{"list-reports-the-revision-before", []string{"core/reads-report-the-revision-they-were-served-at", "watch-history/list-then-watch-from-its-revision-plus-one-has-no-gap-or-repeat"}, func(b *broken) {
		b.list = func(ctx context.Context, req kv.ListRequest) (kv.ListResult, error) {
			r, err := b.s.List(ctx, req)
			r.Revision--
			return r, err
		}
	}},
	{"if-version-of-a-missing-key-creates-it", []string{"core/put-conditions-if-absent-and-if-version", "ttl/an-expired-key-is-invisible-to-every-operation"}, func(b *broken) {
		b.put = func(ctx context.Context, req kv.PutRequest) (kv.Entry, error) {
			e, err := b.s.Put(ctx, req)
			var ce *kv.ConflictError
			if errors.As(err, &ce) && ce.CurrentVersion == 0 && req.Cond.Kind == kv.CondVersion {
				req.Cond = kv.Condition{}
				return b.s.Put(ctx, req)
			}
			return e, err
		}
	}},
	{"if-version-delete-of-a-missing-key-succeeds", []string{"core/delete-of-a-missing-key-is-not-an-error-unless-it-names-a-version"}, func(b *broken) {
		b.delete = func(ctx context.Context, key string, cond kv.Condition) (kv.DeleteResult, error) {
			r, err := b.s.Delete(ctx, key, cond)
			var ce *kv.ConflictError
			if errors.As(err, &ce) && ce.CurrentVersion == 0 {
				return kv.DeleteResult{Revision: b.head(ctx)}, nil
			}
			return r, err
		}
	}},
	{"get-many-sorts-by-key", []string{"core/get-many-answers-in-request-order-with-nil-for-missing"}, func(b *broken) {
		b.getMany = func(ctx context.Context, keys []string) (kv.GetManyResult, error) {
			return b.s.GetMany(ctx, slices.Sorted(slices.Values(keys)))
		}
	}},
	{"get-many-drops-answers-past-100", []string{"core/get-many-answers-every-key-of-a-full-request"}, func(b *broken) {
		b.getMany = func(ctx context.Context, keys []string) (kv.GetManyResult, error) {
			r, err := b.s.GetMany(ctx, keys)
			for i := 100; i < len(r.Entries); i++ {
				r.Entries[i] = nil
			}
			return r, err
		}
	}},
	{"list-sorts-ignoring-case", []string{"core/list-walks-keys-in-byte-order-a-page-at-a-time"}, func(b *broken) {
		b.list = func(ctx context.Context, req kv.ListRequest) (kv.ListResult, error) {
			r, err := b.s.List(ctx, req)
			slices.SortStableFunc(r.Entries, func(x, y kv.Entry) int { return strings.Compare(strings.ToLower(x.Key), strings.ToLower(y.Key)) })
			return r, err
		}
	}},
	{"list-ignores-max-bytes", []string{"core/list-pages-are-bounded-by-bytes"}, func(b *broken) {
		b.list = func(ctx context.Context, req kv.ListRequest) (kv.ListResult, error) {
			req.MaxBytes = kv.MaxListBytes
			return b.s.List(ctx, req)
		}
	}},
	{"list-limit-uncapped", []string{"core/list-limit-defaults-to-1000-and-is-capped-at-10000"}, func(b *broken) {
		b.list = func(ctx context.Context, req kv.ListRequest) (kv.ListResult, error) {
			want := req.Limit
			out, err := b.s.List(ctx, req)
			for err == nil && out.More && len(out.Entries) < want {
				req.StartAfter, req.Limit = out.Entries[len(out.Entries)-1].Key, want-len(out.Entries)
				var more kv.ListResult
				more, err = b.s.List(ctx, req)
				out.Entries, out.More = append(out.Entries, more.Entries...), more.More
			}
			return out, err
		}
	}},
	{"underscore-is-a-wildcard", []string{"core/prefixes-are-literal"}, func(b *broken) {
		b.list = func(ctx context.Context, req kv.ListRequest) (kv.ListResult, error) {
			return likeList(ctx, b, req)
		}
		b.count = func(ctx context.Context, prefix string) (kv.CountResult, error) {
			r, err := likeList(ctx, b, kv.ListRequest{Prefix: prefix, Limit: kv.MaxListLimit, KeysOnly: true})
			return kv.CountResult{Count: int64(len(r.Entries)), Revision: r.Revision}, err
		}
	}},
	{"prefix-excludes-the-key-equal-to-it", []string{"core/a-prefix-matches-the-key-equal-to-it", "core/list-walks-keys-in-byte-order-a-page-at-a-time", "core/prefixes-are-literal", "core/a-prefix-may-end-in-any-code-point"}, func(b *broken) {
		b.list = func(ctx context.Context, req kv.ListRequest) (kv.ListResult, error) {
			r, err := b.s.List(ctx, req)
			r.Entries = slices.DeleteFunc(r.Entries, func(e kv.Entry) bool { return e.Key == req.Prefix })
			return r, err
		}
	}},
	// PostgreSQL's first version bound a prefix's range by its last byte
	// plus one, and refused the bound as text when that was not UTF-8.
	{"prefix-bound-must-be-utf8", []string{"core/a-prefix-may-end-in-any-code-point"}, func(b *broken) {
		bound := func(prefix string) error {
			if !utf8.ValidString(kv.PrefixEnd(prefix)) {
				return fmt.Errorf("%w: invalid byte sequence for encoding \"UTF8\" in the range of %q", kv.ErrInvalidArgument, prefix)
			}
			return nil
		}
		b.list = func(ctx context.Context, req kv.ListRequest) (kv.ListResult, error) {
			if err := bound(req.Prefix); err != nil {
				return kv.ListResult{}, err
			}
			return b.s.List(ctx, req)
		}
		b.count = func(ctx context.Context, prefix string) (kv.CountResult, error) {
			if err := bound(prefix); err != nil {
				return kv.CountResult{}, err
			}
			return b.s.Count(ctx, prefix)
		}
		b.deletePrefix = func(ctx context.Context, prefix string) (kv.DeletePrefixResult, error) {
			if err := bound(prefix); err != nil {
				return kv.DeletePrefixResult{}, err
			}
			return b.s.DeletePrefix(ctx, prefix)
		}
	}},
	// A packed page that leaves out the entry at a byte budget's edge,
	// which only the wire's form would show.
	{"packed-page-drops-its-last-entry", []string{"core/a-packed-page-is-the-list-page"}, func(b *broken) {
		b.listPacked = func(ctx context.Context, req kv.ListRequest, page *pluginapi.PackedPage) (kv.ListResult, error) {
			res, err := b.s.List(ctx, req)
			if req.MaxBytes > 0 && len(res.Entries) > 1 {
				res.Entries = res.Entries[:len(res.Entries)-1]
			}
			for _, e := range res.Entries {
				page.AppendString(e.Key, e.Value, e.Version, kv.UnixMillis(e.ExpiresAt))
			}
			res.Entries = nil
			return res, err
		}
	}},
	{"delete-prefix-reports-none-deleted", []string{
		"core/count-and-delete-prefix-cover-exactly-the-prefix", "core/a-prefix-matches-the-key-equal-to-it", "core/prefixes-are-literal",
		"core/each-change-takes-the-next-revision", "watch/delete-prefix-sends-one-event-per-key-in-key-order", "core/a-prefix-may-end-in-any-code-point",
	}, func(b *broken) {
		b.deletePrefix = func(ctx context.Context, prefix string) (kv.DeletePrefixResult, error) {
			r, err := b.s.DeletePrefix(ctx, prefix)
			r.Deleted = 0
			return r, err
		}
	}},
	{"increment-treats-garbage-as-zero", []string{"core/increment-adds-to-a-decimal-counter", "core/a-write-that-changes-nothing-takes-no-revision", "watch/failed-writes-publish-nothing"}, func(b *broken) {
		b.increment = func(ctx context.Context, key string, delta int64) (kv.Counter, error) {
			if g, err := b.s.Get(ctx, key); err == nil && g.Found {
				if _, perr := strconv.ParseInt(string(g.Entry.Value), 10, 64); perr != nil {
					if _, err := b.s.Put(ctx, kv.PutRequest{Key: key, Value: []byte("0")}); err != nil {
						return kv.Counter{}, err
					}
				}
			}
			return b.s.Increment(ctx, key, delta)
		}
	}},
	{"batch-checks-if-absent-against-the-store-before-the-batch", []string{"core/batch-ops-apply-in-order"}, func(b *broken) {
		b.batch = func(ctx context.Context, ops []kv.Op) (kv.BatchResult, error) {
			for i, op := range ops {
				if g, _ := b.s.Get(ctx, op.Key); op.Cond.Kind == kv.CondAbsent && g.Found {
					return kv.BatchResult{}, &kv.ConflictError{Key: op.Key, CurrentVersion: g.Entry.Version, OpIndex: i}
				}
			}
			return b.s.Batch(ctx, ops)
		}
	}},
	{"half-a-failed-batch-stays-applied", []string{
		"core/a-failed-batch-applies-nothing", "core/a-batch-conflict-names-the-op-and-the-version-after-earlier-ops",
		"core/a-write-that-changes-nothing-takes-no-revision", "watch/failed-writes-publish-nothing",
	}, func(b *broken) {
		b.batch = func(ctx context.Context, ops []kv.Op) (kv.BatchResult, error) {
			out := kv.BatchResult{Results: make([]kv.OpResult, len(ops))}
			if err := kv.ValidateBatch(ops); err != nil {
				return kv.BatchResult{}, err
			}
			for i, op := range ops {
				res, err := b.s.Batch(ctx, []kv.Op{op})
				if err != nil {
					var ce *kv.ConflictError
					if errors.As(err, &ce) {
						ce.OpIndex = i
					}
					return kv.BatchResult{}, err
				}
				out.Results[i], out.Revision = res.Results[0], res.Revision
			}
			return out, nil
		}
	}},
	{"batch-conflict-reports-the-stored-version", []string{"core/a-batch-conflict-names-the-op-and-the-version-after-earlier-ops"}, func(b *broken) {
		b.batch = func(ctx context.Context, ops []kv.Op) (kv.BatchResult, error) {
			r, err := b.s.Batch(ctx, ops)
			var ce *kv.ConflictError
			if errors.As(err, &ce) {
				g, _ := b.s.Get(ctx, ce.Key)
				ce.CurrentVersion = g.Entry.Version
			}
			return r, err
		}
	}},
	{"batch-conflict-names-op-0", []string{"core/a-batch-conflict-names-the-op-and-the-version-after-earlier-ops"}, func(b *broken) {
		b.batch = func(ctx context.Context, ops []kv.Op) (kv.BatchResult, error) {
			r, err := b.s.Batch(ctx, ops)
			var ce *kv.ConflictError
			if errors.As(err, &ce) {
				ce.OpIndex = 0
			}
			return r, err
		}
	}},
	{"stats-count-a-metadata-row", []string{"core/stats-count-live-keys-and-their-bytes"}, func(b *broken) {
		b.stats = func(ctx context.Context) (kv.Stats, error) {
			st, err := b.s.Stats(ctx)
			st.Keys++
			return st, err
		}
	}},
	{"increment-reads-then-writes", []string{"core/concurrent-increments-lose-no-update"}, func(b *broken) {
		// Many increments race: a rival is nearly always there, and one
		// lost update is enough, so a lone caller waits only briefly.
		hold := rivalWindow(10 * time.Millisecond)
		b.increment = func(ctx context.Context, key string, delta int64) (kv.Counter, error) {
			g, err := b.s.Get(ctx, key)
			if err != nil || (g.Found && !g.Entry.ExpiresAt.IsZero()) {
				return b.s.Increment(ctx, key, delta) // only keys without a TTL race
			}
			var n int64
			if g.Found {
				if n, err = kv.ParseCounter(key, g.Entry.Value); err != nil {
					return kv.Counter{}, err
				}
			}
			if n, err = kv.AddCounter(key, n, delta); err != nil {
				return kv.Counter{}, err
			}
			defer hold(key)()
			e, err := b.s.Put(ctx, kv.PutRequest{Key: key, Value: []byte(strconv.FormatInt(n, 10))})
			return kv.Counter{Value: n, Version: e.Version}, err
		}
	}},
	{"if-absent-reads-then-writes", []string{"core/concurrent-put-if-absent-has-one-winner"}, func(b *broken) {
		b.put = racyPut(b, kv.CondAbsent)
	}},
	{"if-version-reads-then-writes", []string{"core/concurrent-compare-and-set-on-one-version-has-one-winner"}, func(b *broken) {
		b.put = racyPut(b, kv.CondVersion)
	}},
}

// racyPut checks a condition of the given kind with a read and then writes
// without it: the race every compare-and-set outside a transaction has.
func racyPut(b *broken, kind kv.CondKind) func(context.Context, kv.PutRequest) (kv.Entry, error) {
	hold := rivalWindow(time.Second)
	return func(ctx context.Context, req kv.PutRequest) (kv.Entry, error) {
		if req.Cond.Kind != kind || kv.ValidatePut(req) != nil {
			return b.s.Put(ctx, req)
		}
		g, err := b.s.Get(ctx, req.Key)
		if err != nil {
			return kv.Entry{}, err
		}
		if (kind == kv.CondAbsent && g.Found) || (kind == kv.CondVersion && g.Entry.Version != req.Cond.Version) {
			return kv.Entry{}, kv.Conflict(req.Key, g.Entry.Version)
		}
		defer hold(req.Key)()
		req.Cond = kv.Condition{}
		return b.s.Put(ctx, req)
	}
}

// rivalWindow returns hold, which a racy read-then-write calls between
// its read and its write: it holds that window open until a second caller
// on the key has read too, as the race does on a machine that schedules
// the racers together (a fixed short sleep let a loaded machine run them
// one after another and hid the bug), and returns what closes the window
// once the write is done. A caller with no rival goes on after patience.
func rivalWindow(patience time.Duration) (hold func(key string) (done func())) {
	var (
		mu     sync.Mutex
		window = map[string]int{} // callers between their read and their write, by key
	)
	inWindow := func(key string, delta int) int {
		mu.Lock()
		defer mu.Unlock()
		window[key] += delta
		return window[key]
	}
	return func(key string) func() {
		inWindow(key, 1)
		for end := time.Now().Add(patience); inWindow(key, 0) < 2 && time.Now().Before(end); {
			time.Sleep(100 * time.Microsecond) // polling the other racer's arrival
		}
		return func() { inWindow(key, -1) }
	}
}

// likeList lists as an unescaped SQL LIKE 'prefix%' would: '_' matches
// any one character.
func likeList(ctx context.Context, b *broken, req kv.ListRequest) (kv.ListResult, error) {
	req, err := kv.NormalizeList(req)
	if err != nil {
		return kv.ListResult{}, err
	}
	out := kv.ListResult{}
	page := kv.ListRequest{StartAfter: req.StartAfter, Limit: kv.MaxListLimit, KeysOnly: req.KeysOnly, MaxBytes: kv.MaxListBytes}
	size := 0
	for {
		all, err := b.s.List(ctx, page)
		if err != nil {
			return all, err
		}
		out.Revision = all.Revision
		for _, e := range all.Entries {
			if !likePrefix(e.Key, req.Prefix) {
				continue
			}
			next := req.EntrySize(e.Key, e.Value)
			if req.PageFull(len(out.Entries), size, next) {
				out.More = true
				return out, nil
			}
			size += next
			out.Entries = append(out.Entries, e)
		}
		if !all.More {
			return out, nil
		}
		page.StartAfter = all.Entries[len(all.Entries)-1].Key
	}
}

func likePrefix(key, prefix string) bool {
	k, p := []rune(key), []rune(prefix)
	if len(k) < len(p) {
		return false
	}
	for i := range p {
		if p[i] != '_' && p[i] != k[i] {
			return false
		}
	}
	return true
}
