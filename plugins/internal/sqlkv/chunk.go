package sqlkv

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/kvhost/kvhost/kv"
)

// A history chunk is the encoding of consecutive changes of one commit,
// stored in kv_history.events; the row's revision is the first change's
// and its last column the last one's, so the changes' revisions are not
// stored. The format:
//
//	chunk  = format-byte event...
//	event  = type-byte uvarint(version) varint(expires_at ms)
//	         uvarint(len key) key [uvarint(len value) value]   (value: PUT only)
//
// A chunk holds at most ChunkEvents changes and, unless one value alone
// is larger, about chunkBytes of them.
const (
	chunkFormat = 1
	ChunkEvents = 1000
	chunkBytes  = 1 << 20
)

// Change types, as stored. They are the file's own codes, not
// kv.EventType's values, so that renumbering the Go constants never
// changes what a stored chunk means.
const (
	histPut    = 1
	histDelete = 2
	histExpire = 3
	histTTL    = 4
)

var histTypes = map[kv.EventType]byte{
	kv.EventPut: histPut, kv.EventDelete: histDelete, kv.EventExpire: histExpire, kv.EventTTL: histTTL,
}

var eventTypes = map[byte]kv.EventType{
	histPut: kv.EventPut, histDelete: kv.EventDelete, histExpire: kv.EventExpire, histTTL: kv.EventTTL,
}

// EncodeChunks encodes evs, whose revisions follow each other, into
// chunks and hands each to store with its first and last revision. The
// chunk's bytes are reused after store returns.
func EncodeChunks(evs []kv.Event, store func(first, last int64, chunk []byte) error) error {
	var buf []byte
	for len(evs) > 0 {
		buf = append(buf[:0], chunkFormat)
		n := 0
		for n < len(evs) && n < ChunkEvents && (n == 0 || len(buf) < chunkBytes) {
			buf = appendEvent(buf, evs[n])
			n++
		}
		if err := store(evs[0].Revision, evs[n-1].Revision, buf); err != nil {
			return err
		}
		evs = evs[n:]
	}
	return nil
}

func appendEvent(buf []byte, ev kv.Event) []byte {
	buf = append(buf, histTypes[ev.Type])
	buf = binary.AppendUvarint(buf, uint64(ev.Version))
	buf = binary.AppendVarint(buf, kv.UnixMillis(ev.ExpiresAt))
	buf = binary.AppendUvarint(buf, uint64(len(ev.Key)))
	buf = append(buf, ev.Key...)
	if ev.Type == kv.EventPut {
		buf = binary.AppendUvarint(buf, uint64(len(ev.Value)))
		buf = append(buf, ev.Value...)
	}
	return buf
}

// DecodeChunk calls keep, in revision order, with each change of the chunk
// of revisions first to last whose revision is at least from and whose key
// starts with prefix, until keep returns false. Events own their bytes:
// chunk may be reused afterwards. A chunk that does not decode is
// kv.ErrDataLoss.
func DecodeChunk(chunk []byte, first, last int64, prefix string, from int64, keep func(kv.Event) bool) error {
	d := chunkDecoder{buf: chunk}
	if d.byte() != chunkFormat {
		return d.fail(first, "unknown chunk format")
	}
	for rev := first; rev <= last; rev++ {
		typ, ok := eventTypes[d.byte()]
		version, expMs := d.uvarint(), d.varint()
		key := d.bytes()
		var value []byte
		if typ == kv.EventPut {
			value = d.bytes()
		}
		if d.err != "" || !ok || version > 1<<62 {
			return d.fail(rev, "bad change")
		}
		if rev < from || !bytes.HasPrefix(key, []byte(prefix)) {
			continue
		}
		ev := kv.Event{Type: typ, Key: string(key), Version: int64(version), Revision: rev, ExpiresAt: kv.FromUnixMillis(expMs)}
		if typ == kv.EventPut {
			ev.Value = bytes.Clone(value)
			if ev.Value == nil {
				ev.Value = []byte{}
			}
		}
		if !keep(ev) {
			return nil
		}
	}
	if len(d.buf) != 0 {
		return d.fail(last, "trailing bytes")
	}
	return nil
}

// chunkDecoder reads a chunk; the first thing that does not decode sets
// err, after which every read returns zero.
type chunkDecoder struct {
	buf []byte
	err string
}

func (d *chunkDecoder) byte() byte {
	if len(d.buf) == 0 {
		d.err = "truncated"
		return 0
	}
	b := d.buf[0]
	d.buf = d.buf[1:]
	return b
}

func (d *chunkDecoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.err, d.buf = "bad varint", nil
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *chunkDecoder) varint() int64 {
	v, n := binary.Varint(d.buf)
	if n <= 0 {
		d.err, d.buf = "bad varint", nil
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *chunkDecoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.buf)) {
		d.err, d.buf = "truncated", nil
		return nil
	}
	b := d.buf[:n]
	d.buf = d.buf[n:]
	return b
}

func (d *chunkDecoder) fail(rev int64, what string) error {
	if d.err != "" {
		what += ": " + d.err
	}
	return fmt.Errorf("%w: history chunk at revision %d does not decode: %s", kv.ErrDataLoss, rev, what)
}
