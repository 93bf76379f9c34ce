package snapshot

import (
	"bufio"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
)

// item is what the builder sorts: a listed entry (kindBase), or a change
// from the watch, as of revision seq.
type item struct {
	key     string
	value   []byte
	version int64
	expires int64 // Unix ms, 0 for none
	seq     int64
	kind    uint8
}

// Kinds of item; at one seq, changes sort before a listed entry (which
// already reflects them).
const (
	kindPut uint8 = iota
	kindGone
	kindTTL
	kindBase
)

const itemFixed = 1 + 2 + 4 + 8 + 8 + 8

func (it *item) size() int { return len(it.key) + len(it.value) + 64 }

// sorter sorts items in bounded memory: it keeps up to budget bytes of
// them, and beyond that writes sorted runs to temporary files in dir and
// merges them when read.
type sorter struct {
	dir    string
	budget int
	cmp    func(a, b *item) int
	mem    []item
	used   int
	runs   []*os.File
}

func newSorter(dir string, budget int, cmp func(a, b *item) int) *sorter {
	return &sorter{dir: dir, budget: budget, cmp: cmp}
}

func (s *sorter) add(it item) error {
	s.mem = append(s.mem, it)
	s.used += it.size()
	if s.used >= s.budget {
		return s.spill()
	}
	return nil
}

// spill writes the items in memory, sorted, as a run.
func (s *sorter) spill() error {
	if len(s.mem) == 0 {
		return nil
	}
	slices.SortStableFunc(s.mem, func(a, b item) int { return s.cmp(&a, &b) })
	f, err := os.CreateTemp(s.dir, "kvhost-snapshot-run-*")
	if err != nil {
		return fmt.Errorf("snapshot: a temporary run: %w", err)
	}
	_ = os.Remove(f.Name()) // unnamed: gone with the process, however it ends
	s.runs = append(s.runs, f)
	w := bufio.NewWriterSize(f, 256<<10)
	var b []byte
	for i := range s.mem {
		b = encodeItem(b[:0], &s.mem[i])
		if _, err := w.Write(b); err != nil {
			return fmt.Errorf("snapshot: writing a temporary run: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("snapshot: writing a temporary run: %w", err)
	}
	clear(s.mem)
	s.mem, s.used = s.mem[:0], 0
	return nil
}

func encodeItem(b []byte, it *item) []byte {
	b = append(b, it.kind)
	b = binary.BigEndian.AppendUint16(b, uint16(len(it.key)))
	b = binary.BigEndian.AppendUint32(b, uint32(len(it.value)))
	b = binary.BigEndian.AppendUint64(b, uint64(it.version))
	b = binary.BigEndian.AppendUint64(b, uint64(it.expires))
	b = binary.BigEndian.AppendUint64(b, uint64(it.seq))
	b = append(b, it.key...)
	return append(b, it.value...)
}

func decodeItem(r *bufio.Reader) (item, error) {
	var fixed [itemFixed]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return item{}, err // io.EOF at a clean end of run
	}
	klen := int(binary.BigEndian.Uint16(fixed[1:]))
	vlen := int(binary.BigEndian.Uint32(fixed[3:]))
	buf := make([]byte, klen+vlen)
	if _, err := io.ReadFull(r, buf); err != nil {
		return item{}, fmt.Errorf("snapshot: reading a temporary run: %w", err)
	}
	return item{
		kind:    fixed[0],
		version: int64(binary.BigEndian.Uint64(fixed[7:])),
		expires: int64(binary.BigEndian.Uint64(fixed[15:])),
		seq:     int64(binary.BigEndian.Uint64(fixed[23:])),
		key:     string(buf[:klen]),
		value:   buf[klen:],
	}, nil
}

// each calls fn with every item in order. The sorter is spent after it.
func (s *sorter) each(fn func(*item) error) error {
	if len(s.runs) == 0 {
		slices.SortStableFunc(s.mem, func(a, b item) int { return s.cmp(&a, &b) })
		for i := range s.mem {
			if err := fn(&s.mem[i]); err != nil {
				return err
			}
		}
		return nil
	}
	if err := s.spill(); err != nil {
		return err
	}
	h := &runHeap{cmp: s.cmp}
	for i, f := range s.runs {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("snapshot: rewinding a temporary run: %w", err)
		}
		c := &cursor{r: bufio.NewReaderSize(f, 64<<10), run: i}
		if ok, err := c.advance(); err != nil {
			return err
		} else if ok {
			h.cs = append(h.cs, c)
		}
	}
	heap.Init(h)
	for h.Len() > 0 {
		c := h.cs[0]
		if err := fn(&c.cur); err != nil {
			return err
		}
		if ok, err := c.advance(); err != nil {
			return err
		} else if ok {
			heap.Fix(h, 0)
		} else {
			heap.Pop(h)
		}
	}
	return nil
}

// close removes the temporary runs.
func (s *sorter) close() error {
	var errs []error
	for _, f := range s.runs {
		errs = append(errs, f.Close())
	}
	s.runs, s.mem = nil, nil
	return errors.Join(errs...)
}

type cursor struct {
	r   *bufio.Reader
	cur item
	run int
}

func (c *cursor) advance() (bool, error) {
	it, err := decodeItem(c.r)
	if errors.Is(err, io.EOF) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	c.cur = it
	return true, nil
}

// runHeap orders cursors by their current item, then by run, so that the
// merge is stable.
type runHeap struct {
	cs  []*cursor
	cmp func(a, b *item) int
}

func (h *runHeap) Len() int { return len(h.cs) }
func (h *runHeap) Less(i, j int) bool {
	if c := h.cmp(&h.cs[i].cur, &h.cs[j].cur); c != 0 {
		return c < 0
	}
	return h.cs[i].run < h.cs[j].run
}
func (h *runHeap) Swap(i, j int) { h.cs[i], h.cs[j] = h.cs[j], h.cs[i] }
func (h *runHeap) Push(x any)    { h.cs = append(h.cs, x.(*cursor)) }
func (h *runHeap) Pop() any {
	c := h.cs[len(h.cs)-1]
	h.cs = h.cs[:len(h.cs)-1]
	return c
}
