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
//
// # Storage
//
// One table, kv, holds key TEXT PRIMARY KEY (the BINARY collation compares
// bytes, the contract's order), value BLOB, version, expires_at, created_at
// and updated_at (unix milliseconds; expires_at 0 means never); point gets
// and prefix scans are searches and range scans on the primary key index,
// never LIKE. A partial index on expires_at > 0 serves cleanup. The table
// kvhost_meta holds schema_version and last_version, the backend-wide
// version counter: every put takes the next version, so a key deleted and
// recreated, or a store reopened, never reuses one.
//
// Opening a file refuses, without writing to it, anything that is not a
// SQLite database, a SQLite database that is not a kvhost one, and a
// kvhost database whose schema_version is newer than SchemaVersion (the
// error names both versions). An older schema is migrated forward in one
// transaction.
//
// The file is in WAL mode. All writes go through one connection under a
// mutex, each call in one IMMEDIATE transaction (a Batch too), so
// conditions, increments and version stamping are atomic; reads use a pool
// of read-only connections that run beside the writer. A key whose expiry
// has passed is invisible to every read and condition at once, before
// CleanupExpired removes its row.
//
// Where the contract leaves a choice: every put, increment and batch put
// takes its own version (a batch of n puts uses n consecutive versions);
// deletes take none. A row whose expiry has passed stays until
// CleanupExpired removes it and emits EXPIRE: Delete and DeletePrefix
// treat it as absent and leave it, and a put over it starts the key anew.
//
// A lock file, <path>.lock, held with flock, refuses a second Store on the
// same file, in this process or another: watch events come from the one
// writer, so SQLite here is single-node. The kernel drops the lock when the
// process dies.
//
// # Watch
//
// Events are published after each commit while the writer mutex is still
// held, so every watcher sees commit order. Put, Increment and Batch puts
// emit PUT; Delete, DeletePrefix (one per key, in key order) and Batch
// deletes emit DELETE; CleanupExpired emits EXPIRE with the version the key
// had. RefreshTTL changes neither the version nor emits an event.
//
// # Errors
//
// Every error names the operation and key ("sqlite: put \"a\": ...") and
// wraps a pluginapi sentinel: ErrNotFound, *kv.ConflictError,
// ErrInvalidArgument for bad input, a non-counter value or an overflowing
// increment, ErrUnavailable for I/O-level failures (full disk, busy or
// corrupt file), ErrTooLarge past SQLite's row limit, ErrClosed after Close.
package sqlite
