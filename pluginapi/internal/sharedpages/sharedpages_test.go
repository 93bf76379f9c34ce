package sharedpages

import (
	"bytes"
	"errors"
	"os"
	"sync"
	"testing"
	"time"
)

// pair makes an Area as a host would and maps it a second time, as the
// plugin does from the inherited file: two mappings of one memory file,
// as in two processes.
func pair(t testing.TB, slots, slotSize int) (host, plugin *Area) {
	t.Helper()
	host, f := create(t, slots, slotSize)
	defer f.Close()
	plugin, err := Map(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close(); plugin.Close() })
	return host, plugin
}

// create makes an area and the file to hand to a plugin; the test is
// skipped where the platform has none (not Linux: the host then sends
// every page on the connection).
func create(t testing.TB, slots, slotSize int) (*Area, *os.File) {
	t.Helper()
	a, f, err := Create(slots, slotSize)
	if errors.Is(err, ErrUnsupported) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return a, f
}

func TestLendAndTake(t *testing.T) {
	host, plugin := pair(t, 2, 8192)
	page := bytes.Repeat([]byte("page"), 2048)
	ref, ok := plugin.Lend(page)
	if !ok {
		t.Fatal("an empty area lent nothing")
	}
	got, err := host.Take(ref)
	if err != nil || !bytes.Equal(got, page) {
		t.Fatalf("took %d bytes, %v; want the %d lent", len(got), err, len(page))
	}
	if _, err := host.Take(ref); !errors.Is(err, ErrReclaimed) {
		t.Fatalf("a page taken twice: %v, want ErrReclaimed", err)
	}
	// A taken page's slot is free again, and the lowest is used first.
	again, ok := plugin.Lend([]byte("x"))
	if !ok || again.Slot != 0 || again.Generation == ref.Generation {
		t.Fatalf("lent again as %+v, %v; want slot 0 under a new generation", again, ok)
	}
}

func TestFullAreaAndLargePagesLendNothing(t *testing.T) {
	_, plugin := pair(t, 2, 4096)
	if _, ok := plugin.Lend(make([]byte, 4097)); ok {
		t.Fatal("a page larger than a slot was lent")
	}
	for i := range 2 {
		if _, ok := plugin.Lend([]byte{byte(i)}); !ok {
			t.Fatalf("page %d not lent", i)
		}
	}
	if ref, ok := plugin.Lend([]byte("third")); ok {
		t.Fatalf("a full area lent %+v", ref)
	}
}

// A page the host never takes (its call was cancelled) is reclaimed once
// it is old, and the host's late Take then refuses it rather than read
// the next page's bytes.
func TestReclaimedPageIsRefused(t *testing.T) {
	host, plugin := pair(t, 1, 4096)
	now := time.Unix(1000, 0)
	plugin.now = func() time.Time { return now }
	old, ok := plugin.Lend([]byte("abandoned"))
	if !ok {
		t.Fatal("not lent")
	}
	if _, ok := plugin.Lend([]byte("young")); ok {
		t.Fatal("a slot lent just now was reclaimed")
	}
	now = now.Add(ReclaimAfter)
	fresh, ok := plugin.Lend([]byte("fresh"))
	if !ok || fresh.Slot != old.Slot {
		t.Fatalf("an abandoned slot was not reclaimed: %+v, %v", fresh, ok)
	}
	if _, err := host.Take(old); !errors.Is(err, ErrReclaimed) {
		t.Fatalf("late take of a reclaimed page: %v, want ErrReclaimed", err)
	}
	if got, err := host.Take(fresh); err != nil || string(got) != "fresh" {
		t.Fatalf("take of the reclaiming page: %q, %v", got, err)
	}
}

func TestBadRefsAreErrorsNotReads(t *testing.T) {
	host, plugin := pair(t, 2, 4096)
	ref, _ := plugin.Lend([]byte("ok"))
	for _, bad := range []Ref{
		{Slot: 2, Generation: ref.Generation, Length: 2},
		{Slot: 1 << 31, Generation: 1, Length: 1},
		{Slot: 0, Generation: ref.Generation, Length: 4097},
		{Slot: 0, Generation: ref.Generation, Length: 1 << 63},
		{Slot: 0, Generation: 0, Length: 1},
	} {
		if page, err := host.Take(bad); err == nil || errors.Is(err, ErrReclaimed) {
			t.Errorf("Take(%+v) = %d bytes, %v; want an error naming the bounds", bad, len(page), err)
		}
	}
	if _, err := host.Take(Ref{Slot: 0, Generation: ref.Generation + 7, Length: 2}); !errors.Is(err, ErrReclaimed) {
		t.Errorf("a wrong generation: %v, want ErrReclaimed", err)
	}
	if got, err := host.Take(ref); err != nil || string(got) != "ok" {
		t.Fatalf("the good ref after the bad ones: %q, %v", got, err)
	}
}

func TestClosedAreaRefuses(t *testing.T) {
	host, plugin := pair(t, 1, 4096)
	ref, _ := plugin.Lend([]byte("late"))
	host.Close()
	if _, err := host.Take(ref); !errors.Is(err, ErrClosed) {
		t.Fatalf("take after close: %v, want ErrClosed", err)
	}
	plugin.Close()
	if _, ok := plugin.Lend([]byte("x")); ok {
		t.Fatal("a closed area lent a page")
	}
}

func TestMapRefusesOtherFiles(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "notanarea")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := Map(f); err == nil {
		t.Fatal("an empty file was mapped")
	}
	head := append([]byte(magic), make([]byte, 16)...)
	head[8] = 0x10 // 4096-byte slots
	head[16] = 3   // three of them, but the file is too short
	if _, err := f.WriteAt(head, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := Map(f); err == nil {
		t.Fatal("a truncated area was mapped")
	}
	if _, _, err := Create(0, 4096); err == nil {
		t.Fatal("an area of no slots was created")
	}
}

// Many lenders and takers at once: every page taken is the page lent
// under its ref, whole.
func TestConcurrentLendTake(t *testing.T) {
	host, plugin := pair(t, 3, 64<<10)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				page := bytes.Repeat([]byte{byte(w), byte(i)}, 1000+i*37)
				ref, ok := plugin.Lend(page)
				if !ok {
					continue // the area was full: that page went over the connection
				}
				got, err := host.Take(ref)
				if err != nil || !bytes.Equal(got, page) {
					t.Errorf("worker %d page %d: %d bytes, %v", w, i, len(got), err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// FuzzTake: whatever ref a plugin answers with, the host's Take returns a
// page or an error, and never reads outside the area.
func FuzzTake(f *testing.F) {
	host, plugin := pair(f, 2, 4096)
	f.Add(uint32(0), uint64(1), uint64(4))
	f.Add(uint32(1), uint64(1<<63), uint64(4096))
	f.Add(uint32(7), uint64(0), uint64(1<<40))
	f.Fuzz(func(t *testing.T, slot uint32, gen, length uint64) {
		ref, ok := plugin.Lend([]byte("data"))
		page, err := host.Take(Ref{Slot: slot, Generation: gen, Length: length})
		if err == nil && uint64(len(page)) != length {
			t.Fatalf("took %d bytes for a ref of %d", len(page), length)
		}
		if ok {
			host.Take(ref) // free it for the next input, if the fuzzed ref did not
		}
	})
}

// A slot reclaimed and lent again while the host copies it out is never
// served: the copy may hold the next page's bytes.
func TestTakeRefusesAPageReclaimedDuringTheCopy(t *testing.T) {
	host, plugin := pair(t, 1, 4096)
	now := time.Unix(1000, 0)
	plugin.now = func() time.Time { return now }
	ref, ok := plugin.Lend([]byte("first"))
	if !ok {
		t.Fatal("not lent")
	}
	relent := false
	testHookTakeCopied = func() {
		testHookTakeCopied = nil
		now = now.Add(ReclaimAfter)
		_, relent = plugin.Lend([]byte("SECOND"))
	}
	t.Cleanup(func() { testHookTakeCopied = nil })
	if page, err := host.Take(ref); !errors.Is(err, ErrReclaimed) {
		t.Fatalf("take across a reclaim: %q, %v; want ErrReclaimed", page, err)
	}
	if !relent {
		t.Fatal("the hook did not reclaim the slot")
	}
}

// A slot whose page is still being written is not reclaimed, however old
// its claim: two claims never write one slot.
func TestSlotBeingWrittenIsNotReclaimed(t *testing.T) {
	host, plugin := pair(t, 1, 4096)
	now := time.Unix(1000, 0)
	plugin.now = func() time.Time { return now }
	var stolen bool
	testHookLendClaimed = func() {
		testHookLendClaimed = nil
		now = now.Add(2 * ReclaimAfter)
		_, stolen = plugin.Lend([]byte("thief"))
	}
	t.Cleanup(func() { testHookLendClaimed = nil })
	ref, ok := plugin.Lend([]byte("owner"))
	if !ok || stolen {
		t.Fatalf("owner lent %v, thief lent %v; want only the owner", ok, stolen)
	}
	if got, err := host.Take(ref); err != nil || string(got) != "owner" {
		t.Fatalf("took %q, %v", got, err)
	}
}

// The plugin cannot shrink or grow the area it shares with the host: a
// shrunk file would make the host's next read a fatal SIGBUS.
func TestAreaSizeIsSealed(t *testing.T) {
	a, f := create(t, 1, 4096)
	defer a.Close()
	defer f.Close()
	for _, size := range []int64{0, 100, 1 << 20} {
		if err := f.Truncate(size); err == nil {
			t.Fatalf("the area's file was resized to %d bytes", size)
		}
	}
}
