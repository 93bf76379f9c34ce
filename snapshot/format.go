package snapshot

import (
	"errors"
	"time"

	"github.com/kvhost/kvhost/kv"
)

// Magic opens every snapshot file. The high first byte catches a transfer
// that strips the eighth bit; the newline one that rewrites line ends.
const Magic = "\x89KVSNAP\n"

// FormatVersion is the version of the layout this package writes and the
// only one it reads.
const FormatVersion = 1

// Limits a reader enforces before it allocates anything.
const (
	// MaxSourceLen bounds the header's source text.
	MaxSourceLen = 4096
	// MaxValueLen bounds one record's value (the contract's largest
	// value a backend must take is 16 MiB; servers may allow more).
	MaxValueLen = 256 << 20
)

// Tags that start a record and the trailer.
const (
	tagEnd    = 0x00
	tagRecord = 0x01
)

// Sizes of the fixed parts.
const (
	headerFixed  = len(Magic) + 2 + 2 + 8 + 8 + 2 // magic, version, flags, revision, created, source length
	recordFixed  = 1 + 2 + 4 + 8 + 8              // tag, key length, value length, version, expiry
	trailerFixed = 1 + 8 + 32                     // tag, count, checksum
)

// Errors a Reader returns, wrapped with what it found.
var (
	// ErrNotSnapshot: the file does not start with Magic.
	ErrNotSnapshot = errors.New("snapshot: not a kvhost snapshot (bad magic)")
	// ErrVersion: the file's format version is not one this build reads.
	ErrVersion = errors.New("snapshot: unsupported format version")
	// ErrTruncated: the file ends before its trailer.
	ErrTruncated = errors.New("snapshot: truncated")
	// ErrCorrupt: a header, record or trailer field is impossible.
	ErrCorrupt = errors.New("snapshot: corrupt")
	// ErrChecksum: the SHA-256 in the trailer does not match the bytes.
	ErrChecksum = errors.New("snapshot: checksum mismatch")
)

// Header describes the image.
type Header struct {
	// Version is the format version (FormatVersion when written).
	Version int
	// Revision is the store revision the image is the state at (0:
	// unknown).
	Revision int64
	// Created is when the image was made, to the millisecond.
	Created time.Time
	// Source says where the image came from, for people (at most
	// MaxSourceLen bytes).
	Source string
}

// Record is one key of the image. Version is the revision of the key's
// last value change in the store it came from; a restore cannot give it
// back (the target assigns its own revisions) but keeps the order of
// versions. ExpiresAt is zero when the key never expires.
type Record struct {
	Key       string
	Value     []byte
	Version   int64
	ExpiresAt time.Time
}

// TTL is what is left of the record's time to live at now: 0 and true
// when it never expires, 0 and false when it has expired by now (a
// restore skips it), else at least a millisecond.
func (r Record) TTL(now time.Time) (time.Duration, bool) {
	if r.ExpiresAt.IsZero() {
		return 0, true
	}
	left := kv.UnixMillis(r.ExpiresAt) - kv.UnixMillis(now)
	if left <= 0 {
		return 0, false
	}
	return kv.Millis(left), true
}
