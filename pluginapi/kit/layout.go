package kit

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/kvhost/kvhost/kv"
)

// The kit's layout of the author's key space. Every key starts with a tag
// byte, so the four ranges never meet, and within each range the order the
// kit needs is the store's byte order:
//
//	k<key>                      an entry: version, expiry, value
//	h<revision>                 the change that took that revision (history)
//	x<expiry ms><key>           an expiry index row, earliest expiry first
//	m/rev, m/compact, m/format  the revision counter, the last revision pruned
//	                            from history, and the layout's version
//
// Numbers are 8-byte big-endian, so they sort as they compare.
const (
	tagHistory = 'h'
	tagKey     = 'k'
	tagExpiry  = 'x'
	// layoutVersion is stored under m/format and checked on open, so that a
	// later layout can refuse, or migrate, a store written by this one.
	layoutVersion = "1"
)

var (
	revKey     = []byte("m/rev")
	compactKey = []byte("m/compact")
	formatKey  = []byte("m/format")
)

// entryHeader is the size of an encoded entry before its value.
const entryHeader = 16

func be64(n int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(n)) }

func tagged(tag byte, key string) []byte {
	b := make([]byte, 1+len(key))
	b[0] = tag
	copy(b[1:], key)
	return b
}

func dataKey(key string) []byte { return tagged(tagKey, key) }

func historyKey(rev int64) []byte {
	return binary.BigEndian.AppendUint64([]byte{tagHistory}, uint64(rev))
}

func expiryKey(expMs int64, key string) []byte {
	b := append(make([]byte, 0, 9+len(key)), tagExpiry)
	b = binary.BigEndian.AppendUint64(b, uint64(expMs))
	return append(b, key...)
}

// dataRange is the range of the entries whose key starts with prefix.
func dataRange(prefix string) (start, end []byte) {
	start = dataKey(prefix)
	if e := kv.PrefixEnd(prefix); e != "" {
		return start, dataKey(e)
	}
	return start, []byte{tagKey + 1}
}

// entry is a decoded entry; value aliases the store's bytes until copied.
type entry struct {
	version int64
	expMs   int64
	value   []byte
}

func (e entry) live(nowMs int64) bool { return e.expMs == 0 || nowMs < e.expMs }

func (e entry) encode() []byte {
	b := make([]byte, entryHeader, entryHeader+len(e.value))
	binary.BigEndian.PutUint64(b, uint64(e.version))
	binary.BigEndian.PutUint64(b[8:], uint64(e.expMs))
	return append(b, e.value...)
}

func decodeEntry(key []byte, raw []byte) (entry, error) {
	if len(raw) < entryHeader {
		return entry{}, fmt.Errorf("%w: the entry of %q is %d bytes, shorter than its header", kv.ErrDataLoss, key, len(raw))
	}
	return entry{
		version: int64(binary.BigEndian.Uint64(raw)),
		expMs:   int64(binary.BigEndian.Uint64(raw[8:])),
		value:   raw[entryHeader:],
	}, nil
}

// kvEntry is the entry of key as the contract returns it, the value copied
// (never nil) unless withValue is false.
func (e entry) kvEntry(key string, withValue bool) kv.Entry {
	out := kv.Entry{Key: key, Version: e.version, ExpiresAt: kv.FromUnixMillis(e.expMs)}
	if withValue {
		out.Value = append([]byte{}, e.value...)
	}
	return out
}

// A history row is type, version and expiry (one byte and two numbers),
// the key's length as a uvarint, the key and the value.
func encodeEvent(ev kv.Event) []byte {
	b := make([]byte, 0, 17+binary.MaxVarintLen16+len(ev.Key)+len(ev.Value))
	b = append(b, byte(ev.Type))
	b = binary.BigEndian.AppendUint64(b, uint64(ev.Version))
	b = binary.BigEndian.AppendUint64(b, uint64(kv.UnixMillis(ev.ExpiresAt)))
	b = binary.AppendUvarint(b, uint64(len(ev.Key)))
	return append(append(b, ev.Key...), ev.Value...)
}

// decodeEvent decodes the history row under hkey if the event's key starts
// with prefix (ok false otherwise), copying what it keeps.
func decodeEvent(hkey, raw []byte, prefix string) (ev kv.Event, ok bool, err error) {
	n, w := binary.Uvarint(raw[min(len(raw), 17):])
	if len(hkey) != 9 || len(raw) < 17 || w <= 0 || uint64(len(raw)-17-w) < n {
		return kv.Event{}, false, fmt.Errorf("%w: the history row %x is damaged", kv.ErrDataLoss, hkey)
	}
	rev := int64(binary.BigEndian.Uint64(hkey[1:]))
	key := raw[17+w : 17+w+int(n)]
	if !bytes.HasPrefix(key, []byte(prefix)) {
		return kv.Event{}, false, nil
	}
	ev = kv.Event{
		Type:      kv.EventType(raw[0]),
		Key:       string(key),
		Version:   int64(binary.BigEndian.Uint64(raw[1:])),
		Revision:  rev,
		ExpiresAt: kv.FromUnixMillis(int64(binary.BigEndian.Uint64(raw[9:]))),
	}
	if ev.Type == kv.EventPut {
		ev.Value = append([]byte{}, raw[17+w+int(n):]...)
	}
	return ev, true, nil
}

// readInt reads a number stored under key, 0 when absent.
func readInt(tx Tx, key []byte) (int64, error) {
	raw, err := tx.Get(key)
	if err != nil || raw == nil {
		return 0, err
	}
	if len(raw) != 8 {
		return 0, fmt.Errorf("%w: %s holds %d bytes, not a number", kv.ErrDataLoss, key, len(raw))
	}
	return int64(binary.BigEndian.Uint64(raw)), nil
}
