package redis

import (
	"encoding/binary"
	"fmt"
	"strconv"

	"github.com/kvhost/kvhost/kv"
)

// The binary encodings the scripts write with struct.pack (big-endian).

// metaSize is the size of a key's metadata: version (8 bytes), expiry in
// Unix milliseconds (8, 0 for none), value length (4).
const metaSize = 20

// parseMeta reads a key's metadata.
func parseMeta(m string) (version, expiresAt, vlen int64, err error) {
	if len(m) != metaSize {
		return 0, 0, 0, fmt.Errorf("%w: redis: key metadata of %d bytes, want %d", kv.ErrDataLoss, len(m), metaSize)
	}
	return int64(binary.BigEndian.Uint64([]byte(m[0:8]))), int64(binary.BigEndian.Uint64([]byte(m[8:16]))),
		int64(binary.BigEndian.Uint32([]byte(m[16:20]))), nil
}

// eventHeader is the size of an event's header in a chunk: type (1 byte:
// 1 PUT, 2 DELETE, 3 EXPIRE, 4 TTL), version (8), expiry (8).
const eventHeader = 17

// A stream entry holds a chunk of events in one of two layouts. The
// scripts write fields "f", the first revision, "h", the headers, then a
// key and a value per event (building one string in Lua costs about 10 ns
// a byte). Go (a watched batch, batchtx.go) writes "f", the first
// revision, and "b", one packed string: per event its header, the key's
// and the value's lengths (4 bytes each) and the key and value. One field
// instead of two per event spares Redis two thousand arguments on a
// batch of a thousand.

// chunk is one stream entry: the events of revisions first to last.
type chunk struct {
	id      string
	first   int64
	n       int
	headers string
	pairs   []any  // key, value, key, value... as the reply has them
	packed  string // or the events packed ("b")
}

// packedHeader is the size of an event's header in a packed chunk: the
// event header, then the key's and the value's lengths.
const packedHeader = eventHeader + 8

// readChunk reads a stream entry from a reply: {id, {"f", first, "h",
// headers, key, value, ...}} or {id, {"f", first, "b", packed}}.
func readChunk(raw any) (chunk, error) {
	e := asList(raw)
	var c chunk
	ok := false
	if len(e) == 2 {
		c.id, _ = asString(e[0])
		fields := asList(e[1])
		if len(fields) >= 4 && len(fields)%2 == 0 {
			f, _ := asString(fields[1])
			c.first, _ = strconv.ParseInt(f, 10, 64)
			switch name, _ := asString(fields[2]); {
			case name == "b" && len(fields) == 4:
				c.packed, _ = asString(fields[3])
				c.n, ok = countPacked(c.packed)
			case name == "h":
				c.headers, _ = asString(fields[3])
				c.pairs = fields[4:]
				c.n = len(c.pairs) / 2
				ok = len(c.headers) == c.n*eventHeader
			}
		}
	}
	if !ok || c.id == "" || c.first <= 0 || c.n == 0 || streamRevision(c.id) != c.first+int64(c.n)-1 {
		return chunk{}, fmt.Errorf("%w: redis: stream entry %q is not a chunk of events", kv.ErrDataLoss, c.id)
	}
	return c, nil
}

// countPacked counts the events of a packed chunk, and says whether it
// is exactly a sequence of them.
func countPacked(p string) (int, bool) {
	n := 0
	for len(p) > 0 {
		if len(p) < packedHeader {
			return 0, false
		}
		kl, vl := binary.BigEndian.Uint32([]byte(p[17:21])), binary.BigEndian.Uint32([]byte(p[21:25]))
		size := uint64(packedHeader) + uint64(kl) + uint64(vl)
		if uint64(len(p)) < size {
			return 0, false
		}
		p, n = p[size:], n+1
	}
	return n, true
}

// event returns the header, key and value of event i (events are read in
// order: off is where event i starts in a packed chunk, and the next
// offset is returned).
func (c chunk) event(i, off int) (h, key, value string, next int, ok bool) {
	if c.packed == "" {
		key, ok1 := asString(c.pairs[2*i])
		value, ok2 := asString(c.pairs[2*i+1])
		return c.headers[i*eventHeader : (i+1)*eventHeader], key, value, 0, ok1 && ok2
	}
	p := c.packed[off:]
	kl, vl := int(binary.BigEndian.Uint32([]byte(p[17:21]))), int(binary.BigEndian.Uint32([]byte(p[21:25])))
	key = p[packedHeader : packedHeader+kl]
	value = p[packedHeader+kl : packedHeader+kl+vl]
	return p[:eventHeader], key, value, off + packedHeader + kl + vl, true
}

// events calls keep for each event of the chunk, in order, until keep
// returns false. An event that does not decode is kv.ErrDataLoss.
func (c chunk) events(keep func(kv.Event) bool) error {
	off := 0
	for i := range c.n {
		h, key, value, next, ok := c.event(i, off)
		off = next
		if !ok || key == "" {
			return fmt.Errorf("%w: redis: stream entry %s is damaged at revision %d", kv.ErrDataLoss, c.id, c.first+int64(i))
		}
		ev := kv.Event{
			Key:       key,
			Version:   int64(binary.BigEndian.Uint64([]byte(h[1:9]))),
			Revision:  c.first + int64(i),
			ExpiresAt: kv.FromUnixMillis(int64(binary.BigEndian.Uint64([]byte(h[9:17])))),
		}
		switch h[0] {
		case 1:
			ev.Type = kv.EventPut
			ev.Value = []byte(value)
		case 2:
			ev.Type = kv.EventDelete
		case 3:
			ev.Type = kv.EventExpire
		case 4:
			ev.Type = kv.EventTTL
		default:
			return fmt.Errorf("%w: redis: stream entry %s has an event of type %d at revision %d", kv.ErrDataLoss, c.id, h[0], ev.Revision)
		}
		if !keep(ev) {
			return nil
		}
	}
	return nil
}
