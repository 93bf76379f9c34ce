package conformance_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kvhost/kvhost/kv"
)

var ttlTeeth = []tooth{
	{"ttl-truncated-to-whole-seconds", []string{"ttl/expiry-is-the-call-time-plus-the-ttl-rounded-up-to-a-millisecond"}, func(b *broken) {
		ttls(b, func(d time.Duration) time.Duration { return max(time.Second, d.Truncate(time.Second)) })
	}},
	{"ttl-rounded-up-to-whole-seconds", []string{"ttl/expiry-is-the-call-time-plus-the-ttl-rounded-up-to-a-millisecond"}, func(b *broken) {
		ttls(b, func(d time.Duration) time.Duration { return (d + time.Second - 1).Truncate(time.Second) })
	}},
	{"sub-millisecond-ttl-means-never", []string{"ttl/a-key-with-a-ttl-expires-and-one-without-does-not", "ttl/expiry-is-the-call-time-plus-the-ttl-rounded-up-to-a-millisecond"}, func(b *broken) {
		ttls(b, func(d time.Duration) time.Duration { return d.Truncate(time.Millisecond) })
	}},
	{"count-includes-expired-keys", []string{"ttl/an-expired-key-is-invisible-to-every-operation"}, func(b *broken) {
		b.put = func(ctx context.Context, req kv.PutRequest) (kv.Entry, error) {
			e, err := b.s.Put(ctx, req)
			if err == nil {
				b.mu.Lock()
				b.expiring[req.Key] = e.ExpiresAt
				b.mu.Unlock()
			}
			return e, err
		}
		b.count = func(ctx context.Context, prefix string) (kv.CountResult, error) {
			r, err := b.s.Count(ctx, prefix)
			b.mu.Lock()
			defer b.mu.Unlock()
			for k, at := range b.expiring {
				if g, _ := b.s.Get(ctx, k); strings.HasPrefix(k, prefix) && !at.IsZero() && time.Now().After(at) && !g.Found {
					r.Count++
				}
			}
			return r, err
		}
	}},
	{"put-keeps-an-earlier-ttl", []string{"ttl/a-put-without-a-ttl-removes-an-earlier-one"}, func(b *broken) {
		b.put = func(ctx context.Context, req kv.PutRequest) (kv.Entry, error) {
			if g, _ := b.s.Get(ctx, req.Key); req.TTL == 0 && g.Found && !g.Entry.ExpiresAt.IsZero() {
				req.TTL = max(time.Until(g.Entry.ExpiresAt), time.Millisecond)
			}
			return b.s.Put(ctx, req)
		}
	}},
	{"refresh-if-version-of-a-missing-key-is-a-conflict", []string{"ttl/refresh-of-a-missing-key-is-not-found-even-with-a-version"}, func(b *broken) {
		b.refresh = func(ctx context.Context, req kv.RefreshRequest) (kv.RefreshResult, error) {
			if g, _ := b.s.Get(ctx, req.Key); !g.Found && req.Cond.Kind == kv.CondVersion {
				return kv.RefreshResult{}, kv.Conflict(req.Key, 0)
			}
			return b.s.RefreshTTL(ctx, req)
		}
	}},
	{"cleanup-ignores-its-limit", []string{"ttl/cleanup-removes-expired-keys-up-to-its-limit-one-revision-each"}, func(b *broken) {
		b.cleanup = func(ctx context.Context, _ int) (int64, error) { return b.s.CleanupExpired(ctx, 0) }
	}},
	{"cleanup-publishes-no-expire-events", []string{"ttl/cleanup-removes-expired-keys-up-to-its-limit-one-revision-each"}, func(b *broken) {
		b.event = func(_ *tapped, ev kv.Event) []kv.Event {
			if ev.Type == kv.EventExpire {
				return nil
			}
			return []kv.Event{ev}
		}
	}},
	{"cleanup-unclaimed-but-answered", []string{"ttl/cleanup-is-refused-when-not-claimed"}, func(b *broken) {
		b.info = func(ctx context.Context) (kv.Info, error) {
			info, err := b.s.Info(ctx)
			info.Capabilities.CleanupExpired = false
			return info, err
		}
	}},
}

// ttls rewrites every TTL a write sets.
func ttls(b *broken, f func(time.Duration) time.Duration) {
	fix := func(d time.Duration) time.Duration {
		if d <= 0 {
			return d
		}
		return f(d)
	}
	b.put = func(ctx context.Context, req kv.PutRequest) (kv.Entry, error) {
		req.TTL = fix(req.TTL)
		return b.s.Put(ctx, req)
	}
	b.batch = func(ctx context.Context, ops []kv.Op) (kv.BatchResult, error) {
		ops = slices.Clone(ops)
		for i := range ops {
			ops[i].TTL = fix(ops[i].TTL)
		}
		return b.s.Batch(ctx, ops)
	}
	b.refresh = func(ctx context.Context, req kv.RefreshRequest) (kv.RefreshResult, error) {
		req.TTL = fix(req.TTL)
		return b.s.RefreshTTL(ctx, req)
	}
}

var watchTeeth = []tooth{
	{"watch-drops-every-third-event", []string{ // every rule that watches
		"watch/delivers-every-change-under-its-prefix-once-in-order", "watch/events-carry-their-revision-version-and-expiry",
		"watch/delete-prefix-sends-one-event-per-key-in-key-order", "watch/a-prefix-matches-the-key-equal-to-it",
		"watch/ttl-events-only-when-asked", "watch/a-slow-watcher-ends-with-overflow-and-never-blocks-writers",
		"watch/an-expired-key-overwritten-before-cleanup-gets-no-expire-event", "ttl/cleanup-removes-expired-keys-up-to-its-limit-one-revision-each",
		"watch-history/replays-from-a-revision-exactly-once-then-continues-live", "watch-history/list-then-watch-from-its-revision-plus-one-has-no-gap-or-repeat",
		"watch-history/a-compacted-start-fails-with-the-oldest-revision-kept",
	}, func(b *broken) {
		b.event = func(t *tapped, ev kv.Event) []kv.Event {
			if ev.Type != kv.EventProgress && t.seen%3 == 0 {
				return nil
			}
			return []kv.Event{ev}
		}
	}},
	{"events-without-expiry", []string{"watch/events-carry-their-revision-version-and-expiry"}, func(b *broken) {
		b.event = func(_ *tapped, ev kv.Event) []kv.Event {
			ev.ExpiresAt = time.Time{}
			return []kv.Event{ev}
		}
	}},
	{"delete-prefix-in-reverse-key-order", []string{"watch/delete-prefix-sends-one-event-per-key-in-key-order"}, func(b *broken) {
		b.deletePrefix = func(ctx context.Context, prefix string) (kv.DeletePrefixResult, error) {
			if err := kv.ValidateDeletePrefix(prefix); err != nil {
				return kv.DeletePrefixResult{}, err
			}
			l, err := b.s.List(ctx, kv.ListRequest{Prefix: prefix, Limit: kv.MaxListLimit, KeysOnly: true})
			out := kv.DeletePrefixResult{Revision: l.Revision}
			for i := len(l.Entries) - 1; i >= 0 && err == nil; i-- {
				var d kv.DeleteResult
				d, err = b.s.Delete(ctx, l.Entries[i].Key, kv.Condition{})
				out.Deleted, out.Revision = out.Deleted+1, d.Revision
			}
			return out, err
		}
	}},
	{"watch-drops-the-key-equal-to-its-prefix", []string{"watch/a-prefix-matches-the-key-equal-to-it"}, func(b *broken) {
		b.event = func(t *tapped, ev kv.Event) []kv.Event {
			if ev.Key == t.req.Prefix {
				return nil
			}
			return []kv.Event{ev}
		}
	}},
	{"ttl-events-sent-unasked", []string{"watch/ttl-events-only-when-asked", "watch-history/replays-from-a-revision-exactly-once-then-continues-live"}, func(b *broken) {
		b.watch = func(ctx context.Context, req kv.WatchRequest) (kv.WatchStream, error) {
			req.TTLEvents = true
			return b.s.Watch(ctx, req)
		}
	}},
	{"a-failed-batch-publishes-its-earlier-ops", []string{"watch/failed-writes-publish-nothing"}, func(b *broken) {
		b.batch = func(ctx context.Context, ops []kv.Op) (kv.BatchResult, error) {
			r, err := b.s.Batch(ctx, ops)
			var ce *kv.ConflictError
			if errors.As(err, &ce) {
				rev := b.head(ctx)
				for i, op := range ops[:ce.OpIndex] {
					typ := map[kv.OpKind]kv.EventType{kv.OpPut: kv.EventPut, kv.OpDelete: kv.EventDelete}[op.Kind]
					b.inject(kv.Event{Type: typ, Key: op.Key, Value: op.Value, Revision: rev + 1 + int64(i)})
				}
			}
			return r, err
		}
	}},
	{"never-sends-progress", []string{"watch/an-idle-watch-reports-progress-at-or-after-its-last-change"}, func(b *broken) {
		b.watch = func(ctx context.Context, req kv.WatchRequest) (kv.WatchStream, error) {
			req.ProgressInterval = -1
			return b.s.Watch(ctx, req)
		}
	}},
	{"progress-one-revision-behind", []string{"watch/an-idle-watch-reports-progress-at-or-after-its-last-change"}, func(b *broken) {
		b.event = func(_ *tapped, ev kv.Event) []kv.Event {
			if ev.Type == kv.EventProgress {
				ev.Revision--
			}
			return []kv.Event{ev}
		}
	}},
	{"watch-ignores-cancellation", []string{"watch/a-cancelled-watch-ends"}, func(b *broken) {
		b.recvErr = func(_ *tapped, err error) (kv.Event, error) {
			if errors.Is(err, context.Canceled) || errors.Is(err, kv.ErrClosed) {
				select {} // the stream never ends
			}
			return kv.Event{}, err
		}
	}},
	{"overflow-resubscribes-silently", []string{"watch/a-slow-watcher-ends-with-overflow-and-never-blocks-writers"}, func(b *broken) {
		b.recvErr = func(t *tapped, err error) (kv.Event, error) {
			if !errors.Is(err, kv.ErrWatchOverflow) {
				return kv.Event{}, err
			}
			req := t.req
			req.StartRevision = 0
			ws, err := b.s.Watch(t.ctx, req)
			if err != nil {
				return kv.Event{}, err
			}
			t.replace(ws)
			return t.Recv()
		}
	}},
	{"expires-keys-put-again-after-they-expired", []string{"watch/an-expired-key-overwritten-before-cleanup-gets-no-expire-event"}, func(b *broken) {
		versions := map[string]int64{}
		b.put = func(ctx context.Context, req kv.PutRequest) (kv.Entry, error) {
			b.mu.Lock()
			at, v := b.expiring[req.Key], versions[req.Key]
			b.mu.Unlock()
			if !at.IsZero() && time.Now().After(at) {
				b.inject(kv.Event{Type: kv.EventExpire, Key: req.Key, Version: v, Revision: b.head(ctx) + 1})
			}
			e, err := b.s.Put(ctx, req)
			if err == nil {
				b.mu.Lock()
				b.expiring[req.Key], versions[req.Key] = e.ExpiresAt, e.Version
				b.mu.Unlock()
			}
			return e, err
		}
	}},
	{"watch-unclaimed-but-answered", []string{"watch/is-refused-when-not-claimed", "watch-history/is-refused-when-not-claimed"}, func(b *broken) {
		b.info = func(ctx context.Context) (kv.Info, error) {
			info, err := b.s.Info(ctx)
			info.Capabilities.Watch, info.Capabilities.WatchHistory = false, false
			return info, err
		}
	}},
}

var historyTeeth = []tooth{
	{"replay-repeats-its-first-event", []string{ // every rule that replays
		"watch-history/replays-from-a-revision-exactly-once-then-continues-live", "watch-history/a-start-revision-in-the-future-delivers-only-from-it",
		"watch-history/list-then-watch-from-its-revision-plus-one-has-no-gap-or-repeat", "watch-history/a-compacted-start-fails-with-the-oldest-revision-kept",
	}, func(b *broken) {
		b.event = func(t *tapped, ev kv.Event) []kv.Event {
			if t.req.StartRevision > 0 && t.seen == 1 {
				return []kv.Event{ev, ev}
			}
			return []kv.Event{ev}
		}
	}},
	{"ignores-the-start-revision", []string{ // every rule that replays
		"watch-history/replays-from-a-revision-exactly-once-then-continues-live", "watch-history/a-start-revision-in-the-future-delivers-only-from-it",
		"watch-history/list-then-watch-from-its-revision-plus-one-has-no-gap-or-repeat", "watch-history/a-compacted-start-fails-with-the-oldest-revision-kept",
	}, func(b *broken) {
		b.watch = func(ctx context.Context, req kv.WatchRequest) (kv.WatchStream, error) {
			req.StartRevision = 0
			return b.s.Watch(ctx, req)
		}
	}},
	{"future-start-watches-from-now", []string{"watch-history/a-start-revision-in-the-future-delivers-only-from-it"}, func(b *broken) {
		b.watch = func(ctx context.Context, req kv.WatchRequest) (kv.WatchStream, error) {
			if req.StartRevision > b.head(ctx)+1 {
				req.StartRevision = 0
			}
			return b.s.Watch(ctx, req)
		}
	}},
	{"compacted-start-is-a-plain-error", []string{"watch-history/a-compacted-start-fails-with-the-oldest-revision-kept"}, func(b *broken) {
		b.watch = func(ctx context.Context, req kv.WatchRequest) (kv.WatchStream, error) {
			ws, err := b.s.Watch(ctx, req)
			var ce *kv.CompactedError
			if errors.As(err, &ce) {
				return nil, fmt.Errorf("history starts at %d", ce.Oldest)
			}
			return ws, err
		}
	}},
	{"compacted-error-names-the-revision-before-the-oldest", []string{"watch-history/a-compacted-start-fails-with-the-oldest-revision-kept"}, func(b *broken) {
		b.watch = func(ctx context.Context, req kv.WatchRequest) (kv.WatchStream, error) {
			ws, err := b.s.Watch(ctx, req)
			var ce *kv.CompactedError
			if errors.As(err, &ce) {
				ce.Oldest--
			}
			return ws, err
		}
	}},
	{"compacted-start-replays-from-the-oldest", []string{"watch-history/a-compacted-start-fails-with-the-oldest-revision-kept"}, func(b *broken) {
		b.watch = func(ctx context.Context, req kv.WatchRequest) (kv.WatchStream, error) {
			ws, err := b.s.Watch(ctx, req)
			var ce *kv.CompactedError
			if errors.As(err, &ce) {
				req.StartRevision = ce.Oldest
				return b.s.Watch(ctx, req)
			}
			return ws, err
		}
	}},
	{"history-unclaimed-but-answered", []string{"watch-history/is-refused-when-not-claimed"}, func(b *broken) {
		b.info = func(ctx context.Context) (kv.Info, error) {
			info, err := b.s.Info(ctx)
			info.Capabilities.WatchHistory = false
			return info, err
		}
	}},
}
