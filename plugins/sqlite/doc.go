// Package sqlite is kvhost's embedded default backend: a kv.Backend
// (and Watcher and Expirer) on one SQLite file, through the pure-Go driver
// modernc.org/sqlite, so it needs no cgo and no service.
//
// The binary in cmd/kvhost-plugin-sqlite serves it as a plugin:
//
//	func main() { pluginapi.Serve(sqlite.Open) }
//
// A program can also use it directly with New.
//
// # Settings
//
// The host passes settings as strings; Open parses them with ParseSettings.
// An unknown setting or a malformed value is refused with an error wrapping
// kv.ErrInvalidArgument that names it.
//
//	setting          default             meaning
//	path             ./data/kvhost.db    database file; its directory is created
//	synchronous      NORMAL              NORMAL: a process crash loses no acknowledged
//	                                     write, a power loss may lose the last ones;
//	                                     FULL: fsync on every commit
//	cache_size_kib   16384               page cache per connection (the writer and
//	                                     each reader), in KiB
//	busy_timeout_ms  5000                how long a statement waits for a lock
//	mmap_size_bytes  268435456           memory-mapped I/O size; 0 turns it off
//	watch_buffer     4096                events a watcher may fall behind before
//	                                     its stream ends with ErrWatchOverflow
//	readers          4                   reader connections in the pool
//	history          100000              most recent revisions kept for watches
//	                                     that start at a revision (DefaultHistory)
//
// # Storage
//
// One table, kv, holds key TEXT PRIMARY KEY (the BINARY collation compares
// bytes, the contract's order), value BLOB, version, expires_at, created_at
// and updated_at (unix milliseconds; expires_at 0 means never) and, from
// schema 3, size (key plus value bytes, stored); point gets and prefix
// scans are searches and range scans on the primary key index, never LIKE.
// The covering index kv_cover (key, expires_at, size) serves count, stats
// and delete-prefix without reading values; a partial index on
// expires_at > 0 serves cleanup.
//
// Revisions. The table kvhost_meta holds schema_version, last_version (the
// store revision) and compact_revision. Every committed change takes the
// next revision (contract v2): a put, increment or batch put (whose version
// is that revision), a delete that removed a live key, each key of a
// delete-prefix and each key cleanup expires (in key order within one
// transaction), a TTL refresh, and each op of a batch that changed
// something. A write that changes nothing takes none.
//
// History. kv_history holds every commit's changes (type, key, value for a
// PUT, version, expiry), one row per chunk of up to 1000 consecutive
// changes of one commit, encoded in a blob (chunk.go): the row is inserted
// in the transaction of the changes, so changes and history commit or roll
// back together, and a batch of 1000 puts adds one row, not 1000. Chunks
// wholly older than the last "history" revisions are pruned from the
// front in bounded steps (by commits, about a chunk at a time, and by
// CleanupExpired), and compact_revision records where pruning stopped. A
// watch can start at any of the last "history" revisions; an older start
// is a *kv.CompactedError naming the oldest, which Stats reports as
// OldestRevision. Replay decodes chunks and keeps the changes under the
// watched prefix, a literal prefix compared byte by byte.
//
// Reads report their revision exactly: each read is one SQL statement
// that reads last_version together with the data, and SQLite runs a
// statement on one WAL snapshot. Get is a single-row statement (the meta
// row LEFT JOIN the key), so a point get costs one step.
//
// Opening a file refuses, without writing to it, anything that is not a
// SQLite database, a SQLite database that is not a kvhost one, and a
// kvhost database whose schema_version is newer than SchemaVersion (the
// error names both versions). An older schema is migrated forward in one
// transaction; a schema 1 database keeps its data and revision and starts
// with an empty history whose compact revision is its last version.
//
// The file is in WAL mode. All writes go through one connection under a
// mutex, each call in one IMMEDIATE transaction (a Batch too), so
// conditions, increments and revision stamping are atomic; reads use a
// pool of read-only connections that run beside the writer. A key whose
// expiry has passed is invisible to every read and condition at once,
// before CleanupExpired removes its row.
//
// Where the contract leaves a choice: a row whose expiry has passed stays
// until CleanupExpired removes it and emits EXPIRE: Delete and
// DeletePrefix treat it as absent and leave it, and a put over it starts
// the key anew (with no EXPIRE event). Retention counts revisions, not
// time; rows past it that are not yet pruned are not offered either, so
// where a watch may start does not depend on when pruning ran.
//
// A lock file, <path>.lock, held with flock, refuses a second Store on the
// same file, in this process or another: the revision counter and watch
// events come from the one writer, so SQLite here is single-node. The
// kernel drops the lock when the process dies.
//
// # Watch
//
// Events are built for every commit and published after it while the
// writer mutex is still held, so every watcher sees commit order; a watch
// that starts at a revision replays kv_history through
// pluginapi.WatchHub and then joins the live fan-out. PUT events carry the
// value, version and expiry; DELETE and EXPIRE the version the key had; TTL
// (RefreshTTL, to watches that ask for them) the new expiry and the
// unchanged version.
//
// # Errors
//
// Every error names the operation and key ("sqlite: put \"a\": ...") and
// wraps a kv sentinel: ErrNotFound, *kv.ConflictError,
// ErrInvalidArgument for bad input, a non-counter value or an overflowing
// increment, *kv.CompactedError for a watch from a pruned revision,
// ErrStorageFull for a full disk, ErrDataLoss for a corrupt file or
// history, ErrUnavailable for other I/O-level failures (a busy or
// unreadable file), ErrTooLarge past SQLite's row limit, ErrClosed after
// Close.
package sqlite
