package server

import (
	"time"

	"github.com/kvhost/kvhost/kv"
)

// exactFilter narrows a watch of a prefix to the one key equal to it. No
// backend is asked for anything new: the store watches the prefix, which
// covers the key (and every longer key it prefixes), and the filter drops
// the events of those other keys.
//
// Progress: a backend reports progress only while its watch is idle, and
// a watch of "key" whose "key/..." keys keep changing is never idle, so
// its watcher would never hear that the store moved on, and would resume
// a lost stream from an old revision (perhaps compacted by then). So when
// events were dropped after the last one sent and nothing was sent for a
// progress interval, the filter sends a progress event at the last
// dropped revision: every change to the key up to it has been delivered.
type exactFilter struct {
	key      string
	interval time.Duration // negative: never send progress
	lastSent time.Time
	out      []kv.Event
}

func newExactFilter(key string, interval time.Duration) *exactFilter {
	if interval == 0 {
		interval = kv.DefaultProgressInterval
	}
	return &exactFilter{key: key, interval: interval, lastSent: time.Now()}
}

// filter returns the events of batch to send, in order: the key's own,
// the backend's progress events, and perhaps a progress event for the
// changes it dropped. It reuses its result's memory from call to call.
func (f *exactFilter) filter(batch []kv.Event) []kv.Event {
	f.out = f.out[:0]
	var dropped int64 // the revision of the last event dropped after the last one kept
	for _, ev := range batch {
		if ev.Type == kv.EventProgress || ev.Key == f.key {
			f.out = append(f.out, ev)
			dropped = 0
			continue
		}
		dropped = ev.Revision
	}
	now := time.Now()
	if dropped > 0 && f.interval >= 0 && now.Sub(f.lastSent) >= f.interval {
		f.out = append(f.out, kv.Event{Type: kv.EventProgress, Revision: dropped})
	}
	if len(f.out) > 0 {
		f.lastSent = now
	}
	return f.out
}
