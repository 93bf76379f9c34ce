package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/kvhost/kvhost/kv"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// mapErr gives a storage error its kv sentinel: a full disk is
// ErrStorageFull, a corrupt file ErrDataLoss, other I/O-level failures (a
// busy or unreadable file) ErrUnavailable, a row over SQLite's size limit
// ErrTooLarge, anything else ErrInternal. Errors that already carry a
// sentinel or a context error pass through.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	for _, known := range []error{
		kv.ErrNotFound, kv.ErrConflict, kv.ErrInvalidArgument, kv.ErrUnavailable,
		kv.ErrNotSupported, kv.ErrTooLarge, kv.ErrClosed, kv.ErrInternal, kv.ErrCompacted,
		kv.ErrStorageFull, kv.ErrDataLoss,
		context.Canceled, context.DeadlineExceeded,
	} {
		if errors.Is(err, known) {
			return err
		}
	}
	// database/sql's errors for a use racing with Close. The package does
	// not export these two, so their text is the only handle on them.
	if msg := err.Error(); errors.Is(err, sql.ErrConnDone) || msg == "sql: database is closed" || msg == "sql: statement is closed" {
		return fmt.Errorf("%w: %w", kv.ErrClosed, err)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_TOOBIG:
			return fmt.Errorf("%w: %w", kv.ErrTooLarge, err)
		case sqlite3.SQLITE_INTERRUPT:
			return fmt.Errorf("%w: %w", context.Canceled, err)
		case sqlite3.SQLITE_FULL:
			return fmt.Errorf("%w: %w", kv.ErrStorageFull, err)
		case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
			return fmt.Errorf("%w: %w", kv.ErrDataLoss, err)
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR,
			sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_PROTOCOL, sqlite3.SQLITE_PERM, sqlite3.SQLITE_NOLFS,
			sqlite3.SQLITE_AUTH:
			return fmt.Errorf("%w: %w", kv.ErrUnavailable, err)
		}
	}
	return fmt.Errorf("%w: %w", kv.ErrInternal, err)
}
