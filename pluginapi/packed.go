package pluginapi

import (
	"encoding/binary"
	"fmt"
	"math"

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
	n := binary.MaxVarintLen64
	for _, e := range es {
		n += len(e.Key) + len(e.Value) + 4*binary.MaxVarintLen64
	}
	b := binary.AppendUvarint(make([]byte, 0, n), uint64(len(es)))
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

// unpackEntries decodes what packEntries encoded. Values are slices of b
// (capped, so that appending to one cannot overwrite the next): b must
// not be used for anything else afterwards. An empty value is nil, as a
// message's empty bytes field decodes. The keys share one string.
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
	ends := make([]int, count) // where each key ends in keys
	var keys []byte
	for i := range out {
		e := &out[i]
		var key []byte
		if key, b, err = unpackBytes(b, "key"); err != nil {
			return nil, err
		}
		keys = append(keys, key...)
		ends[i] = len(keys)
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
	all, start := string(keys), 0
	for i, end := range ends {
		out[i].Key, start = all[start:end], end
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
