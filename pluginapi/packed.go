package pluginapi

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"

	"google.golang.org/grpc/mem"

	"github.com/kvhost/kvhost/kv"
)

// A list page crosses the plugin wire packed (ListResponse.packed) when
// the host asks for it: one buffer rather than a message per entry, which
// for a page of 10K entries is most of what the wire costs (see
// docs/PERFORMANCE.md, "Packed list pages").

// packEntries encodes entries: their number as a uvarint, then for each,
// uvarint key length, key, uvarint value length, value, uvarint version,
// uvarint expiry (Unix ms, 0 none).
func packEntries(es []kv.Entry) []byte {
	return appendPacked(make([]byte, 0, packedSize(es)), es)
}

// packEntriesPooled is packEntries into a buffer from gRPC's pool, which
// wireCodec gives back to the pool once the page is written: a server
// packs pages without garbage.
func packEntriesPooled(es []kv.Entry) []byte {
	buf := mem.DefaultBufferPool().Get(packedSize(es))
	return appendPacked((*buf)[:0], es)
}

// packedSize is a bound on what appendPacked adds for es.
func packedSize(es []kv.Entry) int {
	n := binary.MaxVarintLen64
	for _, e := range es {
		n += len(e.Key) + len(e.Value) + 4*binary.MaxVarintLen64
	}
	return n
}

func appendPacked(b []byte, es []kv.Entry) []byte {
	b = binary.AppendUvarint(b, uint64(len(es)))
	for _, e := range es {
		b = binary.AppendUvarint(b, uint64(len(e.Key)))
		b = append(b, e.Key...)
		b = binary.AppendUvarint(b, uint64(len(e.Value)))
		b = append(b, e.Value...)
		b = binary.AppendUvarint(b, uint64(e.Version))
		b = binary.AppendUvarint(b, uint64(kv.UnixMillis(e.ExpiresAt)))
	}
	return b
}

// PackedLister is a backend that writes a list page straight into the
// packed form the plugin wire carries, without making an Entry of each
// row first: a SQL backend appends the bytes of the row its driver just
// read. The plugin server uses it when the host asks for a packed page;
// List answers every other caller, and both must answer the same page:
// the conformance suite compares them on every list it makes
// (ListPackedEntries).
//
// As with io.ReaderFrom, a type that wraps a backend by embedding it and
// changes what List answers must define ListPacked too (or not embed the
// backend's): the embedded ListPacked would otherwise answer over the
// wire in its place.
type PackedLister interface {
	// ListPacked appends the page's entries to page, in key order, and
	// returns the page's More and Revision (its Entries are left nil).
	ListPacked(ctx context.Context, req kv.ListRequest, page *PackedPage) (kv.ListResult, error)
}

// PackedPage is a list page in the wire's packed form (see packEntries),
// built an entry at a time in a buffer from gRPC's pool, which the wire
// gives back once it has written the page. A backend must not keep it or
// write to it after ListPacked returns.
type PackedPage struct {
	buf []byte
	n   int
}

// packedCountBytes is the room kept at the front of a PackedPage for the
// entry count: a uvarint of up to 2 bytes counts MaxListLimit entries.
const packedCountBytes = 2

// newPackedPage starts a page in a small buffer: the pool clears the whole
// of a buffer it hands out, so a page of one entry should not take 1 MiB.
func newPackedPage() *PackedPage {
	buf := mem.DefaultBufferPool().Get(4 << 10)
	return &PackedPage{buf: (*buf)[:packedCountBytes]}
}

// Append adds an entry. key and value are only read during the call: they
// may be a driver's buffer for the current row. expiresAtMillis is Unix
// milliseconds, 0 for none.
func (p *PackedPage) Append(key, value []byte, version, expiresAtMillis int64) {
	appendEntry(p, key, value, version, expiresAtMillis)
}

// AppendString is Append for a key held as a string.
func (p *PackedPage) AppendString(key string, value []byte, version, expiresAtMillis int64) {
	appendEntry(p, key, value, version, expiresAtMillis)
}

func appendEntry[K string | []byte](p *PackedPage, key K, value []byte, version, expiresAtMillis int64) {
	need := len(key) + len(value) + 4*binary.MaxVarintLen64
	if cap(p.buf)-len(p.buf) < need {
		p.grow(need)
	}
	b := binary.AppendUvarint(p.buf, uint64(len(key)))
	b = append(b, key...)
	b = binary.AppendUvarint(b, uint64(len(value)))
	b = append(b, value...)
	b = binary.AppendUvarint(b, uint64(version))
	p.buf = binary.AppendUvarint(b, uint64(expiresAtMillis))
	p.n++
}

// Len is the number of entries appended.
func (p *PackedPage) Len() int { return p.n }

// grow moves the page to a pooled buffer at least twice as large with
// room for need more bytes, and gives the old one back.
func (p *PackedPage) grow(need int) {
	pool := mem.DefaultBufferPool()
	nb := pool.Get(max(2*cap(p.buf), len(p.buf)+need))
	old := p.buf
	p.buf = append((*nb)[:0], old...)
	pool.Put(&old)
}

// bytes ends the page: its entry count goes in front, and the buffer is
// the caller's (wireCodec gives it back to the pool).
func (p *PackedPage) bytes() []byte {
	var count [binary.MaxVarintLen64]byte
	c := binary.PutUvarint(count[:], uint64(p.n))
	if c != packedCountBytes { // fewer than 128 entries, or more than MaxListLimit
		if extra := c - packedCountBytes; extra > cap(p.buf)-len(p.buf) {
			p.grow(extra)
		}
		body := len(p.buf) - packedCountBytes
		p.buf = p.buf[:c+body]
		copy(p.buf[c:], p.buf[packedCountBytes:packedCountBytes+body])
	}
	copy(p.buf, count[:c])
	b := p.buf
	p.buf = nil
	return b
}

// ListPackedEntries runs pl's ListPacked and decodes its page as the host
// does: the answer a PackedLister's List must equal. It is for tests.
func ListPackedEntries(ctx context.Context, pl PackedLister, req kv.ListRequest) (kv.ListResult, error) {
	page := newPackedPage()
	res, err := pl.ListPacked(ctx, req, page)
	b := page.bytes() // the entries are views of it: it stays out of the pool
	if err != nil {
		return kv.ListResult{}, err
	}
	res.Entries, err = unpackEntries(b)
	return res, err
}

// unpackEntries decodes what packEntries encoded, without copying: the
// values are slices of b (capped, so that appending to one cannot write
// into the next) and the keys are strings over b's bytes. b must not
// change afterwards, nor be used for anything else: it is the page. No
// one can write to a key's bytes, since no slice but b covers them. An
// empty value is nil, as a message's empty bytes field decodes.
func unpackEntries(b []byte) ([]kv.Entry, error) {
	count, b, err := unpackUvarint(b, "entry count")
	if err != nil {
		return nil, err
	}
	const minEntry = 4 // four zero-length fields
	if count > uint64(len(b)/minEntry) {
		return nil, fmt.Errorf("%w: packed list page: %d entries cannot fit in %d bytes", kv.ErrInternal, count, len(b))
	}
	out := make([]kv.Entry, count)
	for i := range out {
		e := &out[i]
		var key []byte
		if key, b, err = unpackBytes(b, "key"); err != nil {
			return nil, err
		}
		e.Key = unsafe.String(unsafe.SliceData(key), len(key))
		if e.Value, b, err = unpackBytes(b, "value"); err != nil {
			return nil, err
		}
		var version, exp uint64
		if version, b, err = unpackUvarint(b, "version"); err != nil {
			return nil, err
		}
		if exp, b, err = unpackUvarint(b, "expiry"); err != nil {
			return nil, err
		}
		if version > math.MaxInt64 || exp > math.MaxInt64 {
			return nil, fmt.Errorf("%w: packed list page: entry %d: version or expiry out of range", kv.ErrInternal, i)
		}
		e.Version, e.ExpiresAt = int64(version), kv.FromUnixMillis(int64(exp))
		if len(e.Value) == 0 {
			e.Value = nil
		}
	}
	if len(b) > 0 {
		return nil, fmt.Errorf("%w: packed list page: %d bytes after %d entries", kv.ErrInternal, len(b), count)
	}
	return out, nil
}

func unpackUvarint(b []byte, what string) (uint64, []byte, error) {
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, nil, fmt.Errorf("%w: packed list page: bad %s length or number", kv.ErrInternal, what)
	}
	return v, b[n:], nil
}

func unpackBytes(b []byte, what string) ([]byte, []byte, error) {
	n, b, err := unpackUvarint(b, what)
	if err != nil {
		return nil, nil, err
	}
	if n > uint64(len(b)) {
		return nil, nil, fmt.Errorf("%w: packed list page: %s of %d bytes, %d left", kv.ErrInternal, what, n, len(b))
	}
	return b[:n:n], b[n:], nil
}
