package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kvhost/kvhost/kv"
)

// mapErr gives a database error its kv sentinel. Server errors are mapped
// by SQLSTATE: a full disk (53100) is ErrStorageFull, damaged data
// (XX001, XX002) ErrDataLoss, a refused password ErrPermissionDenied, a
// server shutting down, refusing connections or cancelling a statement
// past statement_timeout ErrUnavailable, anything else ErrInternal. An
// error that is not the server's — a refused, reset or timed-out
// connection — is ErrUnavailable: the caller may retry, and the pool
// replaces the broken connection. Errors that already carry a sentinel
// or a context error pass through.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	for _, known := range []error{
		kv.ErrNotFound, kv.ErrConflict, kv.ErrInvalidArgument, kv.ErrUnavailable,
		kv.ErrNotSupported, kv.ErrTooLarge, kv.ErrClosed, kv.ErrInternal, kv.ErrCompacted,
		kv.ErrStorageFull, kv.ErrDataLoss, kv.ErrPermissionDenied,
		context.Canceled, context.DeadlineExceeded,
	} {
		if errors.Is(err, known) {
			return err
		}
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return fmt.Errorf("%w: %w", kv.ErrUnavailable, err)
	}
	switch {
	case pe.Code == "53100":
		return fmt.Errorf("%w: %w", kv.ErrStorageFull, err)
	case pe.Code == "XX001" || pe.Code == "XX002":
		return fmt.Errorf("%w: %w", kv.ErrDataLoss, err)
	case pe.Code == "28P01" || pe.Code == "28000":
		return fmt.Errorf("%w: %w", kv.ErrPermissionDenied, err)
	case pe.Code == "54000" || pe.Code == "54001":
		return fmt.Errorf("%w: %w", kv.ErrTooLarge, err)
	case pe.Code[:2] == "08", pe.Code[:2] == "57", // connection exception, operator intervention (shutdown, statement_timeout)
		pe.Code == "53300", pe.Code == "53000", // too many connections, insufficient resources
		pe.Code == "40001", pe.Code == "40P01", pe.Code == "55P03": // serialization, deadlock, lock_timeout: retryable
		return fmt.Errorf("%w: %w", kv.ErrUnavailable, err)
	}
	return fmt.Errorf("%w: %w", kv.ErrInternal, err)
}

// fatalAtStart reports a connection error that retrying cannot fix: a
// refused password or role, a missing database.
func fatalAtStart(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "28P01", "28000", "3D000", "42501":
			return true
		}
	}
	return false
}
