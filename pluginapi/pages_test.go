package pluginapi

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/kvhost/kvhost/internal/testbin"
	"github.com/kvhost/kvhost/kv"
	pb "github.com/kvhost/kvhost/pluginapi/internal/pluginpb"
	"github.com/kvhost/kvhost/pluginapi/internal/sharedpages"
)

// startMemoryPlugin starts the real memory plugin binary with 2000 keys of
// 100-byte values: a full page of them (about 240 KB) is lent in shared
// memory, a page of 10 goes on the connection.
func startMemoryPlugin(t *testing.T, cfg StartConfig) (*Plugin, []kv.Entry) {
	t.Helper()
	cfg.Path, cfg.Logger = testbin.Plugin(t, "memory"), hclog.NewNullLogger()
	p, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	var ops []kv.Op
	for i := range 2000 {
		ops = append(ops, kv.PutOp(fmt.Sprintf("k/%05d", i), bytes.Repeat([]byte{byte(i)}, 100), 0, kv.Condition{}))
		if len(ops) == kv.MaxBatchOps {
			if _, err := p.Batch(t.Context(), ops); err != nil {
				t.Fatal(err)
			}
			ops = ops[:0]
		}
	}
	page, err := p.List(t.Context(), kv.ListRequest{Prefix: "k/", Limit: kv.MaxListLimit})
	if err != nil {
		t.Fatal(err)
	}
	return p, page.Entries
}

func checkPage(t *testing.T, got []kv.Entry, want int) {
	t.Helper()
	if len(got) != want {
		t.Fatalf("listed %d entries, want %d", len(got), want)
	}
	for i, e := range got {
		if e.Key != fmt.Sprintf("k/%05d", i) || !bytes.Equal(e.Value, bytes.Repeat([]byte{byte(i)}, 100)) || e.Version == 0 {
			t.Fatalf("entry %d is %q = %x (version %d)", i, e.Key, e.Value, e.Version)
		}
	}
}

func TestListPagesCrossInSharedMemory(t *testing.T) {
	counts := new(PageCounts) // as the host's metrics pass it
	p, page := startMemoryPlugin(t, StartConfig{Pages: counts})
	if p.counts != counts {
		t.Fatal("the client counts pages apart from StartConfig.Pages")
	}
	if p.pages == nil && runtime.GOOS == "linux" {
		t.Fatal("no shared page area on Linux")
	}
	checkPage(t, page, 2000)
	if p.pages != nil && p.counts.Shared.Load() != 1 {
		t.Fatalf("%d pages taken from shared memory, want the one full page", p.counts.Shared.Load())
	}
	small, err := p.List(t.Context(), kv.ListRequest{Prefix: "k/", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	checkPage(t, small.Entries, 10)
	if n := p.counts.Shared.Load(); p.pages != nil && n != 1 {
		t.Fatalf("a 10-entry page went through shared memory (%d pages taken)", n)
	}
	if n := p.counts.Connection.Load(); p.pages != nil && n != 1 {
		t.Fatalf("%d pages counted on the connection, want the 10-entry one", n)
	}

	// More lists at once than the area has slots: those that find no free
	// slot go on the connection, and every one is whole.
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				r, err := p.List(t.Context(), kv.ListRequest{Prefix: "k/", Limit: kv.MaxListLimit})
				if err != nil {
					t.Error(err)
					return
				}
				checkPage(t, r.Entries, 2000)
			}
		}()
	}
	wg.Wait()
	t.Logf("%d of 81 full pages crossed in shared memory", p.counts.Shared.Load())
}

func TestSharedPagesCanBeDisabled(t *testing.T) {
	p, page := startMemoryPlugin(t, StartConfig{DisableSharedPages: true})
	checkPage(t, page, 2000)
	if p.pages != nil || p.counts.Shared.Load() != 0 {
		t.Fatalf("shared pages disabled, yet %d taken", p.counts.Shared.Load())
	}
	if n := p.counts.Connection.Load(); n != 1 {
		t.Fatalf("%d pages counted on the connection, want the full page", n)
	}
}

// A lent page whose slot was taken back before the host read it (the
// plugin reclaims a slot after sharedpages.ReclaimAfter) is asked for
// again on the connection: the caller gets the page, whole.
func TestReclaimedPageIsListedAgain(t *testing.T) {
	p, _ := startMemoryPlugin(t, StartConfig{})
	if p.pages == nil {
		t.Skip("no shared page area on this platform")
	}
	stolen := 0
	testHookBeforeTake = func(c *Client, ref *pb.SharedPage) {
		stolen++ // free the slot under the client, as a reclaim would
		if _, err := c.pages.Take(sharedpages.Ref{Slot: ref.Slot, Generation: ref.Generation, Length: ref.Length}); err != nil {
			t.Errorf("taking the page first: %v", err)
		}
	}
	t.Cleanup(func() { testHookBeforeTake = nil })
	before, beforeConn := p.counts.Shared.Load(), p.counts.Connection.Load()
	r, err := p.List(t.Context(), kv.ListRequest{Prefix: "k/", Limit: kv.MaxListLimit})
	if err != nil {
		t.Fatal(err)
	}
	checkPage(t, r.Entries, 2000)
	if stolen != 1 || p.counts.Shared.Load() != before {
		t.Fatalf("hook ran %d times, %d pages taken by the client; want one stolen page and a page from the connection", stolen, p.counts.Shared.Load()-before)
	}
	if n, conn := p.counts.Reclaimed.Load(), p.counts.Connection.Load()-beforeConn; n != 1 || conn != 1 {
		t.Fatalf("counted %d reclaimed and %d pages on the connection, want 1 and 1", n, conn)
	}
}

// After the plugin is stopped, a lent page cannot be read: the list is
// unavailable, not a read of unmapped memory.
func TestPagesOfAStoppedPlugin(t *testing.T) {
	p, _ := startMemoryPlugin(t, StartConfig{})
	if p.pages == nil {
		t.Skip("no shared page area on this platform")
	}
	testHookBeforeTake = func(*Client, *pb.SharedPage) { p.Kill() }
	t.Cleanup(func() { testHookBeforeTake = nil })
	_, err := p.List(t.Context(), kv.ListRequest{Prefix: "k/", Limit: kv.MaxListLimit})
	if !errors.Is(err, kv.ErrUnavailable) {
		t.Fatalf("list from a stopped plugin's area: %v, want ErrUnavailable", err)
	}
}

// A shared page descriptor in the host's own environment never reaches
// the plugin: the one the host made for it does, and is used.
func TestStrayPageDescriptorIsNotPassedOn(t *testing.T) {
	t.Setenv(pagesEnv, "9")
	for _, kv := range hostEnv() {
		if strings.HasPrefix(kv, pagesEnv+"=") {
			t.Fatalf("hostEnv passes on %q", kv)
		}
	}
	p, page := startMemoryPlugin(t, StartConfig{})
	checkPage(t, page, 2000)
	if p.pages != nil && p.counts.Shared.Load() != 1 {
		t.Fatalf("%d pages from shared memory: the stray descriptor won over the host's", p.counts.Shared.Load())
	}
}
