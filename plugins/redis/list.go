package redis

import (
	"context"
	"errors"
	"fmt"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kvhost/kvhost/kv"
)

// A list page is read with plain commands under WATCH when it can be, and
// with scriptList when writes keep getting in the way. In Redis's Lua
// every string a script touches costs about half a microsecond, and a
// 10 000-entry page touches 30 000 (a key, its metadata and its value
// each): the script spent 30 ms where ZRANGE and HMGET, answered by Redis
// directly, spend 2-3 (docs/RATIONALE.md, "Redis backend").
//
// The watched read: WATCH the revision and the epoch, read the server's
// time and the candidates (ZRANGE BYLEX) with their metadata, choose the
// page, then MULTI, the values, the revision and the time again, EXEC.
// Every write script changes the revision, so if EXEC runs, nothing was
// written since WATCH and the page is the store at the revision EXEC
// read; if something was, EXEC aborts and the read starts over.

// listAttempts is how many watched reads a List tries before it reads
// with the script, which never needs to start over.
const listAttempts = 2

// errRetry says a watched read must start over (or give way to the script).
var errRetry = errors.New("redis: a write came between the reads of a list page")

// listWatched reads one page under WATCH; errRetry when a write got in
// the way or the store needs its epoch (the script path sees to that).
func (s *Store) listWatched(ctx context.Context, req kv.ListRequest, lo, hi string) (kv.ListResult, error) {
	conn := s.rdb.Conn()
	defer conn.Close()
	executed := false
	defer func() {
		if !executed {
			_ = conn.Do(context.WithoutCancel(ctx), "UNWATCH").Err() // the connection goes back to the pool clean
		}
	}()
	step := int64(req.Limit + 1)
	var now *goredis.TimeCmd
	var cands *goredis.StringSliceCmd
	_, err := conn.Pipelined(ctx, func(p goredis.Pipeliner) error {
		p.Do(ctx, "WATCH", s.keys[keyRev], s.keys[keyEpoch])
		now = p.Time(ctx)
		cands = p.ZRangeArgs(ctx, goredis.ZRangeArgs{Key: s.keys[keyIdx], Start: lo, Stop: hi, ByLex: true, Count: step})
		return nil
	})
	if err != nil {
		return kv.ListResult{}, err
	}
	t1 := now.Val().UnixMilli()
	var (
		keys  []string
		metas []string
		size  int
		more  bool
	)
	for batch := cands.Val(); len(batch) > 0 && !more; {
		ms, err := conn.HMGet(ctx, s.keys[keyMeta], batch...).Result()
		if err != nil {
			return kv.ListResult{}, err
		}
		for i, k := range batch {
			m, ok := ms[i].(string)
			if !ok {
				continue
			}
			_, exp, vlen, err := parseMeta(m)
			if err != nil {
				return kv.ListResult{}, fmt.Errorf("key %q: %w", k, err)
			}
			if exp != 0 && exp <= t1 {
				continue
			}
			sz := len(k)
			if !req.KeysOnly {
				sz += int(vlen)
			}
			if req.PageFull(len(keys), size, sz) {
				more = true
				break
			}
			keys, metas, size = append(keys, k), append(metas, m), size+sz
		}
		if more || int64(len(batch)) < step {
			break
		}
		// Expired keys made room: read on after the last candidate.
		batch, err = conn.ZRangeArgs(ctx, goredis.ZRangeArgs{Key: s.keys[keyIdx], Start: "(" + batch[len(batch)-1], Stop: hi, ByLex: true, Count: step}).Result()
		if err != nil {
			return kv.ListResult{}, err
		}
	}
	var (
		vals  *goredis.SliceCmd
		rev   *goredis.StringCmd
		epoch *goredis.IntCmd
		t2    *goredis.TimeCmd
	)
	_, err = conn.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		if !req.KeysOnly && len(keys) > 0 {
			vals = p.HMGet(ctx, s.keys[keyVal], keys...)
		}
		rev = p.Get(ctx, s.keys[keyRev])
		epoch = p.Exists(ctx, s.keys[keyEpoch])
		t2 = p.Time(ctx)
		return nil
	})
	executed = err == nil || errors.Is(err, goredis.TxFailedErr) || errors.Is(err, goredis.Nil)
	switch {
	case errors.Is(err, goredis.TxFailedErr):
		return kv.ListResult{}, errRetry
	case err != nil && !errors.Is(err, goredis.Nil): // a missing revision key is a new store
		return kv.ListResult{}, err
	case epoch.Val() == 0:
		return kv.ListResult{}, errRetry
	}
	out := kv.ListResult{More: more, Entries: make([]kv.Entry, 0, len(keys))}
	if r := rev.Val(); r != "" {
		out.Revision = asInt(r)
	}
	tEnd := t2.Val().UnixMilli()
	for i, k := range keys {
		var vp *string
		if vals != nil {
			v, ok := vals.Val()[i].(string)
			if !ok {
				return kv.ListResult{}, fmt.Errorf("key %q: %w: the key has metadata but no value", k, kv.ErrDataLoss)
			}
			vp = &v
		}
		e, err := entry(k, metas[i], vp)
		if err != nil {
			return kv.ListResult{}, fmt.Errorf("key %q: %w", k, err)
		}
		if !e.ExpiresAt.IsZero() && e.ExpiresAt.UnixMilli() <= tEnd {
			continue // it expired while the page was read: at the page's instant it is gone
		}
		out.Entries = append(out.Entries, e)
	}
	if len(out.Entries) == 0 && out.More {
		return kv.ListResult{}, errRetry // never an empty page that says more remain
	}
	return out, nil
}
