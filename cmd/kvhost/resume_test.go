package main_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/kvhost/kvhost/client"
	"github.com/kvhost/kvhost/kv"
)

// A watcher whose stream is ended mid-flow resumes from the last revision
// it saw plus one and receives every later change exactly once, in order,
// through the real kvhost and plugin processes, on each backend; a resume
// from before the retention is refused with the compacted error.
func TestWatchResumesAfterLostStream(t *testing.T) {
	for _, backend := range []string{"memory", "sqlite"} {
		t.Run(backend, func(t *testing.T) {
			s := startServer(t, "auth: {anonymous: true}\ncleanup_interval: 50ms\nbackend:\n  plugin: "+backend+"\n  settings: {history: \"100\"}\n")
			c := s.client(t, "")
			testResume(t, c)
			testCompacted(t, s, c)
		})
	}
}

func testResume(t *testing.T, c *client.Client) {
	ctx := t.Context()
	const n = 300
	ws, err := c.Watch(ctx, "resume/")
	if err != nil {
		t.Fatal(err)
	}
	written := make(chan error, 1)
	go func() {
		for i := range n {
			if _, err := c.Put(ctx, fmt.Sprintf("resume/%03d", i%7), []byte(strconv.Itoa(i))); err != nil {
				written <- err
				return
			}
		}
		written <- nil
	}()
	var got []kv.Event
	for len(got) < 40 { // part way through the writer's run
		ev, err := ws.Recv()
		if err != nil {
			t.Fatalf("first watch: %v", err)
		}
		got = append(got, ev)
	}
	_ = ws.Close() // the stream is lost while the writer goes on
	last := got[len(got)-1].Revision
	ws, err = c.Watch(ctx, "resume/", client.FromRevision(last+1), client.WithProgressInterval(-1))
	if err != nil {
		t.Fatalf("resume from revision %d: %v", last+1, err)
	}
	defer ws.Close()
	for len(got) < n {
		ev, err := ws.Recv()
		if err != nil {
			t.Fatalf("resumed watch after %d events: %v", len(got), err)
		}
		got = append(got, ev)
	}
	if err := <-written; err != nil {
		t.Fatalf("writer: %v", err)
	}
	for i, ev := range got {
		if ev.Type != kv.EventPut || string(ev.Value) != strconv.Itoa(i) {
			t.Fatalf("event %d is %s %q, want PUT of %d: a change was lost, repeated or reordered across the resume", i, ev.Type, ev.Value, i)
		}
		if i > 0 && ev.Revision <= got[i-1].Revision {
			t.Fatalf("event %d has revision %d after %d: revisions must increase", i, ev.Revision, got[i-1].Revision)
		}
		if ev.Version != ev.Revision {
			t.Fatalf("PUT event %d: version %d, revision %d; a put's version is its revision", i, ev.Version, ev.Revision)
		}
	}
}

func testCompacted(t *testing.T, s *server, c *client.Client) {
	ctx := t.Context()
	first, err := c.Put(ctx, "compact/first", []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 250 { // well past the retention of 100 revisions
		if _, err := c.Put(ctx, "compact/k", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	// Pruning may be lazy (the host's cleanup loop runs every 50ms here):
	// wait for it, with a bound far above any scheduling delay.
	deadline := time.Now().Add(30 * time.Second)
	var st client.Stats
	for {
		if st, err = c.Stats(ctx); err != nil {
			t.Fatal(err)
		}
		if st.OldestRevision > first.Version {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("history still reaches back to revision %d of %d after 30s with a retention of 100", st.OldestRevision, st.Revision)
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, err = c.Watch(ctx, "compact/", client.FromRevision(first.Version))
	var ce *kv.CompactedError
	if !errors.Is(err, client.ErrCompacted) || !errors.As(err, &ce) {
		t.Fatalf("watch from compacted revision %d: %v, want a *kv.CompactedError", first.Version, err)
	}
	if ce.Requested != first.Version || ce.Oldest < st.OldestRevision || ce.Oldest > st.Revision+1 {
		t.Fatalf("compacted error %+v: want requested %d and oldest between %d and %d", ce, first.Version, st.OldestRevision, st.Revision+1)
	}
	// The oldest revision it names can be watched from, through the CLI.
	cmd := exec.Command(kvhostBin(t), "watch", "compact/", "--from-revision", strconv.FormatInt(ce.Oldest, 10), "-o", "json")
	cmd.Env = append(os.Environ(), "KVHOST_ADDR="+s.addr)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	sc := bufio.NewScanner(out)
	if !sc.Scan() {
		t.Fatalf("kvhost watch --from-revision %d printed nothing: %v", ce.Oldest, sc.Err())
	}
	var ev struct {
		Type     string `json:"type"`
		Key      string `json:"key"`
		Revision int64  `json:"revision"`
	}
	if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev.Type != "PUT" || ev.Revision < ce.Oldest {
		t.Fatalf("first replayed event %s (%v): want a PUT at or after revision %d", sc.Bytes(), err, ce.Oldest)
	}
}
