package snapshot

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"
	"unicode/utf8"

	"github.com/kvhost/kvhost/kv"
)

// Reader reads a snapshot one record at a time. It checks every field as
// it goes and the count and checksum at the end: Next returns io.EOF only
// after a trailer that matches.
type Reader struct {
	r      *bufio.Reader
	sum    hash.Hash
	header Header
	count  uint64
	last   int64
	offset int64
	err    error
	fixed  [trailerFixed]byte
	digest [32]byte
}

// NewReader reads and checks the header.
func NewReader(r io.Reader) (*Reader, error) {
	sr := &Reader{r: bufio.NewReaderSize(r, 256<<10), sum: sha256.New()}
	b, err := sr.read(sr.fixed[:0], len(Magic))
	if err != nil {
		return nil, sr.fail(err, "the magic")
	}
	if string(b) != Magic {
		return nil, fmt.Errorf("%w: the file starts with %q, not %q", ErrNotSnapshot, b, Magic)
	}
	if b, err = sr.read(sr.fixed[:0], headerFixed-len(Magic)); err != nil {
		return nil, sr.fail(err, "the header")
	}
	version := binary.BigEndian.Uint16(b)
	if version != FormatVersion {
		return nil, fmt.Errorf("%w: the file is format version %d; this kvhost reads version %d", ErrVersion, version, FormatVersion)
	}
	if flags := binary.BigEndian.Uint16(b[2:]); flags != 0 {
		return nil, fmt.Errorf("%w: header flags %#04x: none are defined in version %d", ErrCorrupt, flags, FormatVersion)
	}
	rev := int64(binary.BigEndian.Uint64(b[4:]))
	created := int64(binary.BigEndian.Uint64(b[12:]))
	n := int(binary.BigEndian.Uint16(b[20:]))
	switch {
	case rev < 0:
		return nil, fmt.Errorf("%w: header revision %d is negative", ErrCorrupt, rev)
	case n > MaxSourceLen:
		return nil, fmt.Errorf("%w: header source is %d bytes, more than %d", ErrCorrupt, n, MaxSourceLen)
	}
	src, err := sr.read(nil, n)
	if err != nil {
		return nil, sr.fail(err, "the header's source")
	}
	if !utf8.Valid(src) {
		return nil, fmt.Errorf("%w: header source is not UTF-8", ErrCorrupt)
	}
	sr.header = Header{Version: int(version), Revision: rev, Created: time.UnixMilli(created), Source: string(src)}
	return sr, nil
}

// Header is the file's header.
func (r *Reader) Header() Header { return r.header }

// Count is the number of records read so far (all of them after io.EOF).
func (r *Reader) Count() uint64 { return r.count }

// Checksum is the file's SHA-256 as its trailer states it, once Next has
// returned io.EOF.
func (r *Reader) Checksum() [32]byte { return r.digest }

// Next returns the next record, or io.EOF after the trailer was read and
// matched. Any other error is final and wraps ErrTruncated, ErrCorrupt or
// ErrChecksum (or the underlying reader's error).
func (r *Reader) Next() (Record, error) {
	if r.err != nil {
		return Record{}, r.err
	}
	rec, err := r.next()
	if err != nil {
		r.err = err
	}
	return rec, err
}

func (r *Reader) next() (Record, error) {
	what := fmt.Sprintf("record %d", r.count+1)
	tag, err := r.read(r.fixed[:0], 1)
	if err != nil {
		return Record{}, r.fail(err, what+" or the trailer")
	}
	switch tag[0] {
	case tagEnd:
		return Record{}, r.trailer()
	case tagRecord:
	default:
		return Record{}, fmt.Errorf("%w: %s at offset %d: tag %#02x is neither a record nor the trailer", ErrCorrupt, what, r.offset-1, tag[0])
	}
	b, err := r.read(r.fixed[:0], recordFixed-1)
	if err != nil {
		return Record{}, r.fail(err, what)
	}
	klen := int(binary.BigEndian.Uint16(b))
	vlen := int64(binary.BigEndian.Uint32(b[2:]))
	version := int64(binary.BigEndian.Uint64(b[6:]))
	expires := int64(binary.BigEndian.Uint64(b[14:]))
	switch {
	case klen == 0 || klen > kv.MaxKeyLen:
		return Record{}, fmt.Errorf("%w: %s: key length %d is not between 1 and %d", ErrCorrupt, what, klen, kv.MaxKeyLen)
	case vlen > MaxValueLen:
		return Record{}, fmt.Errorf("%w: %s: value length %d is more than %d", ErrCorrupt, what, vlen, MaxValueLen)
	case version <= r.last:
		return Record{}, fmt.Errorf("%w: %s: version %d is not above the previous record's %d", ErrCorrupt, what, version, r.last)
	case r.header.Revision > 0 && version > r.header.Revision:
		return Record{}, fmt.Errorf("%w: %s: version %d is above the image's revision %d", ErrCorrupt, what, version, r.header.Revision)
	case expires < 0:
		return Record{}, fmt.Errorf("%w: %s: expiry %d is negative", ErrCorrupt, what, expires)
	}
	key, err := r.read(nil, klen)
	if err != nil {
		return Record{}, r.fail(err, what)
	}
	if err := kv.ValidateKey(string(key)); err != nil {
		return Record{}, fmt.Errorf("%w: %s: %w", ErrCorrupt, what, err)
	}
	value, err := r.read(nil, int(vlen))
	if err != nil {
		return Record{}, r.fail(err, what+" "+fmt.Sprintf("%q", key))
	}
	r.count++
	r.last = version
	return Record{Key: string(key), Value: value, Version: version, ExpiresAt: kv.FromUnixMillis(expires)}, nil
}

// trailer checks the count, the checksum and that nothing follows.
func (r *Reader) trailer() error {
	b, err := r.read(r.fixed[:0], 8)
	if err != nil {
		return r.fail(err, "the trailer")
	}
	if n := binary.BigEndian.Uint64(b); n != r.count {
		return fmt.Errorf("%w: the trailer counts %d records, the file holds %d", ErrCorrupt, n, r.count)
	}
	want := r.sum.Sum(nil)
	got := r.fixed[:32]
	if _, err := io.ReadFull(r.r, got); err != nil {
		return r.fail(err, "the trailer's checksum")
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("%w: the trailer says sha256 %x, the bytes before it hash to %x", ErrChecksum, got, want)
	}
	copy(r.digest[:], got)
	if _, err := r.r.ReadByte(); err == nil {
		return fmt.Errorf("%w: data follows the trailer at offset %d", ErrCorrupt, r.offset+32)
	} else if !errors.Is(err, io.EOF) {
		return fmt.Errorf("snapshot: reading after the trailer: %w", err)
	}
	return io.EOF
}

// read appends n bytes to dst, hashing them. It grows dst as data arrives,
// so a damaged length costs no more memory than the file holds.
func (r *Reader) read(dst []byte, n int) ([]byte, error) {
	const chunk = 1 << 20
	start := len(dst)
	for n > 0 {
		m := min(n, chunk)
		dst = append(dst, make([]byte, m)...)
		if _, err := io.ReadFull(r.r, dst[len(dst)-m:]); err != nil {
			return nil, err
		}
		n -= m
	}
	r.sum.Write(dst[start:])
	r.offset += int64(len(dst) - start)
	return dst, nil
}

// fail names a read error: an early end is ErrTruncated.
func (r *Reader) fail(err error, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: the file ends in %s (after %d records, %d bytes)", ErrTruncated, what, r.count, r.offset)
	}
	return fmt.Errorf("snapshot: reading %s: %w", what, err)
}

// Verify reads a whole snapshot and checks it, holding one record at a
// time. It returns the header, the number of records and the checksum.
func Verify(r io.Reader) (Header, uint64, [32]byte, error) {
	sr, err := NewReader(r)
	if err != nil {
		return Header{}, 0, [32]byte{}, err
	}
	for {
		if _, err := sr.Next(); errors.Is(err, io.EOF) {
			return sr.Header(), sr.Count(), sr.Checksum(), nil
		} else if err != nil {
			return sr.Header(), sr.Count(), [32]byte{}, err
		}
	}
}
