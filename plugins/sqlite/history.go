package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/kvhost/kvhost/kv"
)

// History retention. Every committed change has a row in kv_history, in
// the transaction of the change. Rows older than the last Config.History
// revisions are pruned from the front in bounded steps: by a commit that
// finds at least pruneStep of them (so a write pays for pruning about as
// many rows as it adds, a few at a time), and by CleanupExpired, which
// prunes all of them, pruneBatch per transaction.
const (
	pruneStep  = 256
	pruneBatch = 4096
)

// pruneStep is how many revisions past retention make a commit prune:
// pruneStep, or a quarter of a small history.
func (s *Store) pruneStep() int64 { return min(pruneStep, max(int64(s.cfg.History)/4, 1)) }

// excess is how many history rows lie before the last Config.History
// revisions.
func (s *Store) excess(rev, compact int64) int64 { return rev - int64(s.cfg.History) - compact }

// oldest is the oldest revision a watch can start at, given the store and
// compact revisions of one snapshot. Rows past retention that are not yet
// pruned are not offered, so what a watch may start at does not depend on
// when pruning ran.
func (s *Store) oldest(rev, compact int64) int64 {
	return max(compact+1, rev-int64(s.cfg.History)+1, 1)
}

// ReadHistory implements pluginapi.History: up to limit events under
// prefix from revision from on, in revision order, and the store revision
// the read covered. Events and revision come from one statement, so one
// snapshot. A from older than the history kept is a *kv.CompactedError.
func (s *Store) ReadHistory(ctx context.Context, prefix string, from int64, limit int) ([]kv.Event, int64, error) {
	if err := kv.ValidatePrefix(prefix); err != nil {
		return nil, 0, fmt.Errorf("sqlite: read history: %w", err)
	}
	if err := s.checkOpen(); err != nil {
		return nil, 0, fmt.Errorf("sqlite: read history %q: %w", prefix, err)
	}
	if limit <= 0 {
		limit = kv.DefaultListLimit
	}
	end := 0
	args := []any{sql.Named("lo", prefix), sql.Named("from", from), sql.Named("limit", limit)}
	if hi := kv.PrefixEnd(prefix); hi != "" {
		end = 1
		args = append(args, sql.Named("hi", hi))
	}
	growStack()
	evs, rev, compact, err := s.scanHistory(ctx, s.rs.history[end], args)
	if err != nil {
		return nil, 0, fmt.Errorf("sqlite: read history %q from revision %d: %w", prefix, from, err)
	}
	if oldest := s.oldest(rev, compact); from < oldest {
		return nil, 0, &kv.CompactedError{Requested: from, Oldest: oldest}
	}
	return evs, rev, nil
}

func (s *Store) scanHistory(ctx context.Context, st *sql.Stmt, args []any) (evs []kv.Event, rev, compact int64, err error) {
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return nil, 0, 0, mapErr(err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			ev         kv.Event
			typ, expMs int64
		)
		if err := rows.Scan(&rev, &compact, &ev.Revision, &typ, &ev.Key, &ev.Value, &ev.Version, &expMs); err != nil {
			return nil, 0, 0, mapErr(err)
		}
		if ev.Revision == 0 {
			continue // the row that says nothing matched
		}
		var ok bool
		if ev.Type, ok = eventTypes[typ]; !ok {
			return nil, 0, 0, fmt.Errorf("%w: history row of revision %d has unknown type %d", kv.ErrInternal, ev.Revision, typ)
		}
		if ev.Type == kv.EventPut && ev.Value == nil {
			ev.Value = []byte{}
		}
		ev.ExpiresAt = kv.FromUnixMillis(expMs)
		evs = append(evs, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, 0, mapErr(err)
	}
	return evs, rev, compact, nil
}

// pruneHistory prunes every history row past retention, pruneBatch per
// transaction so that writers are never held up for long.
func (s *Store) pruneHistory(ctx context.Context) error {
	for {
		more := false
		err := s.update(ctx, func(t *txn) error {
			if err := t.prune(1); err != nil {
				return err
			}
			more = s.excess(t.rev, t.compact) > 0
			return nil
		})
		if err != nil || !more {
			return err
		}
	}
}
