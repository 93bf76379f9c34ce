package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/plugins/internal/sqlkv"
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
// sqlkv.ChunkEvents, so that the oldest chunk is always wholly past retention
// then and the prune deletes something; a quarter of a smaller history.
func (s *Store) pruneStep() int64 { return min(sqlkv.ChunkEvents, max(int64(s.cfg.History)/4, 1)) }

// retention is how many revisions of history the store keeps.
func (s *Store) retention() sqlkv.Retention { return sqlkv.Retention(s.cfg.History) }

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
	growStack()
	page := sqlkv.NewHistoryPage(limit)
	rev, compact, err := s.scanHistory(ctx, prefix, from, page)
	if err != nil {
		return nil, 0, fmt.Errorf("sqlite: read history %q from revision %d: %w", prefix, from, err)
	}
	return page.Result(from, rev, s.retention().Oldest(rev, compact))
}

// scanHistory decodes chunks from the one holding revision from into page
// until it is full or reaches the snapshot's last revision, which it
// returns with the compact revision.
func (s *Store) scanHistory(ctx context.Context, prefix string, from int64, page *sqlkv.HistoryPage) (rev, compact int64, err error) {
	rows, err := s.rs.history.QueryContext(ctx, sql.Named("from", from))
	if err != nil {
		return 0, 0, mapErr(err)
	}
	defer rows.Close()
	for !page.Full() && rows.Next() {
		var (
			first, last int64
			chunk       sql.RawBytes // decodeChunk copies what it keeps
		)
		if err := rows.Scan(&rev, &compact, &first, &last, &chunk); err != nil {
			return 0, 0, mapErr(err)
		}
		if first == 0 {
			continue // the row that says there is no chunk
		}
		if err := sqlkv.DecodeChunk(chunk, first, last, prefix, from, page.Add); err != nil {
			return 0, 0, err
		}
	}
	if err := rows.Err(); err != nil {
		return 0, 0, mapErr(err)
	}
	return rev, compact, nil
}

// pruneHistory prunes every history chunk past retention, pruneBatch
// revisions' worth per transaction so that writers are never held up for
// long. It opens no transaction when nothing is past retention.
func (s *Store) pruneHistory(ctx context.Context) error {
	for {
		s.mu.Lock()
		due := s.retention().Excess(s.rev, s.compact) > 0
		s.mu.Unlock()
		if !due {
			return nil
		}
		noop := func(context.Context, *sqlkv.Txn) error { return nil }
		pruned, err := s.transact(ctx, noop, 1)
		if err != nil || !pruned {
			return err
		}
	}
}
