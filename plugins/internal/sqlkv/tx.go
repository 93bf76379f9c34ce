package sqlkv

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kvhost/kvhost/kv"
)

// Row is one stored entry: the key's value, its version (the revision of
// its last value change) and its expiry in unix milliseconds (0: none).
type Row struct {
	Key     string
	Value   []byte
	Version int64
	ExpMs   int64
}

// Removed is a key a delete or an expiry removed, with the version it had.
type Removed struct {
	Key     string
	Version int64
}

// Tx is a dialect's statements inside one write transaction. Each sees the
// transaction's earlier changes. nowMs is the transaction's time: a row
// whose expiry is at or before it is not live (kv.Expired), whether or not
// cleanup has removed it.
type Tx interface {
	// Upsert stores rows unconditionally, in order: a key given twice
	// ends with its last row.
	Upsert(ctx context.Context, rows []Row, nowMs int64) error
	// InsertAbsent stores row unless a live row holds its key, and says
	// whether it did.
	InsertAbsent(ctx context.Context, row Row, nowMs int64) (bool, error)
	// UpdateVersion stores row over the live row of its key if that row's
	// version is cond, and says whether it did.
	UpdateVersion(ctx context.Context, row Row, cond, nowMs int64) (bool, error)
	// Delete removes the live row of key, if its version is cond when cond
	// is not 0, and returns the version it had: 0 when it removed nothing.
	Delete(ctx context.Context, key string, cond, nowMs int64) (int64, error)
	// Refresh sets the expiry of the live row of key, if its version is
	// cond when cond is not 0, and returns its version: 0 when it changed
	// nothing.
	Refresh(ctx context.Context, key string, cond, expMs, nowMs int64) (int64, error)
	// Live returns the live row of key; Version 0 when there is none.
	Live(ctx context.Context, key string, nowMs int64) (Row, error)
	// DeleteRange removes every live row with lo <= key < hi (no upper
	// bound when hi is empty).
	DeleteRange(ctx context.Context, lo, hi string, nowMs int64) ([]Removed, error)
	// DeleteExpired removes up to limit rows expired at nowMs, earliest
	// expiry first.
	DeleteExpired(ctx context.Context, limit, nowMs int64) ([]Removed, error)
}

// Txn is one write transaction's bookkeeping: the revisions it takes and
// the events of its changes, one per revision after the store's, in order.
// The backend begins the transaction, makes a Txn with the store revision
// it holds, and after the Writer's work records Events in its history,
// stores Rev as the store revision and commits; when anything fails
// nothing of it remains.
type Txn struct {
	tx    Tx
	now   time.Time
	nowMs int64
	rev   int64
	// events are built whether or not anyone watches: a watch that replays
	// history joins the fan-out later.
	events []kv.Event
}

// NewTxn starts the bookkeeping of a transaction on tx at time now, on a
// store whose last revision is rev.
func NewTxn(tx Tx, now time.Time, rev int64) *Txn {
	return &Txn{tx: tx, now: now, nowMs: now.UnixMilli(), rev: rev}
}

// Now is the transaction's time, and NowMs the same in unix milliseconds.
func (t *Txn) Now() time.Time { return t.now }

// NowMs is the transaction's time in unix milliseconds.
func (t *Txn) NowMs() int64 { return t.nowMs }

// Rev is the last revision the transaction took (the store's revision when
// it took none).
func (t *Txn) Rev() int64 { return t.rev }

// Events are the transaction's changes in revision order.
func (t *Txn) Events() []kv.Event { return t.events }

// record takes the next revision for one change and keeps its event. A
// put's version is its revision; other changes carry the key's version.
func (t *Txn) record(typ kv.EventType, key string, value []byte, version, expMs int64) int64 {
	t.rev++
	t.events = append(t.events, kv.Event{
		Type: typ, Key: key, Value: value, Version: version, Revision: t.rev, ExpiresAt: kv.FromUnixMillis(expMs),
	})
	return t.rev
}

// recordRemoved records removed keys (DELETE or EXPIRE), each with its own
// revision, in key order.
func (t *Txn) recordRemoved(typ kv.EventType, removed []Removed) {
	slices.SortFunc(removed, func(a, b Removed) int { return strings.Compare(a.Key, b.Key) })
	for _, r := range removed {
		t.record(typ, r.Key, nil, r.Version, 0)
	}
}

// expiryMs is the stored expiry of a TTL set now: unix ms, 0 for none.
func (t *Txn) expiryMs(ttl time.Duration) int64 { return kv.UnixMillis(kv.ExpiryAt(t.now, ttl)) }

// conflict answers a failed condition with the key's current version.
func (t *Txn) conflict(ctx context.Context, key string, opIndex int) error {
	cur, err := t.tx.Live(ctx, key, t.nowMs)
	if err != nil {
		return err
	}
	return &kv.ConflictError{Key: key, CurrentVersion: cur.Version, OpIndex: opIndex}
}

// condVersion is the version a delete or refresh requires: 0 for any.
func condVersion(c kv.Condition) int64 {
	if c.Kind == kv.CondVersion {
		return c.Version
	}
	return 0
}

// put stores one value under its condition; opIndex is -1 outside a batch.
func (t *Txn) put(ctx context.Context, key string, value []byte, ttl time.Duration, cond kv.Condition, opIndex int) (kv.OpResult, error) {
	row := Row{Key: key, Value: cloneValue(value), Version: t.rev + 1, ExpMs: t.expiryMs(ttl)}
	ok, err := true, error(nil)
	switch cond.Kind {
	case kv.CondNone:
		err = t.tx.Upsert(ctx, []Row{row}, t.nowMs)
	case kv.CondAbsent:
		ok, err = t.tx.InsertAbsent(ctx, row, t.nowMs)
	case kv.CondVersion:
		ok, err = t.tx.UpdateVersion(ctx, row, cond.Version, t.nowMs)
	default:
		return kv.OpResult{}, fmt.Errorf("%w: unknown condition kind %d", kv.ErrInvalidArgument, cond.Kind)
	}
	if err != nil {
		return kv.OpResult{}, err
	}
	if !ok {
		return kv.OpResult{}, t.conflict(ctx, key, opIndex)
	}
	t.record(kv.EventPut, key, row.Value, row.Version, row.ExpMs)
	return kv.OpResult{Version: row.Version, ExpiresAt: kv.FromUnixMillis(row.ExpMs), Revision: row.Version}, nil
}

// cloneValue copies a value the caller may reuse, as the non-nil value a
// stored entry has (a nil value binds as NULL).
func cloneValue(v []byte) []byte {
	if v == nil {
		return []byte{}
	}
	return bytes.Clone(v)
}

// del removes one key under its condition; opIndex is -1 outside a batch.
// A key that was not there takes no revision.
func (t *Txn) del(ctx context.Context, key string, cond kv.Condition, opIndex int) (kv.OpResult, error) {
	v, err := t.tx.Delete(ctx, key, condVersion(cond), t.nowMs)
	if err != nil {
		return kv.OpResult{}, err
	}
	if v == 0 {
		if cond.Kind != kv.CondVersion {
			return kv.OpResult{}, nil
		}
		return kv.OpResult{}, t.conflict(ctx, key, opIndex)
	}
	return kv.OpResult{Deleted: true, Revision: t.record(kv.EventDelete, key, nil, v, 0)}, nil
}

// putRun stores a run of unconditional puts with one Upsert; each op still
// takes its own revision and event.
func (t *Txn) putRun(ctx context.Context, ops []kv.Op, results []kv.OpResult) error {
	rows := make([]Row, len(ops))
	for i, op := range ops {
		rows[i] = Row{Key: op.Key, Value: cloneValue(op.Value), Version: t.rev + 1 + int64(i), ExpMs: t.expiryMs(op.TTL)}
		results[i] = kv.OpResult{Version: rows[i].Version, ExpiresAt: kv.FromUnixMillis(rows[i].ExpMs), Revision: rows[i].Version}
	}
	if err := t.tx.Upsert(ctx, rows, t.nowMs); err != nil {
		return err
	}
	for _, r := range rows {
		t.record(kv.EventPut, r.Key, r.Value, r.Version, r.ExpMs)
	}
	return nil
}

// unconditionalPuts is how many ops from the first are puts without a
// condition.
func unconditionalPuts(ops []kv.Op) int {
	n := 0
	for n < len(ops) && ops[n].Kind == kv.OpPut && ops[n].Cond.Kind == kv.CondNone {
		n++
	}
	return n
}
