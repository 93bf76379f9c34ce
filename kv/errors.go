package kv

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error a backend returns is, or wraps, one of
// these, and each keeps its identity across the plugin wire and the public
// API (api/rpcerr carries it as a reason in a status detail): errors.Is
// works on the far side exactly as it does here.
var (
	ErrNotFound         = errors.New("kvhost: key not found")
	ErrConflict         = errors.New("kvhost: condition failed")
	ErrInvalidArgument  = errors.New("kvhost: invalid argument")
	ErrUnavailable      = errors.New("kvhost: backend unavailable")
	ErrNotSupported     = errors.New("kvhost: not supported by this backend")
	ErrWatchOverflow    = errors.New("kvhost: watch fell behind and was ended; watch again from the last revision seen")
	ErrTooLarge         = errors.New("kvhost: too large")
	ErrPermissionDenied = errors.New("kvhost: permission denied")
	ErrUnauthenticated  = errors.New("kvhost: unauthenticated")
	// ErrCompacted: a watch asked to start at a revision older than the
	// history the backend still keeps. A *CompactedError says the oldest
	// revision still available.
	ErrCompacted = errors.New("kvhost: revision compacted")
	// ErrStorageFull: the backend's storage has no room left (a full
	// disk). The store is intact; writes succeed again once there is room.
	ErrStorageFull = errors.New("kvhost: storage is full")
	// ErrDataLoss: the backend found its stored data damaged (a corrupt
	// page). Retrying does not help; an operator must act.
	ErrDataLoss = errors.New("kvhost: stored data is damaged")
	// ErrClosed wraps ErrUnavailable: across the wire it arrives as
	// ErrUnavailable, the identity a caller acts on (retry elsewhere or later).
	ErrClosed   = fmt.Errorf("%w: closed", ErrUnavailable)
	ErrInternal = errors.New("kvhost: internal error")
)

// ConflictError is the error of a failed condition. It wraps ErrConflict
// and says what the key looked like, so a compare-and-set loop can retry
// without another read.
type ConflictError struct {
	Key string
	// CurrentVersion is the live key's version, 0 when it is absent.
	CurrentVersion int64
	// OpIndex is the failing op's index within a batch, -1 outside one.
	OpIndex int
}

func (e *ConflictError) Error() string {
	where := ""
	if e.OpIndex >= 0 {
		where = fmt.Sprintf("batch op %d: ", e.OpIndex)
	}
	if e.CurrentVersion == 0 {
		return fmt.Sprintf("%s%s: key %q is absent", where, ErrConflict, e.Key)
	}
	return fmt.Sprintf("%s%s: key %q is at version %d", where, ErrConflict, e.Key, e.CurrentVersion)
}

// Unwrap lets errors.Is(err, ErrConflict) hold.
func (e *ConflictError) Unwrap() error { return ErrConflict }

// Conflict builds a *ConflictError outside a batch.
func Conflict(key string, current int64) error {
	return &ConflictError{Key: key, CurrentVersion: current, OpIndex: -1}
}

// CompactedError is the error of a watch whose start revision is older
// than the history kept. It wraps ErrCompacted.
type CompactedError struct {
	// Requested is the start revision asked for.
	Requested int64
	// Oldest is the oldest revision a watch can still start at.
	Oldest int64
}

func (e *CompactedError) Error() string {
	return fmt.Sprintf("%s: revision %d is no longer kept; the oldest revision available is %d (list again, then watch from the list's revision plus one)",
		ErrCompacted, e.Requested, e.Oldest)
}

// Unwrap lets errors.Is(err, ErrCompacted) hold.
func (e *CompactedError) Unwrap() error { return ErrCompacted }

// invalid wraps ErrInvalidArgument with a message naming the problem.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidArgument, fmt.Sprintf(format, args...))
}
