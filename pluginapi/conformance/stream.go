package conformance

import (
	"errors"
	"fmt"
	"time"

	"github.com/kvhost/kvhost/kv"
)

// eventWait bounds the wait for an event the rule promises. It is long:
// a loaded machine may be slow, and a correct backend never makes a test
// wait for it.
const eventWait = 10 * time.Second

// stream is a watch under test. Expectations of "no event" are checked
// with a sentinel write after the writes that must not publish, never
// with a timeout.
type stream struct {
	c       *check
	ws      kv.WatchStream
	what    string
	pending chan recvResult // a Recv under way, if any
}

type recvResult struct {
	ev  kv.Event
	err error
}

func (c *check) watcher() kv.Watcher {
	c.Helper()
	w, ok := c.b.(kv.Watcher)
	if !ok {
		c.Fatalf("the backend claims watch but does not implement kv.Watcher")
	}
	return w
}

// watch starts a watch that must start; it is closed when the subtest
// ends. Unless the request says otherwise it asks for no progress events.
func (c *check) watch(req kv.WatchRequest) *stream {
	c.Helper()
	if req.ProgressInterval == 0 {
		req.ProgressInterval = -1
	}
	ws, err := c.watcher().Watch(c.Context(), req)
	if err != nil {
		c.Fatalf("watch %s: %v", fmtWatch(req), err)
	}
	c.Cleanup(func() { _ = ws.Close() })
	return &stream{c: c, ws: ws, what: "watch " + fmtWatch(req)}
}

func fmtWatch(req kv.WatchRequest) string {
	s := fmt.Sprintf("prefix %q", req.Prefix)
	if req.StartRevision > 0 {
		s += fmt.Sprintf(" from revision %d", req.StartRevision)
	}
	if req.TTLEvents {
		s += " with TTL events"
	}
	return s
}

// recv waits up to d for the stream's next event or error.
func (s *stream) recv(d time.Duration) (recvResult, bool) {
	if s.pending == nil {
		ch := make(chan recvResult, 1)
		s.pending = ch
		go func() {
			ev, err := s.ws.Recv()
			ch <- recvResult{ev, err}
		}()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case r := <-s.pending:
		s.pending = nil
		return r, true
	case <-timer.C:
		return recvResult{}, false
	}
}

// nextAny returns the next event, progress included.
func (s *stream) nextAny() kv.Event {
	s.c.Helper()
	r, ok := s.recv(eventWait)
	if !ok {
		s.c.Fatalf("%s: no event within %v, but a committed change is waiting for it", s.what, eventWait)
	}
	if r.err != nil {
		s.c.Fatalf("%s: the stream ended with %v while a committed change was waiting for it", s.what, r.err)
	}
	return r.ev
}

// next returns the next change, skipping progress events.
func (s *stream) next() kv.Event {
	s.c.Helper()
	for {
		if ev := s.nextAny(); ev.Type != kv.EventProgress {
			return ev
		}
	}
}

// end waits for the stream to end and returns its error.
func (s *stream) end(why string) error {
	s.c.Helper()
	deadline := time.Now().Add(eventWait)
	for {
		r, ok := s.recv(time.Until(deadline))
		if !ok {
			s.c.Fatalf("%s: still open %v after %s", s.what, eventWait, why)
		}
		if r.err != nil {
			return r.err
		}
	}
}

// expect checks the stream's next change against want, field by field.
func (s *stream) expect(want kv.Event) kv.Event {
	s.c.Helper()
	got := s.next()
	if diff := eventDiff(got, want); diff != "" {
		s.c.Fatalf("%s: got %s, want %s (%s)", s.what, fmtEvent(got), fmtEvent(want), diff)
	}
	return got
}

// expectChange checks the stream's next change against want, leaving out
// the expiry, for rules about which changes arrive rather than their fields.
func (s *stream) expectChange(want kv.Event) kv.Event {
	s.c.Helper()
	got := s.next()
	want.ExpiresAt = got.ExpiresAt
	if diff := eventDiff(got, want); diff != "" {
		s.c.Fatalf("%s: got %s, want %s (%s)", s.what, fmtEvent(got), fmtEvent(want), diff)
	}
	return got
}

// expectKeys checks that the next changes are of these types and keys, in order.
func (s *stream) expectKeys(want ...kv.Event) []kv.Event {
	s.c.Helper()
	out := make([]kv.Event, len(want))
	for i, w := range want {
		got := s.next()
		if got.Type != w.Type || got.Key != w.Key {
			s.c.Fatalf("%s: event %d is %s, want %v %q", s.what, i, fmtEvent(got), w.Type, w.Key)
		}
		out[i] = got
	}
	return out
}

// eventDiff names the fields in which got differs from want.
func eventDiff(got, want kv.Event) string {
	var diff string
	add := func(field string) {
		if diff != "" {
			diff += ", "
		}
		diff += "wrong " + field
	}
	if got.Type != want.Type {
		add("type")
	}
	if got.Key != want.Key {
		add("key")
	}
	if string(got.Value) != string(want.Value) {
		add("value")
	}
	if got.Version != want.Version {
		add("version")
	}
	if got.Revision != want.Revision {
		add("revision")
	}
	if !sameInstant(got.ExpiresAt, want.ExpiresAt) {
		add("expiry")
	}
	return diff
}

func fmtEvent(ev kv.Event) string {
	if ev.Type == kv.EventProgress {
		return fmt.Sprintf("PROGRESS at revision %d", ev.Revision)
	}
	return fmt.Sprintf("%v %q value %q version %d revision %d expires %s", ev.Type, ev.Key, ev.Value, ev.Version, ev.Revision, fmtTime(ev.ExpiresAt))
}

func putEv(e kv.Entry, value string) kv.Event {
	return kv.Event{Type: kv.EventPut, Key: e.Key, Value: []byte(value), Version: e.Version, Revision: e.Version, ExpiresAt: e.ExpiresAt}
}

func deleteEv(key string, version, revision int64) kv.Event {
	return kv.Event{Type: kv.EventDelete, Key: key, Version: version, Revision: revision}
}

// isCompacted reports whether err is a proper compaction error.
func isCompacted(err error) (*kv.CompactedError, bool) {
	var ce *kv.CompactedError
	ok := errors.As(err, &ce) && errors.Is(err, kv.ErrCompacted)
	return ce, ok
}
