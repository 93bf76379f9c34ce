package postgres_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/kvhost/kvhost/kv"
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
