// Package postgres is a kvhost backend on PostgreSQL (pgx, pgxpool),
// keeping contract v2 in full — revisions, watch with history, TTL
// events — across several kvhost hosts that share one database.
//
// # Settings
//
//	dsn                   libpq URL or key=value string (default: libpq's defaults and PG* variables)
//	password_env          name of an environment variable holding the password (none)
//	schema                schema holding the store's tables, created if missing (kvhost)
//	pool_size             most connections, plus one for LISTEN (8)
//	statement_timeout_ms  server-side bound on each statement (30000)
//	connect_timeout_ms    how long a server that is down at start is retried (30000)
//	history               revisions of history kept for watches from a revision (100000)
//	watch_buffer          events a watcher may fall behind (pluginapi.DefaultWatchBuffer)
//
// A server that refuses or does not answer at start is retried with
// backoff up to connect_timeout_ms, then Open fails naming the cause; a
// refused password (SQLSTATE 28P01) or a missing database fails at once.
//
// # Design
//
// Each write transaction first locks the one row of meta and takes its
// revisions from it, so writers take turns and revision order is commit
// order (see txn.go and docs/RATIONALE.md). The transaction's changes are
// also written, in the same transaction, to the history_chunks table as one row
// (a chunk, sqlkv.EncodeChunks; more for over 1000 changes or 1 MiB), and
// the transaction notifies the schema's channel. A follower goroutine per
// store reads history from the last revision it published and publishes
// it, in order, to the store's pluginapi.WatchHub; LISTEN/NOTIFY only
// wakes it (and it reads once a second regardless), so a lost listener
// connection delays events and loses none. Reads are one statement each
// and read meta.rev in it, so the revision they report matches their
// snapshot. CleanupExpired deletes expired rows in bounded batches (FOR
// UPDATE SKIP LOCKED) and prunes history to its retention; it may run on
// every host at once, and each key's EXPIRE is recorded once.
//
// # Errors
//
// A refused or broken connection, a server shutting down and a statement
// past its timeout are kv.ErrUnavailable; the pool replaces broken
// connections, so calls succeed again once the server is back, without
// restarting anything. A full disk (53100) is kv.ErrStorageFull, damaged
// data (XX001, XX002) kv.ErrDataLoss. A commit whose answer is lost is
// ErrUnavailable: it may have committed.
package postgres
