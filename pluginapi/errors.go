package pluginapi

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kvhost/kvhost/pluginapi/internal/pluginpb"
)

// Sentinel errors. Every error a backend returns is, or wraps, one of these,
// and each keeps its identity across the plugin wire: errors.Is works on
// the host side exactly as it does inside the backend. (ErrClosed is the
// one refinement that does not cross: it arrives as the ErrUnavailable it
// wraps.)
var (
	ErrNotFound         = errors.New("kvhost: key not found")
	ErrConflict         = errors.New("kvhost: condition failed")
	ErrInvalidArgument  = errors.New("kvhost: invalid argument")
	ErrUnavailable      = errors.New("kvhost: backend unavailable")
	ErrNotSupported     = errors.New("kvhost: not supported by this backend")
	ErrWatchOverflow    = errors.New("kvhost: watch fell behind and was ended; resync and watch again")
	ErrTooLarge         = errors.New("kvhost: too large")
	ErrPermissionDenied = errors.New("kvhost: permission denied")
	ErrUnauthenticated  = errors.New("kvhost: unauthenticated")
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

// errorCodes is the one table mapping sentinels to gRPC codes and back.
var errorCodes = []struct {
	err  error
	code codes.Code
}{
	{ErrNotFound, codes.NotFound},
	{ErrConflict, codes.FailedPrecondition},
	{ErrInvalidArgument, codes.InvalidArgument},
	{ErrUnavailable, codes.Unavailable},
	{ErrNotSupported, codes.Unimplemented},
	{ErrWatchOverflow, codes.Aborted},
	{ErrTooLarge, codes.ResourceExhausted},
	{ErrPermissionDenied, codes.PermissionDenied},
	{ErrUnauthenticated, codes.Unauthenticated},
	{context.Canceled, codes.Canceled},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
	{ErrInternal, codes.Internal},
}

// Code returns the gRPC code for err by the error table; codes.Unknown for
// an error outside it, codes.OK for nil.
func Code(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	for _, row := range errorCodes {
		if errors.Is(err, row.err) {
			return row.code
		}
	}
	if s, ok := status.FromError(err); ok {
		return s.Code()
	}
	return codes.Unknown
}

// ToStatus turns an error into a gRPC status error by the error table,
// keeping its message and the detail of a *ConflictError.
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := err.(interface{ GRPCStatus() *status.Status }); ok && Code(err) == codes.Unknown {
		return err
	}
	st := status.New(Code(err), err.Error())
	var ce *ConflictError
	if errors.As(err, &ce) {
		if withDetail, derr := st.WithDetails(&pluginpb.ErrorDetail{
			Key: ce.Key, CurrentVersion: ce.CurrentVersion, OpIndex: int32(ce.OpIndex), HasConflict: true,
		}); derr == nil {
			st = withDetail
		}
	}
	return st.Err()
}

// FromStatus turns a gRPC status error back into an error that wraps the
// sentinel of its code, keeping the far side's message. Other errors pass
// through unchanged.
func FromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	for _, d := range st.Details() {
		if det, ok := d.(*pluginpb.ErrorDetail); ok && det.HasConflict {
			return &ConflictError{Key: det.Key, CurrentVersion: det.CurrentVersion, OpIndex: int(det.OpIndex)}
		}
	}
	var sentinel error
	for _, row := range errorCodes {
		if row.code == st.Code() {
			sentinel = row.err
			break
		}
	}
	if sentinel == nil {
		sentinel = ErrInternal
	}
	return &remoteError{sentinel: sentinel, msg: st.Message()}
}

// remoteError is an error that came over the wire: it prints the far side's
// message and unwraps to the sentinel its status code stands for.
type remoteError struct {
	sentinel error
	msg      string
}

func (e *remoteError) Error() string {
	if e.msg == "" {
		return e.sentinel.Error()
	}
	return e.msg
}

func (e *remoteError) Unwrap() error { return e.sentinel }

// GRPCStatus lets a remote error be forwarded over another gRPC hop with
// its code intact.
func (e *remoteError) GRPCStatus() *status.Status {
	return status.New(Code(e.sentinel), e.Error())
}

// invalid wraps ErrInvalidArgument with a message naming the problem.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidArgument, fmt.Sprintf(format, args...))
}
