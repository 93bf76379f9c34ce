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

// chunk is one stream entry: the events of revisions first to last.
type chunk struct {
	id      string
	first   int64
	headers string
	pairs   []any // key, value, key, value... as the reply has them
}

// readChunk reads a stream entry from a reply: {id, {"f", first, "h",
// headers, key, value, ...}}.
func readChunk(raw any) (chunk, error) {
	e := asList(raw)
	var c chunk
	if len(e) == 2 {
		c.id, _ = asString(e[0])
		fields := asList(e[1])
		if len(fields) >= 4 && len(fields)%2 == 0 {
			f, _ := asString(fields[1])
			c.first, _ = strconv.ParseInt(f, 10, 64)
			c.headers, _ = asString(fields[3])
			c.pairs = fields[4:]
		}
	}
	n := len(c.pairs) / 2
	if c.id == "" || c.first <= 0 || n == 0 || len(c.headers) != n*eventHeader || streamRevision(c.id) != c.first+int64(n)-1 {
		return chunk{}, fmt.Errorf("%w: redis: stream entry %q is not a chunk of events", kv.ErrDataLoss, c.id)
	}
	return c, nil
}

// events calls keep for each event of the chunk, in order, until keep
// returns false. An event that does not decode is kv.ErrDataLoss.
func (c chunk) events(keep func(kv.Event) bool) error {
	for i := range len(c.pairs) / 2 {
		h := c.headers[i*eventHeader : (i+1)*eventHeader]
		key, ok1 := asString(c.pairs[2*i])
		value, ok2 := asString(c.pairs[2*i+1])
		if !ok1 || !ok2 || key == "" {
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
