package sqlkv

import (
	"bytes"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi"
)

// Page gathers the rows of one list page as a backend scans them, one row
// past the page so it knows whether more remain. The page ends at the
// request's limit or its byte budget (kv.ListRequest.PageFull).
type Page struct {
	req  kv.ListRequest
	size int
	more bool
	// full and cur hold the entries in chunks, so that a long page is
	// copied once at the end instead of on every doubling, and a short
	// one does not pay for a large limit.
	full [][]kv.Entry
	cur  []kv.Entry
	n    int
	// packed, when set, takes the entries instead (NewPackedPage).
	packed *pluginapi.PackedPage
}

// NewPage starts a page for a normalized request (kv.NormalizeList).
func NewPage(req kv.ListRequest) *Page { return &Page{req: req} }

// NewPackedPage starts a page whose entries go to dst in the plugin wire's
// packed form (pluginapi.PackedLister) rather than into the result.
func NewPackedPage(req kv.ListRequest, dst *pluginapi.PackedPage) *Page {
	return &Page{req: req, packed: dst}
}

// AddRow is Add for a row the backend has not made an Entry of: key and
// value are only read during the call (they may be the driver's buffer
// for the current row). expiresAtMillis is Unix milliseconds, 0 for none.
func (p *Page) AddRow(key, value []byte, version, expiresAtMillis int64) bool {
	if p.packed == nil {
		e := kv.Entry{Key: string(key), Version: version, ExpiresAt: kv.FromUnixMillis(expiresAtMillis)}
		if value != nil {
			e.Value = bytes.Clone(value)
		}
		return p.Add(e)
	}
	next := len(key)
	if !p.req.KeysOnly {
		next += len(value)
	}
	if p.req.PageFull(p.n, p.size, next) {
		p.more = true
		return false
	}
	p.size += next
	p.packed.Append(key, value, version, expiresAtMillis)
	p.n++
	return true
}

// Add adds the next entry in key order and says whether the page takes
// more: false once the entry did not fit, which means more remain.
func (p *Page) Add(e kv.Entry) bool {
	next := p.req.EntrySize(e.Key, e.Value)
	if p.req.PageFull(p.n, p.size, next) {
		p.more = true
		return false
	}
	p.size += next
	if p.packed != nil {
		p.packed.AppendString(e.Key, e.Value, e.Version, kv.UnixMillis(e.ExpiresAt))
		p.n++
		return true
	}
	if !p.req.KeysOnly && e.Value == nil {
		e.Value = []byte{}
	}
	if len(p.cur) == cap(p.cur) {
		if p.cur != nil {
			p.full = append(p.full, p.cur)
		}
		p.cur = make([]kv.Entry, 0, min(max(2*cap(p.cur), 64), 4096))
	}
	p.cur = append(p.cur, e)
	p.n++
	return true
}

// Expect says the page will hold about n entries (at most the request's
// limit are counted), so that it holds them in one slice from the start:
// for a backend whose query says the page's length before its rows.
func (p *Page) Expect(n int) {
	if p.n == 0 && n > 0 && p.packed == nil {
		p.cur = make([]kv.Entry, 0, min(n, p.req.Limit))
	}
}

// Len is how many entries the page holds.
func (p *Page) Len() int { return p.n }

// SetMore says that more entries remain past the page, for a backend whose
// query knows it without handing over the row past the page.
func (p *Page) SetMore() { p.more = true }

// Result is the page read at revision rev (without entries for a packed
// page: they are in its PackedPage).
func (p *Page) Result(rev int64) kv.ListResult {
	if p.packed != nil {
		return kv.ListResult{Revision: rev, More: p.more}
	}
	res := kv.ListResult{Revision: rev, More: p.more, Entries: p.cur}
	if len(p.full) > 0 {
		res.Entries = make([]kv.Entry, 0, p.n)
		for _, c := range p.full {
			res.Entries = append(res.Entries, c...)
		}
		res.Entries = append(res.Entries, p.cur...)
	}
	if res.Entries == nil {
		res.Entries = []kv.Entry{}
	}
	return res
}

// InRequestOrder answers a get-many in the order of keys, nil for a key
// not found; a key asked for twice gets its own copy of the entry.
func InRequestOrder(keys []string, found map[string]*kv.Entry) []*kv.Entry {
	out := make([]*kv.Entry, len(keys))
	handed := make(map[string]bool, len(found))
	for i, k := range keys {
		e, ok := found[k]
		if !ok {
			continue
		}
		if handed[k] {
			c := *e
			c.Value = bytes.Clone(e.Value)
			e = &c
		}
		handed[k] = true
		out[i] = e
	}
	return out
}

// Retention is how many revisions of history a store keeps.
type Retention int64

// Oldest is the oldest revision a watch can start at, given the store and
// compact revisions (the last one pruned) of one snapshot. Revisions past
// retention that are not yet pruned are not offered, so what a watch may
// start at does not depend on when pruning ran.
func (r Retention) Oldest(rev, compact int64) int64 {
	return max(compact+1, rev-int64(r)+1, 1)
}

// Excess is how many revisions of history lie before the ones kept.
func (r Retention) Excess(rev, compact int64) int64 { return rev - int64(r) - compact }

// HistoryPage gathers the events of one history read: up to a limit of
// events or pluginapi.HistoryPageBytes of their values, whichever comes
// first.
type HistoryPage struct {
	limit  int
	size   int
	events []kv.Event
}

// NewHistoryPage starts a page of up to limit events (kv.DefaultListLimit
// when limit <= 0).
func NewHistoryPage(limit int) *HistoryPage {
	if limit <= 0 {
		limit = kv.DefaultListLimit
	}
	return &HistoryPage{limit: limit}
}

// Add adds the next event and says whether the page takes more.
func (h *HistoryPage) Add(ev kv.Event) bool {
	h.events = append(h.events, ev)
	h.size += len(ev.Value)
	return !h.Full()
}

// Limit is the most events the page holds.
func (h *HistoryPage) Limit() int { return h.limit }

// Full says the page stopped early, at its limit or byte budget.
func (h *HistoryPage) Full() bool {
	return len(h.events) >= h.limit || h.size >= pluginapi.HistoryPageBytes
}

// Result answers pluginapi.History.ReadHistory for a read from revision
// from whose snapshot had store revision head, where oldest is the oldest
// revision the read may start at (Retention.Oldest for a watch): the
// events and the last revision the answer covers (its last event's when
// the page stopped early, the head otherwise), or a *kv.CompactedError
// when from is older.
func (h *HistoryPage) Result(from, head, oldest int64) ([]kv.Event, int64, error) {
	if from < oldest {
		return nil, 0, &kv.CompactedError{Requested: from, Oldest: oldest}
	}
	if h.Full() {
		return h.events, h.events[len(h.events)-1].Revision, nil
	}
	return h.events, head, nil
}
