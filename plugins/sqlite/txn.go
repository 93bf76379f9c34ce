package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/plugins/internal/sqlkv"
)

// update runs fn in one IMMEDIATE transaction under the writer mutex. When
// fn succeeds it writes the history rows of its changes, the revision
// counter and, now and then, pruning of history, commits, and publishes
// the events while still holding the mutex, so watchers see commit order.
// When fn or the commit fails, nothing of it remains: no row, no revision,
// no event.
func (s *Store) update(ctx context.Context, fn func(ctx context.Context, t *sqlkv.Txn) error) error {
	_, err := s.transact(ctx, fn, s.pruneStep())
	return err
}

// transact is update that prunes history when at least pruneLeast
// revisions are past retention, and says whether it pruned.
func (s *Store) transact(ctx context.Context, fn func(ctx context.Context, t *sqlkv.Txn) error, pruneLeast int64) (pruned bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return false, kv.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	growStack()
	bounded := context.WithoutCancel(ctx) // see writeTx
	if _, err := s.ws.begin.ExecContext(bounded); err != nil {
		return false, mapErr(err)
	}
	t := sqlkv.NewTxn(writeTx{&s.ws}, s.now(), s.rev)
	compact := s.compact
	err = fn(ctx, t)
	if err == nil {
		compact, err = s.finish(bounded, t, pruneLeast)
	}
	if err != nil {
		s.rollback()
		return false, err
	}
	// The work is done: commit even if ctx ended meanwhile, so that an
	// acknowledged write and a committed one are the same thing.
	if _, err := s.ws.commit.ExecContext(context.Background()); err != nil {
		s.rollback()
		return false, mapErr(err)
	}
	pruned = compact != s.compact
	s.rev, s.compact = t.Rev(), compact
	s.hub.Publish(t.Events()...)
	return pruned, nil
}

// rollback ends a failed transaction. SQLite may have rolled it back
// already (an interrupted statement does), so its error says nothing.
func (s *Store) rollback() {
	_, _ = s.ws.rollback.ExecContext(context.Background())
}

// finish writes what the transaction's changes imply: their history rows,
// the revision counter, and pruning of old history when at least
// pruneLeast revisions are past retention. It returns the compact
// revision the transaction leaves.
func (s *Store) finish(ctx context.Context, t *sqlkv.Txn, pruneLeast int64) (int64, error) {
	if evs := t.Events(); len(evs) > 0 {
		if err := s.writeHistory(ctx, evs); err != nil {
			return 0, err
		}
		if _, err := s.ws.setRevision.ExecContext(ctx, sql.Named("rev", t.Rev())); err != nil {
			return 0, mapErr(err)
		}
	}
	return s.prune(ctx, t.Rev(), s.compact, pruneLeast)
}

// writeHistory records the transaction's changes in history chunks.
func (s *Store) writeHistory(ctx context.Context, evs []kv.Event) error {
	if s.cfg.noHistory {
		return nil
	}
	return sqlkv.EncodeChunks(evs, func(first, last int64, chunk []byte) error {
		_, err := s.ws.histInsert.ExecContext(ctx, sql.Named("first", first), sql.Named("last", last), sql.Named("events", chunk))
		if err != nil {
			return fmt.Errorf("record history: %w", mapErr(err))
		}
		return nil
	})
}

// prune deletes history chunks past retention, if at least least
// revisions are, up to pruneBatch revisions' worth, and moves the compact
// revision to the last one deleted, which it returns. A chunk that
// reaches into the revisions kept stays whole.
func (s *Store) prune(ctx context.Context, rev, compact, least int64) (int64, error) {
	excess := s.retention().Excess(rev, compact)
	if excess < max(least, 1) {
		return compact, nil
	}
	rows, err := s.ws.prune.QueryContext(ctx, sql.Named("upto", compact+min(excess, pruneBatch)))
	if err != nil {
		return 0, fmt.Errorf("prune history: %w", mapErr(err))
	}
	defer rows.Close()
	moved := compact
	for rows.Next() {
		var last int64
		if err := rows.Scan(&last); err != nil {
			return 0, fmt.Errorf("prune history: %w", mapErr(err))
		}
		moved = max(moved, last)
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("prune history: %w", mapErr(err))
	}
	if moved == compact {
		return compact, nil
	}
	if _, err := s.ws.setCompact.ExecContext(ctx, sql.Named("rev", moved)); err != nil {
		return 0, fmt.Errorf("prune history: %w", mapErr(err))
	}
	return moved, nil
}
