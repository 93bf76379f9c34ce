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
	page, more, err := s.listCandidates(ctx, conn, req, lo, hi)
	if err != nil {
		return kv.ListResult{}, err
	}
	keys := make([]string, len(page))
	for i := range page {
		keys[i] = page[i].key
	}
	var (
		vals  *goredis.StringSliceCmd
		rev   *goredis.StringCmd
		epoch *goredis.IntCmd
		t2    *goredis.TimeCmd
	)
	cmds, err := conn.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		if !req.KeysOnly && len(keys) > 0 {
			vals = hmget(ctx, p, s.keys[keyVal], keys)
		}
		rev = p.Get(ctx, s.keys[keyRev])
		epoch = p.Exists(ctx, s.keys[keyEpoch])
		t2 = p.Time(ctx)
		return nil
	})
	err = queuedErr(cmds, err)
	executed = err == nil || errors.Is(err, goredis.TxFailedErr) || errors.Is(err, goredis.Nil)
	switch {
	case errors.Is(err, goredis.TxFailedErr):
		return kv.ListResult{}, errRetry
	case err != nil && !errors.Is(err, goredis.Nil): // a missing revision key is a new store
		return kv.ListResult{}, err
	case epoch.Val() == 0:
		return kv.ListResult{}, errRetry
	}
	out := kv.ListResult{More: more}
	if r := rev.Val(); r != "" {
		out.Revision = asInt(r)
	}
	var values []string
	if vals != nil {
		values = vals.Val()
	}
	if out.Entries, err = pageEntries(page, values, t2.Val().UnixMilli()); err != nil {
		return kv.ListResult{}, err
	}
	if len(out.Entries) == 0 && out.More {
		return kv.ListResult{}, errRetry // never an empty page that says more remain
	}
	return out, nil
}

// listed is a key chosen for a page, with its metadata.
type listed struct {
	key                string
	version, exp, vlen int64
}

// listCandidates reads the server's time, then candidates from the index
// and their metadata, and chooses the page: live keys while it is not
// full (kv.ListRequest.PageFull); more says that more remain.
func (s *Store) listCandidates(ctx context.Context, conn *goredis.Conn, req kv.ListRequest, lo, hi string) (page []listed, more bool, err error) {
	step := int64(req.Limit + 1)
	var now *goredis.TimeCmd
	var cands *goredis.StringSliceCmd
	_, err = conn.Pipelined(ctx, func(p goredis.Pipeliner) error {
		p.Do(ctx, "WATCH", s.keys[keyRev], s.keys[keyEpoch])
		now = p.Time(ctx)
		cands = p.ZRangeArgs(ctx, goredis.ZRangeArgs{Key: s.keys[keyIdx], Start: lo, Stop: hi, ByLex: true, Count: step})
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	t1 := now.Val().UnixMilli()
	size := 0
	for batch := cands.Val(); len(batch) > 0; {
		ms, err := hmget(ctx, conn, s.keys[keyMeta], batch).Result()
		if err != nil {
			return nil, false, err
		}
		if page == nil {
			page = make([]listed, 0, len(batch))
		}
		for i, k := range batch {
			if ms[i] == "" {
				continue // no metadata: not stored (metadata is never empty)
			}
			ver, exp, vlen, err := parseMeta(ms[i])
			if err != nil {
				return nil, false, fmt.Errorf("key %q: %w", k, err)
			}
			if exp != 0 && exp <= t1 {
				continue
			}
			sz := len(k)
			if !req.KeysOnly {
				sz += int(vlen)
			}
			if req.PageFull(len(page), size, sz) {
				return page, true, nil
			}
			page, size = append(page, listed{key: k, version: ver, exp: exp, vlen: vlen}), size+sz
		}
		if int64(len(batch)) < step {
			break
		}
		// Expired keys made room: read on after the last candidate.
		batch, err = conn.ZRangeArgs(ctx, goredis.ZRangeArgs{Key: s.keys[keyIdx], Start: "(" + batch[len(batch)-1], Stop: hi, ByLex: true, Count: step}).Result()
		if err != nil {
			return nil, false, err
		}
	}
	return page, false, nil
}

// pageEntries builds a page's entries from its keys and values (nil:
// keys only), leaving out keys that expired by the page's instant, now.
// The values share one allocation, each capped at its end; each must be
// as long as its metadata says.
func pageEntries(page []listed, values []string, now int64) ([]kv.Entry, error) {
	var buf []byte
	if values != nil {
		size := 0
		for _, v := range values {
			size += len(v)
		}
		buf = make([]byte, 0, size)
	}
	out := make([]kv.Entry, 0, len(page))
	for i, l := range page {
		if l.exp != 0 && l.exp <= now {
			continue // it expired while the page was read: at the page's instant it is gone
		}
		e := kv.Entry{Key: l.key, Version: l.version, ExpiresAt: kv.FromUnixMillis(l.exp)}
		if values != nil {
			v := values[i]
			if int64(len(v)) != l.vlen {
				return nil, fmt.Errorf("key %q: %w: its metadata says %d value bytes, its value has %d", l.key, kv.ErrDataLoss, l.vlen, len(v))
			}
			start := len(buf)
			buf = append(buf, v...)
			e.Value = buf[start:len(buf):len(buf)]
		}
		out = append(out, e)
	}
	return out, nil
}

// hmget reads fields of a hash as strings, "" for a missing one: the
// reply and the arguments are read and written without boxing each
// string in an interface, which for a page of 10 000 keys was a tenth of
// the plugin's time. A missing field then reads as an empty one: List
// checks each value's length against its metadata, so only an empty
// value whose field is missing goes unnoticed (and reads as empty).
func hmget(ctx context.Context, c interface {
	Process(context.Context, goredis.Cmder) error
}, hash string, fields []string) *goredis.StringSliceCmd {
	args := make([]any, 2+len(fields))
	args[0], args[1] = "HMGET", hash
	for i := range fields {
		args[2+i] = &fields[i]
	}
	cmd := goredis.NewStringSliceCmd(ctx, args...)
	_ = c.Process(ctx, cmd)
	return cmd
}
