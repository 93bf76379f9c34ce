package postgres_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi"
	"github.com/kvhost/kvhost/plugins/postgres"
)

// The list statement decides the page's length in SQL (a sum of stored
// sizes, and a running sum only when the page must be cut) and Go applies
// kv.ListRequest.PageFull again as it reads. This test pages at every
// boundary the statement has to get exactly right — MaxBytes equal to
// the bytes of n entries, the limit and the bytes binding at the same
// entry, the limit's extra row alone passing the budget, a first entry
// over the budget, keys-only budgets, expired keys inside and at the end
// of a page, empty values — and compares each page with one computed in Go
// from the rule itself.
//
// It runs twice: with pgx's statement cache, where List decodes the rows
// itself, and with the simple protocol, where every column comes as text
// and List leaves the rows to pgx's Scan.
func TestListPageBoundaries(t *testing.T) {
	for _, mode := range []string{"cache_statement", "simple_protocol"} {
		t.Run(mode, func(t *testing.T) {
			set := settings(t)
			set["dsn"] += "?default_query_exec_mode=" + mode
			testListPageBoundaries(t, set)
		})
	}
}

func testListPageBoundaries(t *testing.T, set map[string]string) {
	s, err := postgres.Open(t.Context(), set)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	// 30 live keys of sizes that vary (empty values included), and expired
	// keys between them and after the last.
	type row struct {
		key   string
		value []byte
	}
	var live []row
	var ops []kv.Op
	for i := range 30 {
		r := row{key: fmt.Sprintf("p/%02d", i), value: bytes.Repeat([]byte{'v'}, (i*7)%23)}
		live = append(live, r)
		ops = append(ops, kv.PutOp(r.key, r.value, 0, kv.Condition{}))
		if i%4 == 1 || i == 29 {
			ops = append(ops, kv.PutOp(fmt.Sprintf("p/%02d.x", i), []byte("expired"), time.Second, kv.Condition{}))
		}
	}
	ops = append(ops, kv.PutOp("q/0", []byte("outside the prefix"), 0, kv.Condition{}))
	if _, err := s.Batch(t.Context(), ops); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)

	// want pages the live rows after after by the contract's rule.
	want := func(req kv.ListRequest, after string) (keys []string, more bool) {
		req, _ = kv.NormalizeList(req)
		size := 0
		for _, r := range live {
			if r.key <= after {
				continue
			}
			next := req.EntrySize(r.key, r.value)
			if req.PageFull(len(keys), size, next) {
				return keys, true
			}
			keys, size = append(keys, r.key), size+next
		}
		return keys, false
	}
	sz := func(i int) int { return len(live[i].key) + len(live[i].value) }
	sum := func(from, to int) int { // bytes of live[from:to]
		n := 0
		for i := from; i < to; i++ {
			n += sz(i)
		}
		return n
	}
	tests := []struct {
		name string
		req  kv.ListRequest
	}{
		{"bytes of 5 entries exactly", kv.ListRequest{Prefix: "p/", MaxBytes: sum(0, 5)}},
		{"one byte short of 5 entries", kv.ListRequest{Prefix: "p/", MaxBytes: sum(0, 5) - 1}},
		{"limit and bytes bind at the same entry", kv.ListRequest{Prefix: "p/", Limit: 5, MaxBytes: sum(0, 5)}},
		{"the extra row alone passes the budget", kv.ListRequest{Prefix: "p/", Limit: 5, MaxBytes: sum(0, 6) - 1}},
		{"limit binds before bytes", kv.ListRequest{Prefix: "p/", Limit: 5, MaxBytes: sum(0, 9)}},
		{"first entry over the budget", kv.ListRequest{Prefix: "p/", StartAfter: "p/12", MaxBytes: 1}},
		{"bytes of the last 3 entries exactly", kv.ListRequest{Prefix: "p/", StartAfter: "p/26", MaxBytes: sum(27, 30)}},
		{"limit of the last 3 entries exactly", kv.ListRequest{Prefix: "p/", StartAfter: "p/26", Limit: 3}},
		{"all, under the default bound", kv.ListRequest{Prefix: "p/"}},
		{"keys only, bytes of 4 keys exactly", kv.ListRequest{Prefix: "p/", KeysOnly: true, MaxBytes: 4 * len("p/00")}},
		{"keys only, values do not count", kv.ListRequest{Prefix: "p/", KeysOnly: true, MaxBytes: sum(0, 3)}},
		{"keys only, limit 1", kv.ListRequest{Prefix: "p/", KeysOnly: true, Limit: 1}},
		{"past the last key", kv.ListRequest{Prefix: "p/", StartAfter: "p/29"}},
		{"empty prefix, up to q/", kv.ListRequest{Limit: 31}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := s.List(t.Context(), tt.req)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range res.Entries {
				got = append(got, e.Key)
				if !tt.req.KeysOnly && e.Value == nil {
					t.Errorf("%s: nil value", e.Key)
				}
			}
			wantKeys, wantMore := want(tt.req, tt.req.StartAfter)
			if tt.req.Prefix == "" { // the empty prefix also sees q/0, after every p/ key
				if len(wantKeys) < tt.req.Limit && !wantMore {
					wantKeys = append(wantKeys, "q/0")
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(wantKeys) || res.More != wantMore {
				t.Errorf("page %v more=%v, want %v more=%v", got, res.More, wantKeys, wantMore)
			}
			if res.Revision == 0 {
				t.Errorf("revision 0")
			}
		})
	}
}

// A prefix whose last code point ends in the byte 0xBF (U+00BF, U+07FF,
// U+FFFF, U+10FFFF) has no UTF-8 bound one byte up, which PostgreSQL
// would refuse as text: list, count and delete-prefix take the next code
// point instead, and see exactly the keys under the prefix.
func TestPrefixEndingInLastByte0xBF(t *testing.T) {
	s, err := postgres.Open(t.Context(), settings(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, p := range []string{"a\u00bf", "a\u07ff", "a\ud7ff", "a\uffff", "a\U0010ffff"} {
		t.Run(fmt.Sprintf("%U", []rune(p)[1]), func(t *testing.T) {
			under := []string{p, p + "\x01", p + "x", p + "\U0010ffff"}
			// Outside: the code point one below, and the first one above.
			below, above := p[:len(p)-1]+"\xbe", prefixEndOf(p)
			outside := []string{"a", below + "x", above, above + "x", "b"}
			var ops []kv.Op
			for _, k := range append(append([]string{}, under...), outside...) {
				if !utf8.ValidString(k) {
					t.Fatalf("key %q is not UTF-8", k)
				}
				ops = append(ops, kv.PutOp(k, []byte("v"), 0, kv.Condition{}))
			}
			if _, err := s.Batch(t.Context(), ops); err != nil {
				t.Fatal(err)
			}
			res, err := s.List(t.Context(), kv.ListRequest{Prefix: p})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range res.Entries {
				got = append(got, e.Key)
			}
			if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", under) {
				t.Errorf("list %q: %q, want %q", p, got, under)
			}
			c, err := s.Count(t.Context(), p)
			if err != nil || c.Count != int64(len(under)) {
				t.Errorf("count %q: %d, %v; want %d", p, c.Count, err, len(under))
			}
			d, err := s.DeletePrefix(t.Context(), p)
			if err != nil || d.Deleted != int64(len(under)) {
				t.Errorf("delete-prefix %q: %d, %v; want %d", p, d.Deleted, err, len(under))
			}
			evs, _, err := s.(pluginapi.History).ReadHistory(t.Context(), p, 1, 1000)
			if err != nil || len(evs) != 2*len(under) {
				t.Errorf("history of %q: %d events, %v; want %d (a put and a delete of each key)", p, len(evs), err, 2*len(under))
			}
		})
	}
}

// prefixEndOf is the first code point after p's last, after p's others
// (for "a\U0010ffff", "b").
func prefixEndOf(p string) string {
	r := []rune(p)
	switch last := r[len(r)-1]; last {
	case utf8.MaxRune:
		return string(r[:len(r)-2]) + string(r[len(r)-2]+1)
	case 0xD7FF:
		r[len(r)-1] = 0xE000
	default:
		r[len(r)-1]++
	}
	return string(r)
}
