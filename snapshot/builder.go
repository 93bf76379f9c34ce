package snapshot

import (
	"cmp"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kvhost/kvhost/kv"
)

// DefaultMemory is the builder's default memory budget for the entries it
// holds before it sorts through temporary files.
const DefaultMemory = 64 << 20

// Builder assembles the image of a store at one revision from what a
// client can read: list pages, each read at its own revision, and the
// watch events that follow the first page. The state of a key at the
// last revision is its listed entry with every later change applied, so
// the builder sorts entries and changes by key and revision, folds each
// key's items, and sorts the survivors by version for the file. It holds
// at most about its memory budget and spills the rest to temporary files
// (unnamed, in the directory it was given), so an image of any size can
// be built.
//
// Feed it every page (AddPage) and every change from the first page's
// revision plus one up to the image's revision (AddEvent), then Write.
type Builder struct {
	dir    string
	budget int
	byKey  *sorter
	spent  bool
}

// NewBuilder returns a builder that keeps about memory bytes (0:
// DefaultMemory) and spills to dir ("": the system's temporary directory).
func NewBuilder(dir string, memory int) *Builder {
	if memory <= 0 {
		memory = DefaultMemory
	}
	return &Builder{dir: dir, budget: memory / 2, byKey: newSorter(dir, memory/2, byKeyThenRevision)}
}

// byKeyThenRevision orders a key's items by the revision they are as of;
// at one revision, a change before the listed entry that reflects it.
func byKeyThenRevision(a, b *item) int {
	if c := strings.Compare(a.key, b.key); c != 0 {
		return c
	}
	if c := cmp.Compare(a.seq, b.seq); c != 0 {
		return c
	}
	return cmp.Compare(a.kind, b.kind)
}

func byVersion(a, b *item) int { return cmp.Compare(a.version, b.version) }

// AddPage adds the entries of one list page, read at revision.
func (b *Builder) AddPage(entries []kv.Entry, revision int64) error {
	for _, e := range entries {
		it := item{key: e.Key, value: e.Value, version: e.Version, expires: kv.UnixMillis(e.ExpiresAt), seq: revision, kind: kindBase}
		if err := b.byKey.add(it); err != nil {
			return err
		}
	}
	return nil
}

// AddEvent adds one change; progress notifications are ignored.
func (b *Builder) AddEvent(ev kv.Event) error {
	it := item{key: ev.Key, seq: ev.Revision}
	switch ev.Type {
	case kv.EventPut:
		it.kind, it.value, it.version, it.expires = kindPut, ev.Value, ev.Version, kv.UnixMillis(ev.ExpiresAt)
	case kv.EventDelete, kv.EventExpire:
		it.kind = kindGone
	case kv.EventTTL:
		it.kind, it.expires = kindTTL, kv.UnixMillis(ev.ExpiresAt)
	case kv.EventProgress:
		return nil
	default:
		return fmt.Errorf("%w: snapshot: event of unknown type %v", kv.ErrInvalidArgument, ev.Type)
	}
	return b.byKey.add(it)
}

// Write folds each key's items into its state at the image's revision,
// leaves out keys that expired by now, and writes the rest to w in
// ascending order of version. It returns how many keys it left out as
// expired. A builder writes once.
func (b *Builder) Write(w *Writer, now time.Time) (expired int64, err error) {
	if b.spent {
		return 0, errors.New("snapshot: the builder was already written")
	}
	b.spent = true
	byVer := newSorter(b.dir, b.budget, byVersion)
	defer byVer.close()
	nowMs := kv.UnixMillis(now)
	var cur item
	present := false
	flush := func() error {
		if !present {
			return nil
		}
		present = false
		if cur.expires != 0 && cur.expires <= nowMs {
			expired++
			return nil
		}
		return byVer.add(cur)
	}
	err = b.byKey.each(func(it *item) error {
		if it.key != cur.key {
			if err := flush(); err != nil {
				return err
			}
			cur = item{key: it.key}
		}
		switch it.kind {
		case kindBase, kindPut:
			cur, present = *it, true
		case kindGone:
			present = false
		case kindTTL:
			cur.expires = it.expires // a TTL change on a key already gone changes nothing
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err := errors.Join(err, b.byKey.close()); err != nil {
		return expired, err
	}
	err = byVer.each(func(it *item) error {
		return w.Write(Record{Key: it.key, Value: it.value, Version: it.version, ExpiresAt: kv.FromUnixMillis(it.expires)})
	})
	return expired, err
}

// Close removes the builder's temporary files (Write removes them too).
func (b *Builder) Close() error { return b.byKey.close() }
