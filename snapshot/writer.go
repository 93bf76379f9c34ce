package snapshot

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/kvhost/kvhost/kv"
)

// Writer writes a snapshot: NewWriter writes the header, Write one record
// at a time in ascending order of version, Close the trailer. It holds no
// more than one record and a write buffer.
type Writer struct {
	w     *bufio.Writer
	sum   hash.Hash
	count uint64
	last  int64
	err   error
	buf   []byte
}

// NewWriter writes h's header to w (Version is set to FormatVersion; a
// zero Created becomes now).
func NewWriter(w io.Writer, h Header) (*Writer, error) {
	if len(h.Source) > MaxSourceLen {
		return nil, fmt.Errorf("%w: source is %d bytes, more than %d", kv.ErrInvalidArgument, len(h.Source), MaxSourceLen)
	}
	if h.Revision < 0 {
		return nil, fmt.Errorf("%w: revision %d is negative", kv.ErrInvalidArgument, h.Revision)
	}
	if h.Created.IsZero() {
		h.Created = time.Now()
	}
	sw := &Writer{sum: sha256.New()}
	sw.w = bufio.NewWriterSize(io.MultiWriter(w, sw.sum), 256<<10)
	b := append(make([]byte, 0, headerFixed+len(h.Source)), Magic...)
	b = binary.BigEndian.AppendUint16(b, FormatVersion)
	b = binary.BigEndian.AppendUint16(b, 0) // flags: none defined
	b = binary.BigEndian.AppendUint64(b, uint64(h.Revision))
	b = binary.BigEndian.AppendUint64(b, uint64(h.Created.UnixMilli()))
	b = binary.BigEndian.AppendUint16(b, uint16(len(h.Source)))
	b = append(b, h.Source...)
	if _, err := sw.w.Write(b); err != nil {
		return nil, fmt.Errorf("snapshot: writing the header: %w", err)
	}
	return sw, nil
}

// Write appends one record. Its version must be above the previous
// record's, its key valid and its value at most MaxValueLen.
func (w *Writer) Write(r Record) error {
	if w.err != nil {
		return w.err
	}
	switch {
	case r.Version <= w.last:
		return fmt.Errorf("%w: record %q at version %d after version %d: records go in ascending order of version", kv.ErrInvalidArgument, r.Key, r.Version, w.last)
	case len(r.Value) > MaxValueLen:
		return fmt.Errorf("%w: record %q: value is %d bytes, more than %d", kv.ErrInvalidArgument, r.Key, len(r.Value), MaxValueLen)
	case r.ExpiresAt.Before(time.UnixMilli(1)) && !r.ExpiresAt.IsZero():
		return fmt.Errorf("%w: record %q: expiry %v is before 1970", kv.ErrInvalidArgument, r.Key, r.ExpiresAt)
	}
	if err := kv.ValidateKey(r.Key); err != nil {
		return fmt.Errorf("snapshot: record: %w", err)
	}
	b := append(w.buf[:0], tagRecord)
	b = binary.BigEndian.AppendUint16(b, uint16(len(r.Key)))
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.Value)))
	b = binary.BigEndian.AppendUint64(b, uint64(r.Version))
	b = binary.BigEndian.AppendUint64(b, uint64(kv.UnixMillis(r.ExpiresAt)))
	b = append(b, r.Key...)
	w.buf = b
	if _, err := w.w.Write(b); err != nil {
		w.err = fmt.Errorf("snapshot: writing record %d: %w", w.count+1, err)
		return w.err
	}
	if _, err := w.w.Write(r.Value); err != nil {
		w.err = fmt.Errorf("snapshot: writing record %d: %w", w.count+1, err)
		return w.err
	}
	w.count++
	w.last = r.Version
	return nil
}

// Count is the number of records written so far.
func (w *Writer) Count() uint64 { return w.count }

// Close writes the trailer (the count and the checksum) and flushes; it
// does not close the underlying writer. It returns the checksum.
func (w *Writer) Close() ([32]byte, error) {
	var sum [32]byte
	if w.err != nil {
		return sum, w.err
	}
	b := append(w.buf[:0], tagEnd)
	b = binary.BigEndian.AppendUint64(b, w.count)
	if _, err := w.w.Write(b); err != nil {
		return sum, fmt.Errorf("snapshot: writing the trailer: %w", err)
	}
	if err := w.w.Flush(); err != nil { // the checksum covers what was flushed
		return sum, fmt.Errorf("snapshot: writing the trailer: %w", err)
	}
	copy(sum[:], w.sum.Sum(nil))
	if _, err := w.w.Write(sum[:]); err != nil {
		return sum, fmt.Errorf("snapshot: writing the checksum: %w", err)
	}
	if err := w.w.Flush(); err != nil {
		return sum, fmt.Errorf("snapshot: writing the checksum: %w", err)
	}
	w.err = fmt.Errorf("%w: snapshot writer is closed", kv.ErrClosed)
	return sum, nil
}
