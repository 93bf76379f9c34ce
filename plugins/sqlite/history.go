package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi"
)

// History retention. Every commit's changes are recorded in kv_history
// in the commit's transaction. Chunks wholly older than the last
// Config.History revisions are pruned from the front in bounded steps: by
// a commit that finds at least pruneStep revisions past retention (so that
// writes prune about as much as they add, a chunk or a few at a time),
// and by CleanupExpired, which prunes all it can, pruneBatch revisions'
// worth per transaction.
const pruneBatch = 4096

// pruneStep is how many revisions past retention make a commit prune:
// chunkEvents, so that the oldest chunk is always wholly past retention
// then and the prune deletes something; a quarter of a smaller history.
func (s *Store) pruneStep() int64 { return min(chunkEvents, max(int64(s.cfg.History)/4, 1)) }

// excess is how many revisions of history lie before the last
// Config.History revisions.
func (s *Store) excess(rev, compact int64) int64 { return rev - int64(s.cfg.History) - compact }

// oldest is the oldest revision a watch can start at, given the store and
// compact revisions of one snapshot. Revisions past retention that are not
// yet pruned are not offered, so what a watch may start at does not depend
// on when pruning ran.
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
	growStack()
	evs, rev, compact, full, err := s.scanHistory(ctx, prefix, from, limit)
	if err != nil {
		return nil, 0, fmt.Errorf("sqlite: read history %q from revision %d: %w", prefix, from, err)
	}
	if oldest := s.oldest(rev, compact); from < oldest {
		return nil, 0, &kv.CompactedError{Requested: from, Oldest: oldest}
	}
	if full { // stopped early: the answer covers up to its last event
		return evs, evs[len(evs)-1].Revision, nil
	}
	return evs, rev, nil
}

// scanHistory decodes chunks from the one holding revision from until it
// has limit events under prefix, or pluginapi.HistoryPageBytes of their
// values (full), or reaches the snapshot's last revision, which it returns
// with the compact revision.
func (s *Store) scanHistory(ctx context.Context, prefix string, from int64, limit int) (evs []kv.Event, rev, compact int64, full bool, err error) {
	rows, err := s.rs.history.QueryContext(ctx, sql.Named("from", from))
	if err != nil {
		return nil, 0, 0, false, mapErr(err)
	}
	defer rows.Close()
	size := 0
	keep := func(ev kv.Event) bool {
		evs = append(evs, ev)
		size += len(ev.Value)
		full = len(evs) >= limit || size >= pluginapi.HistoryPageBytes
		return !full
	}
	for !full && rows.Next() {
		var (
			first, last int64
			chunk       sql.RawBytes // decodeChunk copies what it keeps
		)
		if err := rows.Scan(&rev, &compact, &first, &last, &chunk); err != nil {
			return nil, 0, 0, false, mapErr(err)
		}
		if first == 0 {
			continue // the row that says there is no chunk
		}
		if err := decodeChunk(chunk, first, last, prefix, from, keep); err != nil {
			return nil, 0, 0, false, err
		}
	}
	if err := rows.Err(); err != nil {
		return nil, 0, 0, false, mapErr(err)
	}
	return evs, rev, compact, full, nil
}

// pruneHistory prunes every history chunk past retention, pruneBatch
// revisions' worth per transaction so that writers are never held up for
// long. It opens no transaction when nothing is past retention.
func (s *Store) pruneHistory(ctx context.Context) error {
	for {
		s.mu.Lock()
		due := s.excess(s.rev, s.compact) > 0
		s.mu.Unlock()
		if !due {
			return nil
		}
		pruned := false
		err := s.update(ctx, func(t *txn) (err error) {
			pruned, err = t.prune(1)
			return err
		})
		if err != nil || !pruned {
			return err
		}
	}
}
