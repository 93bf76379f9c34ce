package kv

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ValidateKey checks a key against the contract: valid UTF-8, 1 to
// MaxKeyLen bytes, no NUL. The error wraps ErrInvalidArgument and names the
// problem. Backends call it; the plugin server calls it too, so a backend
// behind the wire never sees a bad key.
func ValidateKey(key string) error {
	switch {
	case key == "":
		return invalid("key is empty")
	case len(key) > MaxKeyLen:
		return invalid("key is %d bytes, more than the %d allowed", len(key), MaxKeyLen)
	case !utf8.ValidString(key):
		return invalid("key %q is not valid UTF-8", key)
	case strings.IndexByte(key, 0) >= 0:
		return invalid("key %q contains a NUL byte", key)
	}
	return nil
}

// ValidatePrefix checks a prefix: like a key but it may be empty.
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if err := ValidateKey(prefix); err != nil {
		return fmt.Errorf("prefix: %w", err)
	}
	return nil
}

// ValidateTTL refuses negative durations.
func ValidateTTL(ttl time.Duration) error {
	if ttl < 0 {
		return invalid("ttl %v is negative", ttl)
	}
	return nil
}

// ValidateCondition checks a write condition; allowAbsent is false for
// deletes and TTL refreshes, where if-absent means nothing.
func ValidateCondition(c Condition, allowAbsent bool) error {
	switch c.Kind {
	case CondNone:
		return nil
	case CondAbsent:
		if !allowAbsent {
			return invalid("condition if-absent is meaningless here")
		}
		return nil
	case CondVersion:
		if c.Version <= 0 {
			return invalid("condition if-version needs a version above 0, got %d", c.Version)
		}
		return nil
	}
	return invalid("unknown condition kind %d", c.Kind)
}

// ValidatePut checks a put request.
func ValidatePut(req PutRequest) error {
	if err := ValidateKey(req.Key); err != nil {
		return err
	}
	if err := ValidateTTL(req.TTL); err != nil {
		return err
	}
	return ValidateCondition(req.Cond, true)
}

// ValidateBatch checks every op of a batch, naming the first bad one.
func ValidateBatch(ops []Op) error {
	if len(ops) > MaxBatchOps {
		return invalid("batch has %d ops, more than the %d allowed", len(ops), MaxBatchOps)
	}
	for i, op := range ops {
		var err error
		switch op.Kind {
		case OpPut:
			err = ValidatePut(PutRequest{Key: op.Key, Value: op.Value, TTL: op.TTL, Cond: op.Cond})
		case OpDelete:
			if err = ValidateKey(op.Key); err == nil {
				err = ValidateCondition(op.Cond, false)
			}
		default:
			err = invalid("unknown op kind %d", op.Kind)
		}
		if err != nil {
			return fmt.Errorf("batch op %d: %w", i, err)
		}
	}
	return nil
}

// ValidateGetMany checks a multi-get request.
func ValidateGetMany(keys []string) error {
	if len(keys) > MaxGetMany {
		return invalid("get-many asks for %d keys, more than the %d allowed", len(keys), MaxGetMany)
	}
	for i, k := range keys {
		if err := ValidateKey(k); err != nil {
			return fmt.Errorf("key %d: %w", i, err)
		}
	}
	return nil
}

// NormalizeList validates a list request and applies the default and
// maximum page size.
func NormalizeList(req ListRequest) (ListRequest, error) {
	if err := ValidatePrefix(req.Prefix); err != nil {
		return req, err
	}
	if req.StartAfter != "" && !utf8.ValidString(req.StartAfter) {
		return req, invalid("start-after %q is not valid UTF-8", req.StartAfter)
	}
	switch {
	case req.Limit < 0:
		return req, invalid("limit %d is negative", req.Limit)
	case req.Limit == 0:
		req.Limit = DefaultListLimit
	case req.Limit > MaxListLimit:
		req.Limit = MaxListLimit
	}
	switch {
	case req.MaxBytes < 0:
		return req, invalid("max bytes %d is negative", req.MaxBytes)
	case req.MaxBytes == 0:
		req.MaxBytes = DefaultListBytes
	case req.MaxBytes > MaxListBytes:
		req.MaxBytes = MaxListBytes
	}
	return req, nil
}

// PrefixEnd returns the smallest string greater than every string that
// starts with prefix, for range scans: key >= prefix AND key < PrefixEnd.
// It returns "" when there is no such bound (an empty prefix, or one made
// only of 0xFF bytes, which valid UTF-8 never holds).
func PrefixEnd(prefix string) string {
	b := []byte(prefix)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return ""
}

// TTLMillis converts a TTL to whole milliseconds, rounding up so that a
// positive TTL never becomes "no expiry".
func TTLMillis(ttl time.Duration) int64 {
	if ttl <= 0 {
		return 0
	}
	return int64((ttl + time.Millisecond - 1) / time.Millisecond)
}

// ExpiryAt returns the expiry instant of a TTL set at now, at millisecond
// precision; zero when ttl is 0.
func ExpiryAt(now time.Time, ttl time.Duration) time.Time {
	if ttl <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(now.UnixMilli() + TTLMillis(ttl))
}

// Expired reports whether an entry with this expiry is invisible at now.
func Expired(expiresAt, now time.Time) bool {
	return !expiresAt.IsZero() && !now.Before(expiresAt)
}

// ParseCounter parses a stored counter value; the error wraps
// ErrInvalidArgument.
func ParseCounter(key string, value []byte) (int64, error) {
	n, err := strconv.ParseInt(string(value), 10, 64)
	if err != nil {
		return 0, invalid("key %q holds %q, which is not a decimal int64 counter", key, truncate(value, 32))
	}
	return n, nil
}

// AddCounter adds delta to n, refusing overflow with ErrInvalidArgument.
func AddCounter(key string, n, delta int64) (int64, error) {
	sum := n + delta
	if (delta > 0 && sum < n) || (delta < 0 && sum > n) {
		return 0, invalid("increment of key %q by %d overflows int64 (at %d)", key, delta, n)
	}
	return sum, nil
}

func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "..."
}

// ValidateDeletePrefix refuses an empty prefix: deleting everything by
// accident is not a thing a key-value store should make easy.
func ValidateDeletePrefix(prefix string) error {
	if prefix == "" {
		return invalid("delete-prefix refuses an empty prefix")
	}
	return ValidatePrefix(prefix)
}

// ValidateRefresh checks a TTL refresh.
func ValidateRefresh(req RefreshRequest) error {
	if err := ValidateKey(req.Key); err != nil {
		return err
	}
	if err := ValidateTTL(req.TTL); err != nil {
		return err
	}
	return ValidateCondition(req.Cond, false)
}

// ValidateWatch checks a watch request.
func ValidateWatch(req WatchRequest) error {
	if err := ValidatePrefix(req.Prefix); err != nil {
		return err
	}
	if req.StartRevision < 0 {
		return invalid("watch start revision %d is negative", req.StartRevision)
	}
	return nil
}
