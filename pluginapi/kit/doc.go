// Package kit turns a transactional ordered key-value store into a whole
// kvhost backend. An author writes a Store — View and Update transactions
// over Get, Put, Delete and Scan of byte keys in order, about the size of
// a vault physical backend or a kine driver — and kit.New makes of it a
// kv.Backend, kv.Watcher and kv.Expirer that keeps every rule of contract
// v2: versions and revisions, millisecond TTLs that are invisible once
// passed, cleanup with EXPIRE events, conditions, counters, atomic
// batches, byte-bounded paging, watches with history replay (through
// pluginapi.WatchHub), stats, TTL refresh and delete-prefix.
//
//	func Open(ctx context.Context, settings map[string]string) (kv.Backend, error) {
//		opts, err := kit.Settings("mystore", settings, "path")
//		if err != nil {
//			return nil, err
//		}
//		db, err := mystore.Open(settings["path"])
//		if err != nil {
//			return nil, err
//		}
//		return kit.New(ctx, &store{db}, "mystore", "1.0.0", opts...)
//	}
//
//	func main() { pluginapi.Serve(Open) }
//
// examples/boltkv is a complete one on bbolt; MemStore is one in memory.
//
// # What the store must do
//
// Update commits all of fn's writes or none, and its reads see its own
// writes; View reads one consistent snapshot. That is all: the kit runs
// one Update at a time, so the store need not isolate writers from each
// other, and it never writes inside a Scan. The kit owns the store's whole
// key space, and assumes nothing else writes to it (the backend claims
// Capabilities.Exclusive): every change must pass through the kit to be
// announced to watchers.
//
// # What the kit stores
//
// Each key's entry holds its version, its expiry in Unix milliseconds and
// its value; a revision counter, an expiry index (earliest first, for
// cleanup) and a history log of every change by revision sit beside the
// entries in reserved ranges of the key space (layout.go). A write is one
// Update that reads the entries it needs, writes them, their index rows,
// one history row per change and the new revision. Reads filter expired
// entries themselves, so an expired key is invisible at once; cleanup only
// reclaims them and announces them.
//
// # History retention
//
// History is kept for the last DefaultHistory (100 000) revisions unless
// WithHistory or the history setting says otherwise — counted in
// revisions, as in the other backends, so that its size is bounded
// whatever the write rate. A watch may start at any of the last
// "history" revisions; older rows are deleted by CleanupExpired, which
// the host calls periodically, in transactions of at most 10 000 rows.
// History rows hold values, so a store needs room for about "history"
// values beyond its live data.
//
// # Errors
//
// Every error is wrapped with the backend's name, the operation and the
// key. A store should return errors that wrap the kv sentinels where they
// fit — kv.ErrStorageFull for a full disk, kv.ErrDataLoss for a damaged
// page, kv.ErrUnavailable for one that may pass — so that callers across
// the wire can tell them apart; others arrive as internal errors.
package kit
