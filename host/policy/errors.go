package policy

import (
	"errors"
	"fmt"
	"time"

	"github.com/kvhost/kvhost/kv"
)

var (
	// ErrDenied is wrapped by every denial. It wraps
	// kv.ErrPermissionDenied, so errors.Is(err,
	// kv.ErrPermissionDenied) holds for a denied operation.
	ErrDenied = fmt.Errorf("%w by policy", kv.ErrPermissionDenied)
	// ErrPolicyFailed is wrapped when a policy in enforce mode could not
	// decide (deadline, trap, memory, crash, malformed answer) and does
	// not fail open: the operation is refused. It wraps
	// kv.ErrInternal: the caller did nothing wrong.
	ErrPolicyFailed = fmt.Errorf("%w: policy failed", kv.ErrInternal)
	// ErrInvalidPolicy is wrapped by Load errors about a module or its
	// configuration.
	ErrInvalidPolicy = errors.New("policy: invalid policy")
	// ErrClosed is returned by an engine after Close.
	ErrClosed = fmt.Errorf("policy: engine %w", kv.ErrClosed)
)

// DeniedError is the error of a denied operation.
type DeniedError struct {
	Policy string
	Code   string
	Reason string
}

func (e *DeniedError) Error() string {
	return fmt.Sprintf("%s: policy %q: %s", kv.ErrPermissionDenied, e.Policy, e.Reason)
}

// Unwrap lets errors.Is(err, ErrDenied) and
// errors.Is(err, kv.ErrPermissionDenied) hold.
func (e *DeniedError) Unwrap() error { return ErrDenied }

// FailureKind says how a policy failed.
type FailureKind int

// Failure kinds.
const (
	FailTimeout     FailureKind = iota + 1 // overran its deadline
	FailTrap                               // wasm trap (unreachable, bad memory access, stack overflow, ...)
	FailOutOfMemory                        // reached its memory limit
	FailCrash                              // exited (a Go panic or fatal error exits)
	FailBadAnswer                          // answered something the ABI does not allow
	FailUnavailable                        // no instance could be made
)

func (k FailureKind) String() string {
	switch k {
	case FailTimeout:
		return "timeout"
	case FailTrap:
		return "trap"
	case FailOutOfMemory:
		return "out_of_memory"
	case FailCrash:
		return "crash"
	case FailBadAnswer:
		return "bad_answer"
	case FailUnavailable:
		return "unavailable"
	}
	return fmt.Sprintf("failure(%d)", int(k))
}

// FailureError is the error of an operation refused because a policy
// failed (fail closed).
type FailureError struct {
	Policy string
	Kind   FailureKind
	// Detail is the wazero error or the policy's last words on stderr.
	Detail string
	// Timeout is the policy's deadline, for FailTimeout.
	Timeout time.Duration
}

func (e *FailureError) Error() string {
	return fmt.Sprintf("%s: policy %q failed (%s), failing closed: %s", kv.ErrInternal, e.Policy, e.Kind, e.detail())
}

func (e *FailureError) detail() string {
	if e.Kind == FailTimeout {
		return fmt.Sprintf("ran past its %v deadline and was stopped", e.Timeout)
	}
	return e.Detail
}

// Unwrap lets errors.Is(err, ErrPolicyFailed) hold.
func (e *FailureError) Unwrap() error { return ErrPolicyFailed }
