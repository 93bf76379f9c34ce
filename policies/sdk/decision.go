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
//
// It is two words so that returning it copies registers: in wasm a
// larger struct is copied with memory.copy, a call into the host.
type Decision struct {
	// ttl is the rewritten TTL plus one, 0 when there is none.
	ttl    time.Duration
	denial *denial
}

type denial struct {
	code, reason string
}

// Allow lets the operation proceed unchanged.
func Allow() Decision { return Decision{} }

// Deny refuses the operation. The reason reaches the caller, prefixed by
// the policy's name, so say what rule was broken and how to comply.
func Deny(reason string) Decision { return Decision{denial: &denial{reason: reason}} }

// Denyf is Deny with formatting.
func Denyf(format string, args ...any) Decision { return Deny(fmt.Sprintf(format, args...)) }

// AllowWithTTL lets the operation proceed with its TTL replaced; zero
// removes the expiry. Only put and refresh_ttl use TTLs: for other
// operations the host ignores the rewrite.
func AllowWithTTL(ttl time.Duration) Decision {
	if ttl < 0 {
		ttl = 0
	}
	return Decision{ttl: ttl + 1}
}

// WithCode attaches a short machine-readable code (such as
// "key_too_long") to a denial. The host counts denials by policy and
// code, so codes should come from a small fixed set; the reason carries
// the details.
func (d Decision) WithCode(code string) Decision {
	if d.denial != nil {
		d.denial = &denial{code: code, reason: d.denial.reason}
	}
	return d
}

func (d Decision) verdict() uint8 {
	switch {
	case d.denial != nil:
		return VerdictDeny
	case d.ttl > 0:
		return VerdictAllowTTL
	}
	return VerdictAllow
}

// Allowed reports whether the decision lets the operation proceed.
func (d Decision) Allowed() bool { return d.denial == nil }

// Reason returns the denial reason.
func (d Decision) Reason() string {
	if d.denial == nil {
		return ""
	}
	return d.denial.reason
}

// Code returns the denial's code.
func (d Decision) Code() string {
	if d.denial == nil {
		return ""
	}
	return d.denial.code
}

// TTL returns the rewritten TTL and whether there is one.
func (d Decision) TTL() (time.Duration, bool) {
	if d.denial != nil || d.ttl == 0 {
		return 0, false
	}
	return d.ttl - 1, true
}

// String describes the decision for test failures.
func (d Decision) String() string {
	switch d.verdict() {
	case VerdictDeny:
		if d.Code() != "" {
			return fmt.Sprintf("deny[%s]: %s", d.Code(), d.Reason())
		}
		return "deny: " + d.Reason()
	case VerdictAllowTTL:
		ttl, _ := d.TTL()
		return fmt.Sprintf("allow with ttl %v", ttl)
	}
	return "allow"
}

// AppendDecision appends the answer record for d to dst. A plain Allow
// needs no record: the evaluate export returns 0 for it.
func AppendDecision(dst []byte, d Decision) []byte {
	code, reason := d.Code(), d.Reason()
	ttl, _ := d.TTL()
	if len(code) > MaxCodeLen {
		code = code[:MaxCodeLen]
	}
	if len(reason) > MaxReasonLen {
		reason = reason[:MaxReasonLen]
	}
	var h [AnswerHeaderSize]byte
	h[0] = AnswerVersion
	h[1] = d.verdict()
	h[2] = byte(len(code))
	binary.LittleEndian.PutUint32(h[4:], uint32(len(reason)))
	binary.LittleEndian.PutUint64(h[8:], uint64(ttlMillis(ttl)))
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
