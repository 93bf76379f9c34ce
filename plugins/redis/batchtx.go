package redis

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kvhost/kvhost/kv"
)

// A batch is applied with plain commands under WATCH when it can be, and
// with scriptBatch otherwise. In Redis's Lua every string a script
// touches costs a fraction of a microsecond and every op some lines of
// interpreted planning: a batch of 1000 puts cost Redis 8 ms in the
// script, of which HSET, ZADD, HMGET and XADD themselves were under 3.
// Planned here and written as one MULTI/EXEC of bulk commands, it costs
// Redis those commands only (docs/RATIONALE.md, "Redis backend").
//
// The watched batch: WATCH the revision and the epoch, read the
// revision and the metadata of the batch's keys, plan the ops against
// them exactly as scriptBatch does, then MULTI, the bulk writes, the new
// revision, the byte total and the events, EXEC. Every write script
// changes the revision, so if EXEC runs nothing was written since WATCH
// and the plan was made on the store as it is; if something was, EXEC
// aborts and the batch starts over.
//
// Time is the one thing WATCH cannot guard: a key live at the read might
// expire before EXEC. So the watched path takes only batches in which no
// op sets a TTL and no key it touches has an expiry (expired or not);
// whatever involves time, a failed condition (so that a conflict is
// decided in one atomic step), a batch that changes nothing, and a batch
// whose EXEC keeps aborting go to the script.

// batchAttempts is how many watched tries a batch makes before the script.
const batchAttempts = 2

// errScript says a batch must go to the script: the watched path cannot
// apply it exactly.
var errScript = errors.New("redis: the batch needs the script")

// watchedBatchOK says whether a batch may take the watched path at all
// (an empty batch changes nothing: the script answers its revision).
func watchedBatchOK(ops []kv.Op) bool {
	if len(ops) == 0 {
		return false
	}
	for _, op := range ops {
		if op.Kind == kv.OpPut && op.TTL > 0 {
			return false
		}
	}
	return true
}

// batchPlan is a batch planned against the store's state at a revision.
// Its keys are the batch's distinct keys; slices indexed like them hold
// each key's stored value length and final state.
type batchPlan struct {
	rev     int64         // the store revision after the batch
	results []kv.OpResult // per op
	keys    []string      // distinct keys, in order of first appearance
	stored  []bool        // the key is stored (has metadata)
	oldLen  []int64       // its stored value's length
	final   []int         // index of the key's last put, -1: deleted, -2: untouched
	events  []batchEvent
}

type batchEvent struct {
	typ     byte // 1 PUT, 2 DELETE
	key     string
	val     []byte
	version int64
}

// distinctKeys lists the batch's keys once each and maps every op to its
// key's position.
func distinctKeys(ops []kv.Op) (keys []string, at []int) {
	pos := make(map[string]int, len(ops))
	at = make([]int, len(ops))
	for i, op := range ops {
		j, ok := pos[op.Key]
		if !ok {
			j = len(keys)
			pos[op.Key] = j
			keys = append(keys, op.Key)
		}
		at[i] = j
	}
	return keys, at
}

// planBatch plans ops from revision r0 and the stored metadata of their
// distinct keys (nil: not stored), as scriptBatch does; errScript when a
// key has an expiry, a condition fails or nothing would change.
func planBatch(ops []kv.Op, keys []string, at []int, r0 int64, metas []any) (batchPlan, error) {
	n := len(keys)
	p := batchPlan{rev: r0, results: make([]kv.OpResult, len(ops)), keys: keys,
		stored: make([]bool, n), oldLen: make([]int64, n), final: make([]int, n), events: make([]batchEvent, 0, len(ops))}
	live := make([]int64, n) // each key's current version, as the batch goes
	for j, m := range metas {
		p.final[j] = -2
		m, ok := m.(string)
		if !ok {
			continue
		}
		ver, exp, vlen, err := parseMeta(m)
		if err != nil || exp != 0 {
			return batchPlan{}, errScript
		}
		live[j], p.stored[j], p.oldLen[j] = ver, true, vlen
	}
	for i, op := range ops {
		j := at[i]
		cur := live[j]
		if (op.Cond.Kind == kv.CondAbsent && cur != 0) || (op.Cond.Kind == kv.CondVersion && cur != op.Cond.Version) {
			return batchPlan{}, errScript
		}
		switch {
		case op.Kind == kv.OpPut:
			p.rev++
			live[j], p.final[j] = p.rev, i
			p.results[i] = kv.OpResult{Revision: p.rev, Version: p.rev}
			p.events = append(p.events, batchEvent{typ: 1, key: op.Key, val: nonNil(op.Value), version: p.rev})
		case cur != 0:
			p.rev++
			live[j], p.final[j] = 0, -1
			p.results[i] = kv.OpResult{Revision: p.rev, Deleted: true}
			p.events = append(p.events, batchEvent{typ: 2, key: op.Key, val: []byte{}, version: cur})
		}
	}
	if p.rev == r0 {
		return batchPlan{}, errScript
	}
	return p, nil
}

// batchWatched applies a batch under WATCH; errRetry when a write got in
// the way, errScript when the script must apply it.
func (s *Store) batchWatched(ctx context.Context, ops []kv.Op) (kv.BatchResult, error) {
	conn := s.rdb.Conn()
	defer conn.Close()
	executed := false
	defer func() {
		if !executed {
			_ = conn.Do(context.WithoutCancel(ctx), "UNWATCH").Err() // the connection goes back to the pool clean
		}
	}()
	keys, at := distinctKeys(ops)
	var (
		epoch *goredis.IntCmd
		rev   *goredis.StringCmd
		metas *goredis.SliceCmd
	)
	_, err := conn.Pipelined(ctx, func(p goredis.Pipeliner) error {
		p.Do(ctx, "WATCH", s.keys[keyRev], s.keys[keyEpoch])
		epoch = p.Exists(ctx, s.keys[keyEpoch])
		rev = p.Get(ctx, s.keys[keyRev])
		metas = p.HMGet(ctx, s.keys[keyMeta], keys...)
		return nil
	})
	if err != nil && !errors.Is(err, goredis.Nil) {
		return kv.BatchResult{}, err
	}
	if epoch.Val() == 0 || len(metas.Val()) != len(keys) {
		return kv.BatchResult{}, errScript // the script sets the epoch
	}
	var r0 int64
	if r := rev.Val(); r != "" {
		if r0, err = strconv.ParseInt(r, 10, 64); err != nil {
			return kv.BatchResult{}, errScript
		}
	}
	plan, err := planBatch(ops, keys, at, r0, metas.Val())
	if err != nil {
		return kv.BatchResult{}, err
	}
	if s.beforeBatchWrite != nil {
		s.beforeBatchWrite()
	}
	cmds, err := conn.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		s.writePlan(ctx, p, ops, plan)
		return nil
	})
	err = queuedErr(cmds, err)
	executed = err == nil || errors.Is(err, goredis.TxFailedErr)
	switch {
	case errors.Is(err, goredis.TxFailedErr):
		return kv.BatchResult{}, errRetry
	case err != nil:
		return kv.BatchResult{}, err
	}
	return kv.BatchResult{Revision: plan.rev, Results: plan.results}, nil
}

// writePlan queues a planned batch's writes: the keys' final states in
// bulk, the revision, the byte total, the events and the stream's trim
// (as luaEvent's finish does).
func (s *Store) writePlan(ctx context.Context, p goredis.Pipeliner, ops []kv.Op, plan batchPlan) {
	n := 2 + 2*len(plan.keys)
	hv := append(make([]any, 0, n), "HSET", s.keys[keyVal])
	hm := append(make([]any, 0, n), "HSET", s.keys[keyMeta])
	hd := []any{}
	zi := append(make([]any, 0, n), "ZADD", s.keys[keyIdx])
	zr := []any{"ZREM", s.keys[keyIdx]}
	var dbytes int64
	for j, key := range plan.keys {
		o, stored, ol := plan.final[j], plan.stored[j], plan.oldLen[j]
		switch {
		case o == -2:
			continue
		case o == -1:
			if stored {
				hd, zr = append(hd, key), append(zr, key)
				dbytes -= int64(len(key)) + ol
			}
			continue
		}
		val := nonNil(ops[o].Value)
		m := make([]byte, metaSize)
		binary.BigEndian.PutUint64(m[0:8], uint64(plan.results[o].Version))
		binary.BigEndian.PutUint32(m[16:20], uint32(len(val)))
		hv, hm = append(hv, key, val), append(hm, key, m)
		if stored {
			dbytes += int64(len(val)) - ol
		} else {
			zi = append(zi, 0, key)
			dbytes += int64(len(key) + len(val))
		}
	}
	for _, cmd := range [][]any{hv, hm, zi, zr} {
		if len(cmd) > 2 {
			p.Do(ctx, cmd...)
		}
	}
	if len(hd) > 0 {
		p.HDel(ctx, s.keys[keyVal], toStrings(hd)...)
		p.HDel(ctx, s.keys[keyMeta], toStrings(hd)...)
	}
	p.Set(ctx, s.keys[keyRev], plan.rev, 0)
	if dbytes != 0 {
		p.IncrBy(ctx, s.keys[keyBytes], dbytes)
	}
	for _, xadd := range s.eventChunks(plan) {
		p.Do(ctx, xadd...)
	}
	if plan.rev > int64(s.cfg.History) {
		p.Do(ctx, "XTRIM", s.keys[keyEvents], "MINID", "~", fmt.Sprintf("%d-0", plan.rev-int64(s.cfg.History)+1))
	}
}

// eventChunks builds the XADD commands of a plan's events, chunked as
// luaEvent chunks them (up to 1000 changes or about 1 MiB of keys and
// values per stream entry) and packed (chunk.go).
func (s *Store) eventChunks(plan batchPlan) [][]any {
	var out [][]any
	first := plan.rev - int64(len(plan.events)) + 1
	for i := 0; i < len(plan.events); {
		size, j := 0, i
		for j < len(plan.events) && j-i < 1000 && size < 1<<20 {
			size += len(plan.events[j].key) + len(plan.events[j].val)
			j++
		}
		packed := make([]byte, 0, size+(j-i)*packedHeader)
		for _, ev := range plan.events[i:j] {
			packed = append(packed, ev.typ)
			packed = binary.BigEndian.AppendUint64(packed, uint64(ev.version))
			packed = binary.BigEndian.AppendUint64(packed, 0) // no expiry: the watched path takes no TTL
			packed = binary.BigEndian.AppendUint32(packed, uint32(len(ev.key)))
			packed = binary.BigEndian.AppendUint32(packed, uint32(len(ev.val)))
			packed = append(append(packed, ev.key...), ev.val...)
		}
		lo, hi := first+int64(i), first+int64(j)-1
		out = append(out, []any{"XADD", s.keys[keyEvents], strconv.FormatInt(hi, 10) + "-0", "f", lo, "b", packed})
		i = j
	}
	return out
}

func toStrings(v []any) []string {
	out := make([]string, len(v))
	for i, x := range v {
		out[i], _ = x.(string)
	}
	return out
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// queuedErr is the error of a transaction: when Redis refused a queued
// command (out of memory, say), EXEC answers EXECABORT and applies
// nothing, and the refused command's error says why.
func queuedErr(cmds []goredis.Cmder, err error) error {
	var rerr goredis.Error
	if !errors.As(err, &rerr) || !strings.HasPrefix(rerr.Error(), "EXECABORT") {
		return err
	}
	for _, c := range cmds {
		if cerr := c.Err(); cerr != nil && !strings.HasPrefix(cerr.Error(), "EXECABORT") {
			return cerr
		}
	}
	return err
}
