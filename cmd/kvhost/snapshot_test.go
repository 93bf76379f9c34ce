package main_test

// End-to-end tests of kvhost snapshot save and restore: real servers on
// the SQLite plugin, driven through the CLI, with a writer running while
// the image is taken.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvhost/kvhost/client"
	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/snapshot"
)

const anonymous = "auth: {anonymous: true}\n"

// fill writes n keys of about 1 KiB (so that listing them takes several
// pages), every fifth with a TTL of an hour, then overwrites every
// seventh, so that version order differs from key order.
func fill(t *testing.T, c *client.Client, n int) {
	t.Helper()
	var ops []kv.Op
	flush := func() {
		if _, err := c.Batch(t.Context(), ops); err != nil {
			t.Fatal(err)
		}
		ops = ops[:0]
	}
	for i := range n {
		var ttl time.Duration
		if i%5 == 0 {
			ttl = time.Hour
		}
		value := fmt.Appendf(bytes.Repeat([]byte{byte(i)}, 1000), "value %d", i)
		ops = append(ops, kv.PutOp(fmt.Sprintf("key/%06d", i), value, ttl, kv.Condition{}))
		if len(ops) == 500 {
			flush()
		}
	}
	for i := n - 1; i >= 0; i -= 7 {
		ops = append(ops, kv.PutOp(fmt.Sprintf("key/%06d", i), fmt.Appendf(nil, "again %d", i), 0, kv.Condition{}))
		if len(ops) == 500 {
			flush()
		}
	}
	flush()
}

// stateAt is the tenant's keys at revision rev: the listing at from,
// with every change from from+1 to rev applied.
func stateAt(t *testing.T, c *client.Client, base map[string]kv.Entry, from, rev int64) map[string]kv.Entry {
	t.Helper()
	state := maps(base)
	ws, err := c.Watch(t.Context(), "", client.FromRevision(from+1), client.WithTTLEvents(), client.WithProgressInterval(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	for {
		ev := nextEvent(t, ws)
		if ev.Revision > rev || (ev.Type == kv.EventProgress && ev.Revision >= rev) {
			return state
		}
		switch ev.Type {
		case kv.EventPut:
			state[ev.Key] = kv.Entry{Key: ev.Key, Value: ev.Value, Version: ev.Version, ExpiresAt: ev.ExpiresAt}
		case kv.EventDelete, kv.EventExpire:
			delete(state, ev.Key)
		case kv.EventTTL:
			e := state[ev.Key]
			e.ExpiresAt = ev.ExpiresAt
			state[ev.Key] = e
		}
		if ev.Revision == rev {
			return state
		}
	}
}

func maps(m map[string]kv.Entry) map[string]kv.Entry {
	out := make(map[string]kv.Entry, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// nextEvent receives one event, progress included, within a bound that
// only catches a stalled watch.
func nextEvent(t *testing.T, ws kv.WatchStream) kv.Event {
	t.Helper()
	ch := make(chan kv.Event, 1)
	errc := make(chan error, 1)
	go func() {
		ev, err := ws.Recv()
		if err != nil {
			errc <- err
			return
		}
		ch <- ev
	}()
	select {
	case ev := <-ch:
		return ev
	case err := <-errc:
		t.Fatalf("watch ended: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("no event (not even progress) within 2 minutes")
	}
	return kv.Event{}
}

func listAll(t *testing.T, c *client.Client) (map[string]kv.Entry, int64) {
	t.Helper()
	out := map[string]kv.Entry{}
	var rev int64
	for e, err := range c.All(t.Context(), "") {
		if err != nil {
			t.Fatal(err)
		}
		out[e.Key] = e
	}
	page, err := c.List(t.Context(), "", client.Limit(1))
	if err != nil {
		t.Fatal(err)
	}
	rev = page.Revision
	return out, rev
}

// readSnapshot reads a snapshot file whole.
func readSnapshot(t *testing.T, path string) (snapshot.Header, []snapshot.Record) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := snapshot.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var recs []snapshot.Record
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return r.Header(), recs
		}
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
}

// writer changes keys until stop is closed: puts (some with TTLs),
// deletes, TTL refreshes and increments, over keys of the image and new
// ones.
func writer(t *testing.T, c *client.Client, stop <-chan struct{}) (wait func()) {
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			key := fmt.Sprintf("key/%06d", (i*37)%3000)
			var err error
			switch i % 5 {
			case 0:
				_, err = c.Put(t.Context(), key, fmt.Appendf(nil, "written %d", i))
			case 1:
				_, err = c.Put(t.Context(), fmt.Sprintf("new/%d", i), []byte("n"), client.WithTTL(time.Hour))
			case 2:
				_, err = c.Delete(t.Context(), key)
			case 3:
				_, err = c.RefreshTTL(t.Context(), fmt.Sprintf("key/%06d", (i*37)%3000/5*5), 2*time.Hour)
				if errors.Is(err, client.ErrNotFound) {
					err = nil
				}
			case 4:
				_, err = c.Increment(t.Context(), "counter", 1)
			}
			if err != nil {
				t.Errorf("writer: %v", err)
				return
			}
		}
	})
	return wg.Wait
}

func TestSnapshotSaveRestore(t *testing.T) {
	src := startServer(t, anonymous)
	c := src.client(t, "")
	fill(t, c, 12000) // 12 MiB: three pages or more
	base, from := listAll(t, c)
	file := filepath.Join(t.TempDir(), "image.kvsnap")

	// Save while the writer runs, until one save saw changes while it
	// listed (on an idle machine the first does).
	stop := make(chan struct{})
	wait := writer(t, c, stop)
	var saved struct {
		Keys       uint64 `json:"keys"`
		Revision   int64  `json:"revision"`
		ListedFrom int64  `json:"listed_from_revision"`
	}
	for try := 0; saved.Revision == saved.ListedFrom; try++ {
		if try == 20 {
			t.Fatal("20 saves and not one saw the writer's changes while it listed")
		}
		out := src.mustCLI(t, "", "snapshot", "save", file, "-o", "json")
		if err := json.Unmarshal([]byte(out), &saved); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	close(stop)
	wait()
	h, recs := readSnapshot(t, file)
	if h.Revision != saved.Revision || uint64(len(recs)) != saved.Keys {
		t.Fatalf("header revision %d and %d records; save said %+v", h.Revision, len(recs), saved)
	}

	t.Run("the image is the state at its revision", func(t *testing.T) {
		want := stateAt(t, c, base, from, h.Revision)
		if len(recs) != len(want) {
			t.Errorf("%d keys in the image, %d in the store at revision %d", len(recs), len(want), h.Revision)
		}
		for i, r := range recs {
			w, ok := want[r.Key]
			if !ok || !bytes.Equal(r.Value, w.Value) || r.Version != w.Version || !r.ExpiresAt.Equal(w.ExpiresAt) {
				t.Fatalf("record %d: %q version %d expires %v; at revision %d the store had %v (%q version %d expires %v)",
					i, r.Key, r.Version, r.ExpiresAt, h.Revision, ok, w.Value, w.Version, w.ExpiresAt)
			}
		}
	})

	dst := startServer(t, anonymous)
	d := dst.client(t, "")
	t.Run("restore into an empty store reproduces it", func(t *testing.T) {
		start := time.Now()
		out := dst.mustCLI(t, "", "snapshot", "restore", file)
		took := time.Since(start)
		if !strings.Contains(out, fmt.Sprintf("restored %d of %d keys", len(recs), len(recs))) {
			t.Errorf("restore said %q", out)
		}
		got, _ := listAll(t, d)
		if len(got) != len(recs) {
			t.Errorf("%d keys restored, the image has %d", len(got), len(recs))
		}
		var prev int64
		for _, r := range recs { // in the image's version order
			e, ok := got[r.Key]
			if !ok || !bytes.Equal(e.Value, r.Value) {
				t.Fatalf("%q: restored %v with %q, want %q", r.Key, ok, e.Value, r.Value)
			}
			if e.Version <= prev {
				t.Fatalf("%q restored at version %d, after a key of an older version at %d", r.Key, e.Version, prev)
			}
			prev = e.Version
			// The restore gives each key what was left of its TTL: its
			// new expiry is the old one, later by at most the time the
			// restore took (the time between reading the clock and the
			// server applying the batch).
			if r.ExpiresAt.IsZero() != e.ExpiresAt.IsZero() || e.ExpiresAt.Before(r.ExpiresAt) || e.ExpiresAt.Sub(r.ExpiresAt) > took {
				t.Fatalf("%q expires at %v, the image says %v (restore took %v)", r.Key, e.ExpiresAt, r.ExpiresAt, took)
			}
		}
	})

	t.Run("restore refuses a store that holds keys", func(t *testing.T) {
		before, _ := d.Stats(t.Context())
		_, errOut, code := dst.cli(t, "", "snapshot", "restore", file)
		after, _ := d.Stats(t.Context())
		if code != 1 || !strings.Contains(errOut, "already holds") || !strings.Contains(errOut, "--force") {
			t.Errorf("exit %d, %q", code, errOut)
		}
		if after.Revision != before.Revision {
			t.Errorf("the refused restore wrote: revision %d -> %d", before.Revision, after.Revision)
		}
		out := dst.mustCLI(t, "", "snapshot", "restore", file, "--force")
		if !strings.Contains(out, "restored") {
			t.Errorf("restore --force said %q", out)
		}
	})
}

// TestSnapshotSaveOutlivesHistory saves while a writer commits batches of
// 200 changes to keys spread over every page, on a store that keeps 100
// revisions of history: more changes land while the pages are listed than
// the history holds. Save takes them from the watch it opened before
// listing, so it succeeds, and the image is the state at one revision:
// every key the writer touches holds the same batch's value.
func TestSnapshotSaveOutlivesHistory(t *testing.T) {
	src := startServer(t, anonymous+"backend: {plugin: sqlite, settings: {history: \"100\"}}\n")
	c := src.client(t, "")
	fill(t, c, 12000) // 12 MiB: three pages or more
	const spread = 60 // the writer's keys: every 60th, 200 of them on every page
	stop := make(chan struct{})
	var wg sync.WaitGroup
	halt := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(halt) // before the server stops, and before a failed test ends
	wg.Go(func() {
		for n := 1; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			var ops []kv.Op
			for i := 0; i < 12000; i += spread {
				ops = append(ops, kv.PutOp(fmt.Sprintf("key/%06d", i), fmt.Appendf(nil, "batch %d", n), 0, kv.Condition{}))
			}
			if _, err := c.Batch(t.Context(), ops); err != nil {
				t.Errorf("writer: %v", err)
				return
			}
		}
	})
	file := filepath.Join(t.TempDir(), "image.kvsnap")
	var saved struct {
		Revision   int64 `json:"revision"`
		ListedFrom int64 `json:"listed_from_revision"`
	}
	for try := 0; saved.Revision-saved.ListedFrom <= 100; try++ {
		if try == 20 {
			t.Fatal("20 saves and not one saw more changes while it listed than the 100 revisions of history")
		}
		out, errOut, code := src.cli(t, "", "snapshot", "save", file, "-o", "json")
		if code != 0 {
			t.Fatalf("save while batches of 200 changes land, with 100 revisions of history: exit %d: %s", code, errOut)
		}
		if err := json.Unmarshal([]byte(out), &saved); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	halt()
	t.Logf("the save that outlived the history listed from revision %d to %d", saved.ListedFrom, saved.Revision)
	h, recs := readSnapshot(t, file)
	if h.Revision != saved.Revision || len(recs) != 12000 {
		t.Fatalf("header revision %d and %d records; want %d and 12000", h.Revision, len(recs), saved.Revision)
	}
	var batch string
	for _, r := range recs {
		var i int
		if _, err := fmt.Sscanf(r.Key, "key/%06d", &i); err != nil || i%spread != 0 {
			continue
		}
		if batch == "" {
			batch = string(r.Value)
		}
		if string(r.Value) != batch {
			t.Fatalf("%q holds %q and another written key %q: the image mixes two revisions", r.Key, r.Value, batch)
		}
	}
	if !strings.HasPrefix(batch, "batch ") {
		t.Fatalf("the written keys hold %q, want a batch's value", batch)
	}
}

func TestSnapshotRefusesADamagedFile(t *testing.T) {
	src := startServer(t, anonymous)
	fill(t, src.client(t, ""), 300)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.kvsnap")
	src.mustCLI(t, "", "snapshot", "save", good)
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	flipped := slices.Clone(data)
	flipped[len(flipped)/2] ^= 0x20
	dst := startServer(t, anonymous)
	d := dst.client(t, "")
	for _, tc := range []struct {
		name string
		data []byte
		says string
	}{
		{"a flipped byte", flipped, "checksum mismatch"},
		{"truncated", data[:len(data)*2/3], "truncated"},
		{"not a snapshot", []byte("key,value\n"), "not a kvhost snapshot"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			if err := os.WriteFile(path, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, errOut, code := dst.cli(t, "", "snapshot", "restore", path)
			if code != 1 || !strings.Contains(errOut, tc.says) || !strings.Contains(errOut, "nothing was written") {
				t.Errorf("exit %d, %q; want 1 saying %q and that nothing was written", code, errOut, tc.says)
			}
			st, err := d.Stats(t.Context())
			if err != nil || st.Keys != 0 || st.Revision != 0 {
				t.Errorf("after a refused restore: %+v, %v", st, err)
			}
		})
	}
}
