package sdk

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Verdicts of the answer record.
const (
	VerdictAllow    = 0
	VerdictDeny     = 1
	VerdictAllowTTL = 2
)

// Answer record layout, version 1.
const (
	AnswerVersion    = 1
	AnswerHeaderSize = 16
	// MaxCodeLen and MaxReasonLen bound the strings of an answer; longer
	// ones are cut.
	MaxCodeLen   = 64
	MaxReasonLen = 1024
)

// Decision is a policy's answer. The zero Decision allows.
type Decision struct {
	verdict uint8
	ttl     time.Duration
	code    string
	reason  string
}

// Allow lets the operation proceed unchanged.
func Allow() Decision { return Decision{} }

// Deny refuses the operation. The reason reaches the caller, prefixed by
// the policy's name, so say what rule was broken and how to comply.
func Deny(reason string) Decision { return Decision{verdict: VerdictDeny, reason: reason} }

// Denyf is Deny with formatting.
func Denyf(format string, args ...any) Decision { return Deny(fmt.Sprintf(format, args...)) }

// AllowWithTTL lets the operation proceed with its TTL replaced; zero
// removes the expiry. Only put and refresh_ttl use TTLs: for other
// operations the host ignores the rewrite.
func AllowWithTTL(ttl time.Duration) Decision {
	if ttl < 0 {
		ttl = 0
	}
	return Decision{verdict: VerdictAllowTTL, ttl: ttl}
}

// WithCode attaches a short machine-readable code (such as
// "key_too_long") to a decision. The host counts denials by policy and
// code, so codes should come from a small fixed set; the reason carries
// the details.
func (d Decision) WithCode(code string) Decision {
	d.code = code
	return d
}

// Allowed reports whether the decision lets the operation proceed.
func (d Decision) Allowed() bool { return d.verdict != VerdictDeny }

// Reason returns the denial reason.
func (d Decision) Reason() string { return d.reason }

// Code returns the decision's code.
func (d Decision) Code() string { return d.code }

// TTL returns the rewritten TTL and whether there is one.
func (d Decision) TTL() (time.Duration, bool) { return d.ttl, d.verdict == VerdictAllowTTL }

// String describes the decision for test failures.
func (d Decision) String() string {
	switch d.verdict {
	case VerdictDeny:
		if d.code != "" {
			return fmt.Sprintf("deny[%s]: %s", d.code, d.reason)
		}
		return "deny: " + d.reason
	case VerdictAllowTTL:
		return fmt.Sprintf("allow with ttl %v", d.ttl)
	}
	return "allow"
}

// AppendDecision appends the answer record for d to dst. A plain Allow
// needs no record: the evaluate export returns 0 for it.
func AppendDecision(dst []byte, d Decision) []byte {
	code, reason := d.code, d.reason
	if len(code) > MaxCodeLen {
		code = code[:MaxCodeLen]
	}
	if len(reason) > MaxReasonLen {
		reason = reason[:MaxReasonLen]
	}
	var h [AnswerHeaderSize]byte
	h[0] = AnswerVersion
	h[1] = d.verdict
	h[2] = byte(len(code))
	binary.LittleEndian.PutUint32(h[4:], uint32(len(reason)))
	binary.LittleEndian.PutUint64(h[8:], uint64(ttlMillis(d.ttl)))
	dst = append(dst, h[:]...)
	dst = append(dst, code...)
	return append(dst, reason...)
}

// ttlMillis converts a TTL to whole milliseconds, rounding a positive
// sub-millisecond TTL up so that it never turns into "no expiry".
func ttlMillis(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}
