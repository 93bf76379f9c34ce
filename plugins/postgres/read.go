package postgres

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi"
	"github.com/kvhost/kvhost/plugins/internal/sqlkv"
)

// Reads report the store revision they were served at. Each read is one
// statement, which READ COMMITTED runs on one snapshot, and reads
// meta.rev in that statement: since every write updates meta.rev in its
// own transaction, the data and the revision agree. Reads start from the
// one meta row and LEFT JOIN the data to it, so they return a row with
// the revision even when nothing matches.

// keyRange is a prefix as a key range: key >= lo and, unless hi is
// empty, key < hi. Prefixes are ranges, never LIKE, whose wildcards the
// contract treats as literals.
//
// hi is the prefix with its last code point that has a successor replaced
// by that successor, not kv.PrefixEnd's last byte plus one: PostgreSQL
// refuses text that is not UTF-8, and a prefix ending in a code point
// whose last byte is 0xBF (U+00BF, U+00FF, U+07FF, U+FFFF, one in 64)
// would make it. No valid key lies between the two bounds, so the range
// is the same.
func keyRange(prefix string) (lo, hi string) { return prefix, prefixEnd(prefix) }

// prefixEnd is the smallest UTF-8 string greater than every string that
// starts with prefix, or "" when there is none (an empty prefix, or one of
// U+10FFFF alone). prefix is valid UTF-8 (kv.ValidatePrefix).
func prefixEnd(prefix string) string {
	for end := len(prefix); end > 0; {
		r, n := utf8.DecodeLastRuneInString(prefix[:end])
		end -= n
		switch {
		case r == utf8.MaxRune:
			continue // no successor: carry into the code point before
		case r == 0xD7FF: // the surrogates are not UTF-8
			r = 0xE000
		default:
			r++
		}
		return prefix[:end] + string(r)
	}
	return ""
}

// rangeCond is the key condition of a prefix scan. Statements come in
// two forms, with and without the upper bound, rather than one whose
// condition says "no bound" for an empty @hi: a generic plan of that
// cannot end the index scan at @hi, and filters every key from the prefix
// to the end of the table. Forced onto its generic plan, the list of a
// 1000-key prefix at 1M keys took 323 ms against 0.9 ms; PostgreSQL kept
// to custom plans in the benchmarks, but nothing made it.
func rangeCond(bounded bool) string {
	if bounded {
		return `key >= @lo AND key < @hi::text COLLATE "C"`
	}
	return `key >= @lo`
}

// Get looks up one key.
func (s *Store) Get(ctx context.Context, key string) (kv.GetResult, error) {
	if err := kv.ValidateKey(key); err != nil {
		return kv.GetResult{}, fmt.Errorf("postgres: get: %w", err)
	}
	if err := s.checkOpen(); err != nil {
		return kv.GetResult{}, fmt.Errorf("postgres: get %q: %w", key, err)
	}
	var (
		res   kv.GetResult
		value []byte
		expMs int64
	)
	err := s.pool.QueryRow(ctx, s.sql(`SELECT m.rev, kv.value, coalesce(kv.version, 0), coalesce(kv.expires_at, 0)
		FROM {s}.meta m LEFT JOIN {s}.kv ON kv.key = $1 AND (kv.expires_at = 0 OR kv.expires_at > $2)`),
		key, s.cfg.now().UnixMilli()).Scan(&res.Revision, &value, &res.Entry.Version, &expMs)
	if err != nil {
		return kv.GetResult{}, fmt.Errorf("postgres: get %q: %w", key, mapErr(err))
	}
	if res.Entry.Version == 0 {
		return kv.GetResult{Revision: res.Revision}, nil
	}
	if value == nil {
		value = []byte{}
	}
	res.Found = true
	res.Entry.Key, res.Entry.Value, res.Entry.ExpiresAt = key, value, kv.FromUnixMillis(expMs)
	return res, nil
}

// GetMany looks up keys in one snapshot, answering in request order.
func (s *Store) GetMany(ctx context.Context, keys []string) (kv.GetManyResult, error) {
	if err := kv.ValidateGetMany(keys); err != nil {
		return kv.GetManyResult{}, fmt.Errorf("postgres: get-many: %w", err)
	}
	if err := s.checkOpen(); err != nil {
		return kv.GetManyResult{}, fmt.Errorf("postgres: get-many: %w", err)
	}
	rows, err := s.pool.Query(ctx, s.sql(`SELECT m.rev, coalesce(kv.key, ''), kv.value, coalesce(kv.version, 0), coalesce(kv.expires_at, 0)
		FROM {s}.meta m LEFT JOIN {s}.kv ON kv.key = ANY($1::text[]) AND (kv.expires_at = 0 OR kv.expires_at > $2)`),
		keys, s.cfg.now().UnixMilli())
	if err != nil {
		return kv.GetManyResult{}, fmt.Errorf("postgres: get-many: %w", mapErr(err))
	}
	defer rows.Close()
	var res kv.GetManyResult
	found := make(map[string]*kv.Entry, len(keys))
	for rows.Next() {
		var (
			e     kv.Entry
			expMs int64
		)
		if err := rows.Scan(&res.Revision, &e.Key, &e.Value, &e.Version, &expMs); err != nil {
			return kv.GetManyResult{}, fmt.Errorf("postgres: get-many: %w", mapErr(err))
		}
		if e.Version == 0 {
			continue
		}
		if e.Value == nil {
			e.Value = []byte{}
		}
		e.ExpiresAt = kv.FromUnixMillis(expMs)
		found[e.Key] = &e
	}
	if err := rows.Err(); err != nil {
		return kv.GetManyResult{}, fmt.Errorf("postgres: get-many: %w", mapErr(err))
	}
	res.Entries = sqlkv.InRequestOrder(keys, found)
	return res, nil
}

// listSQL reads one page in one statement, in two scans of the primary
// key. The first, index-only, sums the stored sizes of up to limit+1 live
// keys (keys-only pages count the keys alone): when they fit in max_bytes,
// which is the common case, the page is its first limit rows, and no
// running sum is needed; otherwise a window's running sum over those keys
// counts the rows that fit (the first always does). The second scan reads
// that many rows, values and all, in key order: LIMIT by the count rather
// than a key bound, so the ordered index scan feeds the result with no
// sort. The header row (the revision; how many live keys the first scan
// found, so that the caller knows whether more remain; the page's length)
// is a UNION ALL branch whose key, the empty string, sorts before every
// key the page can hold (keys are not empty): ORDER BY key over the union
// is then a Merge Append of the one-row header and the index scan, not a
// sort of the page.
// (Measured at 10K rows of 100 bytes: 10-11 ms of execution against 23-32
// ms for a window over every row, a key bound and a sort;
// docs/PERFORMANCE.md.)
func listSQL(keysOnly, bounded bool) string {
	value, size := "value", "size::int4" // a sum over int4 is bigint, over bigint numeric; size < 1 GB
	if keysOnly {
		value, size = "NULL::bytea", "octet_length(key)"
	}
	scan := ` FROM {s}.kv WHERE key > @after AND ` + rangeCond(bounded) + ` AND ` + live + ` ORDER BY key`
	return `WITH a AS MATERIALIZED (
		SELECT count(*) AS n, coalesce(sum(sz), 0) AS bytes FROM (SELECT ` + size + ` AS sz` + scan + ` LIMIT @limit + 1) q
	), c AS MATERIALIZED (
		SELECT CASE WHEN a.bytes <= @max_bytes THEN least(a.n, @limit) ELSE (
			SELECT count(*) FROM (
				SELECT row_number() OVER w AS rn, sum(sz) OVER w AS run
				FROM (SELECT key, ` + size + ` AS sz` + scan + ` LIMIT @limit) q
				WINDOW w AS (ORDER BY key ROWS UNBOUNDED PRECEDING)
			) r WHERE rn = 1 OR run <= @max_bytes) END AS len FROM a
	)
	SELECT m.rev, a.n, c.len, ''::text COLLATE "C" AS key, NULL::bytea AS value, 0::bigint AS version, 0::bigint AS expires_at
	FROM {s}.meta m, a, c
	UNION ALL (
		SELECT NULL, NULL, NULL, key, ` + value + `, version, expires_at` + scan + ` LIMIT (SELECT len FROM c)
	)
	ORDER BY key`
}

// listSQLs holds listSQL's statements by [keysOnly][bounded].
var listSQLs = [2][2]string{{listSQL(false, false), listSQL(false, true)}, {listSQL(true, false), listSQL(true, true)}}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// List returns one page of live entries under a prefix, in byte order.
func (s *Store) List(ctx context.Context, req kv.ListRequest) (kv.ListResult, error) {
	req, err := kv.NormalizeList(req)
	if err != nil {
		return kv.ListResult{}, fmt.Errorf("postgres: list: %w", err)
	}
	return s.list(ctx, req, sqlkv.NewPage(req))
}

// ListPacked is List writing the page in the plugin wire's packed form
// (pluginapi.PackedLister): each row's bytes go from pgx's buffer to the
// page, with no entry made of them.
func (s *Store) ListPacked(ctx context.Context, req kv.ListRequest, dst *pluginapi.PackedPage) (kv.ListResult, error) {
	req, err := kv.NormalizeList(req)
	if err != nil {
		return kv.ListResult{}, fmt.Errorf("postgres: list: %w", err)
	}
	return s.list(ctx, req, sqlkv.NewPackedPage(req, dst))
}

func (s *Store) list(ctx context.Context, req kv.ListRequest, page *sqlkv.Page) (kv.ListResult, error) {
	if err := s.checkOpen(); err != nil {
		return kv.ListResult{}, fmt.Errorf("postgres: list %q: %w", req.Prefix, err)
	}
	lo, hi := keyRange(req.Prefix)
	after := ""
	if req.StartAfter >= req.Prefix {
		after = req.StartAfter
	}
	q := listSQLs[b2i(req.KeysOnly)][b2i(hi != "")]
	rows, err := s.pool.Query(ctx, s.sql(q), pgx.NamedArgs{"lo": lo, "hi": hi, "after": after, "now": s.cfg.now().UnixMilli(),
		"limit": req.Limit, "max_bytes": req.MaxBytes})
	if err != nil {
		return kv.ListResult{}, fmt.Errorf("postgres: list %q: %w", req.Prefix, mapErr(err))
	}
	defer rows.Close()
	var (
		rev, scanned int64
		header       bool
	)
	scan := listRowScanner(rows)
	for rows.Next() {
		r, err := scan()
		if err != nil {
			return kv.ListResult{}, fmt.Errorf("postgres: list %q: %w", req.Prefix, mapErr(err))
		}
		if r.header {
			rev, scanned, header = r.rev, r.scanned, true
			page.Expect(int(r.len))
			continue
		}
		if !page.AddRow(r.key, r.value, r.version, r.expMs) {
			break
		}
	}
	if err := rows.Err(); err != nil {
		return kv.ListResult{}, fmt.Errorf("postgres: list %q: %w", req.Prefix, mapErr(err))
	}
	if !header {
		return kv.ListResult{}, fmt.Errorf("postgres: list %q: no revision in the answer", req.Prefix)
	}
	if scanned > int64(page.Len()) {
		page.SetMore()
	}
	return page.Result(rev), nil
}

// listRow is one row of listSQL: the header or an entry.
// An entry's key and value are only valid until the next row.
type listRow struct {
	header            bool
	rev, scanned, len int64
	key, value        []byte
	version, expMs    int64
}

// listRowScanner returns the reader of listSQL's rows. When the server
// sends the columns as expected (int8 and bytea in binary, text as its
// bytes, which is what pgx asks for with its statement cache) it decodes
// them itself: a page of 10K rows spends about 3 ms in pgx's generic Scan,
// which looks up a plan and converts through interfaces for every column
// of every row. Otherwise it leaves them to Scan.
func listRowScanner(rows pgx.Rows) func() (listRow, error) {
	want := []struct {
		oid    uint32
		format int16
	}{
		{pgtype.Int8OID, pgtype.BinaryFormatCode}, {pgtype.Int8OID, pgtype.BinaryFormatCode}, {pgtype.Int8OID, pgtype.BinaryFormatCode},
		{pgtype.TextOID, -1}, {pgtype.ByteaOID, pgtype.BinaryFormatCode},
		{pgtype.Int8OID, pgtype.BinaryFormatCode}, {pgtype.Int8OID, pgtype.BinaryFormatCode},
	}
	fast := true
	fds := rows.FieldDescriptions()
	if len(fds) != len(want) {
		fast = false
	}
	for i := range fds {
		if !fast {
			break
		}
		fast = fds[i].DataTypeOID == want[i].oid && (want[i].format < 0 || fds[i].Format == want[i].format)
	}
	if !fast {
		var (
			// reused for every row: taking their addresses for Scan
			// would otherwise put each row's on the heap
			hRev, hN, hLen *int64
			key            string
			value          []byte
			version, expMs int64
		)
		return func() (listRow, error) {
			// Scan gives value a fresh slice each row (nil for NULL).
			if err := rows.Scan(&hRev, &hN, &hLen, &key, &value, &version, &expMs); err != nil {
				return listRow{}, err
			}
			if hRev != nil {
				return listRow{header: true, rev: *hRev, scanned: *hN, len: *hLen}, nil
			}
			return listRow{key: []byte(key), value: value, version: version, expMs: expMs}, nil
		}
	}
	int8 := func(b []byte) (int64, error) {
		if len(b) != 8 {
			return 0, fmt.Errorf("%w: an int8 of %d bytes in a list row", kv.ErrDataLoss, len(b))
		}
		return int64(binary.BigEndian.Uint64(b)), nil
	}
	return func() (listRow, error) {
		v := rows.RawValues() // valid until the next row: the page copies what it keeps
		var (
			r   listRow
			err error
		)
		if v[0] != nil {
			r.header = true
			if r.rev, err = int8(v[0]); err == nil {
				if r.scanned, err = int8(v[1]); err == nil {
					r.len, err = int8(v[2])
				}
			}
			return r, err
		}
		if r.version, err = int8(v[5]); err == nil {
			r.expMs, err = int8(v[6])
		}
		r.key, r.value = v[3], v[4]
		return r, err
	}
}

// Count counts live keys under a prefix. The primary key carries
// expires_at, so a prefix's count can be an index-only scan; for a large
// share of the table PostgreSQL prefers a parallel scan of the heap.
func (s *Store) Count(ctx context.Context, prefix string) (kv.CountResult, error) {
	if err := kv.ValidatePrefix(prefix); err != nil {
		return kv.CountResult{}, fmt.Errorf("postgres: count: %w", err)
	}
	if err := s.checkOpen(); err != nil {
		return kv.CountResult{}, fmt.Errorf("postgres: count %q: %w", prefix, err)
	}
	lo, hi := keyRange(prefix)
	// The empty prefix counts without a key condition, which PostgreSQL
	// would otherwise evaluate on every row (docs/PERFORMANCE.md).
	cond := rangeCond(hi != "") + ` AND `
	if prefix == "" {
		cond = ""
	}
	var res kv.CountResult
	err := s.pool.QueryRow(ctx, s.sql(`SELECT m.rev, c.n FROM {s}.meta m,
		LATERAL (SELECT count(*) AS n FROM {s}.kv WHERE `+cond+live+`) c`),
		pgx.NamedArgs{"lo": lo, "hi": hi, "now": s.cfg.now().UnixMilli()}).Scan(&res.Revision, &res.Count)
	if err != nil {
		return kv.CountResult{}, fmt.Errorf("postgres: count %q: %w", prefix, mapErr(err))
	}
	return res, nil
}

// Stats counts live keys and their bytes, which the primary key carries
// (expires_at, size) for an index-only scan; at a million keys
// PostgreSQL chooses a parallel scan of the heap, as fast here
// (docs/PERFORMANCE.md).
func (s *Store) Stats(ctx context.Context) (kv.Stats, error) {
	if err := s.checkOpen(); err != nil {
		return kv.Stats{}, fmt.Errorf("postgres: stats: %w", err)
	}
	st := kv.Stats{Backend: "postgres", Version: Version}
	var compact int64
	err := s.pool.QueryRow(ctx, s.sql(`SELECT m.rev, m.compact, c.n, c.b FROM {s}.meta m,
		LATERAL (SELECT count(*) AS n, coalesce(sum(size), 0)::bigint AS b FROM {s}.kv WHERE `+live+`) c`),
		pgx.NamedArgs{"now": s.cfg.now().UnixMilli()}).Scan(&st.Revision, &compact, &st.Keys, &st.Bytes)
	if err != nil {
		return kv.Stats{}, fmt.Errorf("postgres: stats: %w", mapErr(err))
	}
	st.OldestRevision = s.oldest(st.Revision, compact)
	return st, nil
}

// oldest is the oldest revision a watch can start at, given the store and
// compact revisions of one snapshot (sqlkv.Retention.Oldest).
func (s *Store) oldest(rev, compact int64) int64 {
	return sqlkv.Retention(s.cfg.History).Oldest(rev, compact)
}

// historySQL reads the history chunks from the one holding revision
// @from on, with the head and compact revisions of the same snapshot. It
// stops after the chunk that reaches @page_bytes, or @events changes, or
// @limit chunks (each holds at least one change). The chunk holding @from
// is the last one starting at or before it, if it reaches @from; a read
// from past the head reads nothing.
const historySQL = `SELECT m.rev, m.compact, h.rev, h.last, h.events
	FROM {s}.meta m LEFT JOIN LATERAL (
		SELECT rev, last, events FROM (
			SELECT *, sum(octet_length(events)) OVER w AS run, sum(last - rev + 1) OVER w AS n FROM (
				SELECT rev, last, events FROM {s}.history_chunks
				WHERE rev >= coalesce((SELECT CASE WHEN c.last >= @from THEN c.rev END FROM (
					SELECT rev, last FROM {s}.history_chunks WHERE rev <= @from ORDER BY rev DESC LIMIT 1) c), @from)
				ORDER BY rev LIMIT @limit) q
			WINDOW w AS (ORDER BY rev ROWS UNBOUNDED PRECEDING)
		) r WHERE run - octet_length(events) < @page_bytes AND n - (last - rev + 1) < @events
	) h ON true ORDER BY h.rev`

// ReadHistory implements pluginapi.History. A from before the retention
// (Config.History revisions back from the head) is a *kv.CompactedError,
// whether or not cleanup has pruned it yet.
func (s *Store) ReadHistory(ctx context.Context, prefix string, from int64, limit int) ([]kv.Event, int64, error) {
	evs, through, _, err := s.readHistory(ctx, prefix, from, limit, s.oldest)
	return evs, through, err
}

// readHistory reads history; oldest says, from the head and compact
// revisions of the read's snapshot, the oldest revision it may start at.
// Besides the events and the revision they cover (through), it returns
// the snapshot's head: a read that stopped at its bound of chunks covers
// less than the head even when its page of events is not full.
func (s *Store) readHistory(ctx context.Context, prefix string, from int64, limit int, oldest func(rev, compact int64) int64) (evs []kv.Event, through, head int64, err error) {
	if err := kv.ValidatePrefix(prefix); err != nil {
		return nil, 0, 0, fmt.Errorf("postgres: read history: %w", err)
	}
	if err := s.checkOpen(); err != nil {
		return nil, 0, 0, fmt.Errorf("postgres: read history %q: %w", prefix, err)
	}
	page := sqlkv.NewHistoryPage(limit)
	covered, compact, err := s.scanHistory(ctx, prefix, from, page, &head, oldest)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("postgres: read history %q from revision %d: %w", prefix, from, err)
	}
	evs, through, err = page.Result(from, covered, oldest(head, compact))
	return evs, through, head, err
}

// scanHistory decodes the chunks historySQL reads into page until it is
// full. It sets head and returns the compact revision and the last
// revision the chunks it read cover: the last chunk's, or the head when
// there was none to read. A from older than oldest reads no chunk (the
// caller answers it compacted); a chunk missing where from should be is
// kv.ErrDataLoss, never a silent gap.
func (s *Store) scanHistory(ctx context.Context, prefix string, from int64, page *sqlkv.HistoryPage, head *int64,
	oldest func(rev, compact int64) int64) (covered, compact int64, err error) {
	events := int64(math.MaxInt64) // a prefix's changes may be sparse: bound by bytes only
	if prefix == "" {
		events = int64(page.Limit()) // every change is the page's: read no chunk it cannot hold
	}
	rows, err := s.pool.Query(ctx, s.sql(historySQL), pgx.NamedArgs{"from": from, "limit": page.Limit(),
		"page_bytes": pluginapi.HistoryPageBytes, "events": events})
	if err != nil {
		return 0, 0, mapErr(err)
	}
	defer rows.Close()
	covered = -1
	for rows.Next() {
		var (
			first, last *int64
			chunk       []byte
		)
		if err := rows.Scan(head, &compact, &first, &last, &chunk); err != nil {
			return 0, 0, mapErr(err)
		}
		if first == nil || from < oldest(*head, compact) {
			break // no chunk; or compacted
		}
		if covered < 0 && *first > from && from > compact {
			return 0, 0, fmt.Errorf("%w: history holds no record of revisions %d to %d, which are not pruned (compact revision %d)",
				kv.ErrDataLoss, from, *first-1, compact)
		}
		covered = *last
		if err := sqlkv.DecodeChunk(chunk, *first, *last, prefix, from, page.Add); err != nil {
			return 0, 0, err
		}
		if page.Full() {
			break
		}
	}
	if err := rows.Err(); err != nil {
		return 0, 0, mapErr(err)
	}
	if covered < 0 {
		covered = *head
	}
	return covered, compact, nil
}
