// Package sharedpages lends large list pages from a plugin to its host
// through memory both processes map, instead of through the plugin
// connection.
//
// The host creates an Area (an anonymous memory file cut into slots) before
// it starts the plugin, and the plugin inherits the file and maps it too.
// To send a page, the plugin claims a free slot, copies the page into it
// and answers with a Ref (slot, generation, length); the host copies the
// page out and frees the slot. A page crosses as two memory copies instead
// of being framed, encrypted, written, read, decrypted and reassembled.
//
// Each slot has a state word: zero when free, otherwise the generation of
// the claim that holds it, unique within the Area. Only the holder of a
// claim writes the slot. A host that never takes a lent page (its call was
// cancelled after the plugin answered) would leave the slot claimed, so the
// plugin reclaims a slot claimed longer than ReclaimAfter when it finds no
// free one; the host's Take notices a reclaimed slot by its generation and
// reports ErrReclaimed rather than what may be another page's bytes.
//
// The Area is a transport between one host and one plugin that trust each
// other (the plugin already serves the host's data); still, a faulty
// plugin must not bring the host down: the host checks every Ref against
// the Area's bounds, and the file's size is sealed (Linux), so a plugin's
// wrong answer is an error, never a read outside the mapping.
package sharedpages

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// The layout of an Area: a header, one state word per slot, then the slots,
// each starting on a page boundary.
const (
	magic      = "kvhpage1"
	headerSize = 24 // magic, slot size, slot count
	statesOff  = 64
	// MaxSlots bounds the slot count so that the state words fit before the
	// first slot.
	MaxSlots = (slotsOff - statesOff) / 8
	slotsOff = 4096
	pageSize = 4096
)

// ReclaimAfter is how long a lent slot stays claimed before the plugin may
// take it back: far longer than a host takes to copy a page out, even
// descheduled on a loaded machine.
const ReclaimAfter = 10 * time.Second

// ErrReclaimed reports that a lent page's slot was taken back before the
// host read it; the page must be asked for again.
var ErrReclaimed = errors.New("sharedpages: the page's slot was reclaimed before it was read")

// ErrClosed reports a Take or Lend on a closed Area.
var ErrClosed = errors.New("sharedpages: the area is closed")

// ErrUnsupported reports that this platform cannot create an Area.
var ErrUnsupported = errors.New("sharedpages: shared memory areas are not supported on this platform")

// Test hooks: between a Take's copy and its release of the slot, and
// between a Lend's claim and its copy.
var testHookTakeCopied, testHookLendClaimed func()

// Ref names a lent page: its slot, the claim's generation and its length.
type Ref struct {
	Slot       uint32
	Generation uint64
	Length     uint64
}

// Area is a shared memory mapping cut into slots. Its methods are safe for
// concurrent use.
type Area struct {
	mu       sync.RWMutex // Close against Take and Put
	mem      []byte
	slotSize int
	slots    int

	// Lender side only (the plugin).
	lend    sync.Mutex // claims
	gen     uint64     // the last claim's generation
	claimed []int64    // Unix nanoseconds of each slot's last claim
	writing []bool     // a page is being copied into the slot
	now     func() time.Time
}

// Create makes a new Area of slots slots of slotSize bytes each (rounded up
// to whole pages) and returns it with the file to hand to the plugin
// process. The caller closes the file once the plugin has inherited it;
// the Area stays mapped until Close.
func Create(slots, slotSize int) (*Area, *os.File, error) {
	if slots < 1 || slots > MaxSlots || slotSize < 1 {
		return nil, nil, fmt.Errorf("sharedpages: %d slots of %d bytes: want 1 to %d slots of at least 1 byte", slots, slotSize, MaxSlots)
	}
	slotSize = (slotSize + pageSize - 1) / pageSize * pageSize
	f, err := memoryFile("kvhost-shared-pages", int64(slotsOff+slots*slotSize))
	if err != nil {
		return nil, nil, err
	}
	a, err := mapArea(f, slots, slotSize)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	copy(a.mem, magic)
	binary.LittleEndian.PutUint64(a.mem[8:], uint64(slotSize))
	binary.LittleEndian.PutUint64(a.mem[16:], uint64(slots))
	return a, f, nil
}

// Map maps the Area that f holds, as Create wrote it. f may be closed
// afterwards.
func Map(f *os.File) (*Area, error) {
	var head [headerSize]byte
	if _, err := f.ReadAt(head[:], 0); err != nil {
		return nil, fmt.Errorf("sharedpages: reading the area's header: %w", err)
	}
	if string(head[:8]) != magic {
		return nil, fmt.Errorf("sharedpages: the file is not a shared page area (magic %q)", head[:8])
	}
	slotSize := binary.LittleEndian.Uint64(head[8:])
	slots := binary.LittleEndian.Uint64(head[16:])
	if slots < 1 || slots > MaxSlots || slotSize < pageSize || slotSize%pageSize != 0 || slotSize > 1<<30 {
		return nil, fmt.Errorf("sharedpages: the area's header says %d slots of %d bytes", slots, slotSize)
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("sharedpages: %w", err)
	}
	if want := int64(slotsOff + slots*slotSize); fi.Size() < want {
		return nil, fmt.Errorf("sharedpages: the area's file has %d bytes, its header needs %d", fi.Size(), want)
	}
	return mapArea(f, int(slots), int(slotSize))
}

func mapArea(f *os.File, slots, slotSize int) (*Area, error) {
	mem, err := mmap(f, slotsOff+slots*slotSize)
	if err != nil {
		return nil, fmt.Errorf("sharedpages: mapping the area: %w", err)
	}
	return &Area{mem: mem, slotSize: slotSize, slots: slots, claimed: make([]int64, slots), writing: make([]bool, slots), now: time.Now}, nil
}

// SlotSize is the largest page the Area lends.
func (a *Area) SlotSize() int { return a.slotSize }

// state is slot i's state word, shared by both processes.
func (a *Area) state(i int) *atomic.Uint64 {
	return (*atomic.Uint64)(unsafe.Pointer(&a.mem[statesOff+8*i]))
}

func (a *Area) slot(i int) []byte {
	off := slotsOff + i*a.slotSize
	return a.mem[off : off+a.slotSize : off+a.slotSize]
}

// Lend copies page into a free slot and returns its Ref (the plugin's
// side). It returns false when the page is larger than a slot or no slot
// is free: the page then goes over the connection. Slots are claimed
// lowest first, so a host that reads one page at a time touches one
// slot's memory.
func (a *Area) Lend(page []byte) (Ref, bool) {
	if len(page) > a.slotSize {
		return Ref{}, false
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.mem == nil {
		return Ref{}, false
	}
	i, gen, ok := a.claim()
	if !ok {
		return Ref{}, false
	}
	if testHookLendClaimed != nil {
		testHookLendClaimed()
	}
	copy(a.slot(i), page)
	a.lend.Lock()
	a.writing[i] = false
	a.lend.Unlock()
	return Ref{Slot: uint32(i), Generation: gen, Length: uint64(len(page))}, true
}

// claim takes the lowest free slot, or else one lent longer than
// ReclaimAfter ago whose page has been written (a slot is never written
// by two claims at once).
func (a *Area) claim() (int, uint64, bool) {
	a.lend.Lock()
	defer a.lend.Unlock()
	a.gen++
	gen, now := a.gen, a.now().UnixNano()
	for pass := 0; pass < 2; pass++ {
		for i := 0; i < a.slots; i++ {
			st := a.state(i)
			old := st.Load()
			if old != 0 && (pass == 0 || a.writing[i] || now-a.claimed[i] < int64(ReclaimAfter)) {
				continue
			}
			if st.CompareAndSwap(old, gen) { // fails only if the host freed it meanwhile
				a.claimed[i], a.writing[i] = now, true
				return i, gen, true
			}
		}
	}
	return 0, 0, false
}

// Take copies a lent page out of its slot and frees the slot (the host's
// side). It reports ErrReclaimed if the slot was taken back before or
// while it was read, and an error naming the fault for a Ref outside the
// Area.
func (a *Area) Take(ref Ref) ([]byte, error) {
	if ref.Slot >= uint32(a.slots) || ref.Length > uint64(a.slotSize) || ref.Generation == 0 {
		return nil, fmt.Errorf("sharedpages: page ref (slot %d, generation %d, %d bytes) is outside an area of %d slots of %d bytes",
			ref.Slot, ref.Generation, ref.Length, a.slots, a.slotSize)
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.mem == nil {
		return nil, ErrClosed
	}
	st := a.state(int(ref.Slot))
	if st.Load() != ref.Generation {
		return nil, ErrReclaimed
	}
	page := append([]byte(nil), a.slot(int(ref.Slot))[:ref.Length]...) // not zeroed first, as make would
	if testHookTakeCopied != nil {
		testHookTakeCopied()
	}
	if !st.CompareAndSwap(ref.Generation, 0) {
		return nil, ErrReclaimed
	}
	return page, nil
}

// Close unmaps the Area. Lend and Take fail afterwards.
func (a *Area) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.mem == nil {
		return nil
	}
	err := munmap(a.mem)
	a.mem = nil
	return err
}
