// Package redis is kvhost's Redis backend: a kv.Backend (and Watcher and
// Expirer) on a Redis 7 server through github.com/redis/go-redis/v9. Any
// number of hosts may share one store: Redis orders their writes, and
// each host follows the store's event stream for its watchers.
//
// The binary in cmd/kvhost-plugin-redis serves it as a plugin:
//
//	func main() { pluginapi.Serve(redis.Open, pluginapi.WithMemoryLimit(128<<20)) }
//
// A program can also use it directly with New.
//
// # Settings
//
// The host passes settings as strings; Open parses them with ParseSettings.
// An unknown setting or a malformed value is refused with an error wrapping
// kv.ErrInvalidArgument that names it. At most one of addr, url and
// sentinel_master may be set.
//
//	setting                default          meaning
//	addr                   127.0.0.1:6379   the server's host:port
//	url                    -                redis://[user@]host:port/db, rediss://
//	                                        (TLS) or unix:///path; no password in it
//	username               -                ACL user
//	password_env           -                the name of the environment variable
//	                                        that holds the password (kept out of
//	                                        configuration files)
//	db                     0                database number
//	key_prefix             {kvhost}:        starts every Redis key of the store; it
//	                                        must hold a hash tag {...}; stores with
//	                                        different prefixes are independent
//	pool_size              10 per CPU       connections in the pool
//	tls                    false            connect with TLS
//	tls_ca_file            system roots     PEM file of the CAs to trust
//	tls_server_name        the host         the name the certificate must carry
//	sentinel_master        -                connect through Redis Sentinel to the
//	                                        master of this name
//	sentinel_addrs         -                host:port of the sentinels, by commas
//	sentinel_password_env  -                the variable holding the sentinels'
//	                                        password
//	history                100000           most recent revisions kept in the event
//	                                        stream for watches that start at a
//	                                        revision (DefaultHistory)
//	watch_buffer           4096             events a watcher may fall behind before
//	                                        its stream ends with ErrWatchOverflow
//	timeout_ms             5000             bound on one command's reply
//	dial_timeout_ms        5000             bound on connecting
//
// # Storage
//
// Every write is one atomic step: a Lua script (scripts.go), run with
// EVALSHA (EVAL when the server has not cached it), or for a batch that
// involves no expiry a MULTI/EXEC of plain commands planned under WATCH
// (batchtx.go), which falls back to the script when writers keep
// aborting it. Either way Redis applies conditions, the change, revision
// stamps from one counter and the events in the stream together. Reads
// are one atomic step too: Get and GetMany a MULTI/EXEC transaction,
// Count and Stats a script, List a page read under WATCH (list.go) that
// falls back to a script when writers keep aborting it. A Redis out of
// memory refuses every command queued in a transaction, reads included;
// Get, GetMany and List then read with read-only scripts, which it runs. All of a store's data lives in nine keys under the prefix:
// the revision counter; the values in one hash and their metadata
// (version, expiry, value length; 20 bytes) in another; a sorted set of
// every key with score 0, which ZRANGE BYLEX walks in byte order for
// complete, paginated prefix listing (never SCAN); a sorted set of expiry
// times for cleanup; the event stream; a running total of key and value
// bytes for Stats; the epoch; and a scratch hash for Increment's
// arithmetic. Every script names all nine as KEYS, and they share the
// prefix's hash tag: every script and transaction is valid on one Redis
// Cluster slot.
//
// Revisions. The counter takes one revision per change (contract v2): a
// script that changes n keys adds n to it. Its events go to the stream as
// entries of up to 1000 changes each, whose ID is the last revision they
// hold ("<revision>-0"), so XRANGE from a revision starts at the entry
// holding it. A write that changes nothing takes no revision and appends
// nothing. The stream is trimmed with XTRIM MINID ~ (whole stream nodes
// older than the last history revisions, never newer ones); a watch may
// start at any of the last history revisions, and an older start is a
// *kv.CompactedError naming the oldest, which Stats reports as
// OldestRevision.
//
// Time is the Redis server's: scripts read TIME, so every host of a store
// agrees on when a key expires. A TTL is rounded up to a whole
// millisecond and the expiry is the server's Unix millisecond plus it;
// Redis's own key expiry is not used (it would drop keys without the
// EXPIRE event and its version). A key whose expiry has passed is
// invisible to every read, condition, count and stat at once, and stays
// stored until CleanupExpired removes it with its EXPIRE event: Delete
// and DeletePrefix treat it as absent and leave it, a put over it starts
// the key anew without an EXPIRE. Cleanup removes keys soonest expiry
// first; hosts that run it at once each remove (and announce) different
// keys. Count and Stats subtract the expired keys cleanup has not reached
// yet, a cost proportional to their number.
//
// Counters are stored as decimal text, as on every backend. Increment
// accepts what strconv.ParseInt accepts in base 10 (a sign, leading
// zeros) and adds with Redis's own int64 HINCRBY on the scratch hash,
// never with Lua's floating point numbers.
//
// The epoch. A store holds a random epoch. If Redis loses the store's
// data (a restart without persistence, FLUSHALL) the epoch is gone; the
// next call sets a new one and raises the revision counter to at least
// the highest revision this process has seen, so revisions do not go
// back, and watches end with *kv.CompactedError (list again, then watch).
// Persistence is Redis's: run it with AOF (appendfsync everysec or
// always) for a store whose acknowledged writes must survive a restart.
//
// # Watch
//
// One goroutine per Store follows the stream (XREAD BLOCK from the last
// revision it published) while anyone watches, and publishes each event
// to a pluginapi.WatchHub: every host delivers every change, its own
// writes included, in the stream's order. A watch from now first waits
// until the follower has published everything committed before it; a
// watch from a revision replays the stream (XRANGE) and then joins. A
// lost connection is retried with backoff and followed on from the last
// revision published; if that has been trimmed meanwhile, or the store
// lost its data, open watches end with *kv.CompactedError.
//
// # Errors
//
// Every error names the operation and key ("redis: put \"a\": ...") and
// wraps a kv sentinel: ErrNotFound, *kv.ConflictError, ErrInvalidArgument
// for bad input, a non-counter value or an overflowing increment,
// *kv.CompactedError, ErrStorageFull when Redis is out of memory (the
// script was refused before it ran), ErrUnavailable when Redis cannot be
// reached or cannot serve (loading, busy, a replica, bad credentials),
// ErrDataLoss for damaged metadata or stream entries, ErrClosed after
// Close. Commands are not retried by go-redis: a write whose reply was
// lost may have been applied, and the caller decides.
package redis
