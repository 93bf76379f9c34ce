// Package rpcerr carries kvhost's errors across gRPC: one table maps each
// sentinel of package kv to a gRPC code and a stable reason string, sent
// in a google.rpc.ErrorInfo detail (domain "kvhost"). Two errors may share
// a code and still arrive as themselves, because the reason, not the code,
// names the error. Both wires use it: the plugin protocol and the public
// API. A client in another language reads the reason from the standard
// detail; this package is the Go side.
package rpcerr

import (
	"context"
	"errors"
	"strconv"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kvhost/kvhost/kv"
)

// Domain is the ErrorInfo domain of kvhost's errors.
const Domain = "kvhost"

// Row is one line of the error table.
type Row struct {
	Err    error
	Reason string
	Code   codes.Code
}

// Table is the one error table. Reasons are stable: a reason is never
// renamed or reused, only added. A code's first row is the error an
// untagged status of that code (from a peer without reasons, or gRPC
// itself) arrives as.
var Table = []Row{
	{kv.ErrNotFound, "NOT_FOUND", codes.NotFound},
	{kv.ErrConflict, "CONFLICT", codes.FailedPrecondition},
	{kv.ErrInvalidArgument, "INVALID_ARGUMENT", codes.InvalidArgument},
	{kv.ErrUnavailable, "UNAVAILABLE", codes.Unavailable},
	{kv.ErrNotSupported, "NOT_SUPPORTED", codes.Unimplemented},
	{kv.ErrWatchOverflow, "WATCH_OVERFLOW", codes.Aborted},
	{kv.ErrTooLarge, "TOO_LARGE", codes.ResourceExhausted},
	{kv.ErrPermissionDenied, "PERMISSION_DENIED", codes.PermissionDenied},
	{kv.ErrUnauthenticated, "UNAUTHENTICATED", codes.Unauthenticated},
	{kv.ErrCompacted, "COMPACTED", codes.OutOfRange},
	{kv.ErrStorageFull, "STORAGE_FULL", codes.ResourceExhausted},
	{kv.ErrDataLoss, "DATA_LOSS", codes.DataLoss},
	{context.Canceled, "CANCELED", codes.Canceled},
	{context.DeadlineExceeded, "DEADLINE_EXCEEDED", codes.DeadlineExceeded},
	{kv.ErrInternal, "INTERNAL", codes.Internal},
}

// Metadata keys of the ErrorInfo detail.
const (
	MetaKey            = "key"
	MetaCurrentVersion = "current_version"
	MetaOpIndex        = "op_index"
	MetaRequested      = "requested_revision"
	MetaOldest         = "oldest_revision"
)

func lookup(err error) (Row, bool) {
	for _, row := range Table {
		if errors.Is(err, row.Err) {
			return row, true
		}
	}
	return Row{}, false
}

// Code returns the gRPC code for err by the table; codes.Unknown for an
// error outside it, codes.OK for nil.
func Code(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	if row, ok := lookup(err); ok {
		return row.Code
	}
	if s, ok := status.FromError(err); ok {
		return s.Code()
	}
	return codes.Unknown
}

// Reason returns the table's reason for err, "" for an error outside it.
func Reason(err error) string {
	row, _ := lookup(err)
	return row.Reason
}

// ToStatus turns an error into a gRPC status error by the table, keeping
// its message; the detail carries the reason and, for a *ConflictError or
// a *CompactedError, its fields. A status error outside the table passes
// through unchanged.
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	row, ok := lookup(err)
	if !ok {
		if _, isStatus := err.(interface{ GRPCStatus() *status.Status }); isStatus {
			return err
		}
		row = Row{Err: kv.ErrInternal, Reason: "INTERNAL", Code: codes.Internal}
	}
	st := status.New(row.Code, err.Error())
	info := &errdetails.ErrorInfo{Reason: row.Reason, Domain: Domain}
	var ce *kv.ConflictError
	var ke *kv.CompactedError
	switch {
	case errors.As(err, &ce):
		info.Metadata = map[string]string{
			MetaKey:            ce.Key,
			MetaCurrentVersion: strconv.FormatInt(ce.CurrentVersion, 10),
			MetaOpIndex:        strconv.Itoa(ce.OpIndex),
		}
	case errors.As(err, &ke):
		info.Metadata = map[string]string{
			MetaRequested: strconv.FormatInt(ke.Requested, 10),
			MetaOldest:    strconv.FormatInt(ke.Oldest, 10),
		}
	}
	if withDetail, derr := st.WithDetails(info); derr == nil {
		st = withDetail
	}
	return st.Err()
}

// FromStatus turns a gRPC status error back into an error that wraps the
// sentinel its reason names (or, without a kvhost reason, the first
// sentinel of its code), keeping the far side's message. A *ConflictError
// and a *CompactedError arrive whole. Other errors pass through unchanged.
func FromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	var info *errdetails.ErrorInfo
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.Domain == Domain {
			info = ei
			break
		}
	}
	var sentinel error
	if info != nil {
		for _, row := range Table {
			if row.Reason == info.Reason {
				sentinel = row.Err
				break
			}
		}
		switch sentinel {
		case kv.ErrConflict:
			if _, has := info.Metadata[MetaKey]; has {
				return &kv.ConflictError{
					Key:            info.Metadata[MetaKey],
					CurrentVersion: atoi(info.Metadata[MetaCurrentVersion]),
					OpIndex:        int(atoi(info.Metadata[MetaOpIndex])),
				}
			}
		case kv.ErrCompacted:
			if _, has := info.Metadata[MetaOldest]; has {
				return &kv.CompactedError{Requested: atoi(info.Metadata[MetaRequested]), Oldest: atoi(info.Metadata[MetaOldest])}
			}
		}
	}
	if sentinel == nil {
		for _, row := range Table {
			if row.Code == st.Code() {
				sentinel = row.Err
				break
			}
		}
	}
	if sentinel == nil {
		sentinel = kv.ErrInternal
	}
	return &Error{sentinel: sentinel, msg: st.Message()}
}

func atoi(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

// Error is an error that came over the wire: it prints the far side's
// message and unwraps to the sentinel its reason stands for.
type Error struct {
	sentinel error
	msg      string
}

func (e *Error) Error() string {
	if e.msg == "" {
		return e.sentinel.Error()
	}
	return e.msg
}

// Unwrap returns the sentinel.
func (e *Error) Unwrap() error { return e.sentinel }

// GRPCStatus lets a remote error be forwarded over another gRPC hop with
// its code and reason intact.
func (e *Error) GRPCStatus() *status.Status {
	s, _ := status.FromError(ToStatus(e))
	return s
}
