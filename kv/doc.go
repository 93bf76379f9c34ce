// Package kv is kvhost's data model: the Backend contract, its types and
// errors, and the validation every side shares. It imports nothing but the
// standard library, so an application that only talks to kvhost (through
// package client) links no plugin machinery, and a backend author reads
// the whole contract in one place. Package pluginapi serves a Backend as a
// plugin; package kv/op numbers the operations.
//
// # The contract, version 2
//
// Keys are valid UTF-8, 1 to MaxKeyLen (1024) bytes, without NUL. Values
// are any bytes, empty allowed; every backend accepts at least MinValueSize
// (16 MiB).
//
// Revisions. The store has one revision counter, strictly increasing,
// starting above 0 and never going back (not across restarts, not after a
// key is deleted and recreated). Every committed change consumes exactly
// one revision: a put, a delete that removed a live key, each key a
// delete-prefix removed (in key order), each key cleanup expired, an
// increment, a TTL refresh, and each op of a batch that changed something.
// A write that changes nothing (a failed condition, a delete of a missing
// key, a failed batch) consumes none. Each change's watch event carries its
// revision.
//
// Versions. An entry's Version is the revision of its last value change
// (put, increment, batch put). A TTL refresh takes a revision but leaves
// the version as it was, so a lock holder's version works as a fencing
// token across heartbeats. Compare-and-set therefore has no ABA problem.
//
// Reads report the revision they were served at: Get, GetMany, List,
// Count and Stats reflect every change up to that revision and none after
// it. A caller that lists and then watches from the list's revision plus
// one sees every later change exactly once, with no gap.
//
// TTL has millisecond precision: a TTL is rounded up to a whole
// millisecond (a positive TTL never becomes "no expiry") and the expiry is
// the current Unix millisecond plus it (ExpiryAt). A key is invisible to
// every operation — get, list, count, stats, conditions, increment,
// delete, refresh — from the instant it expires, even before anything
// removes it. TTL 0 means no expiry; a put without a TTL clears an earlier
// one.
//
// Conditions: CondNone, CondAbsent (an expired key counts as absent) or
// CondVersion (the live key is at exactly that version; a missing key is at
// version 0, which never matches). A failed condition is a *ConflictError
// carrying the key's current version (0 when absent) and, in a batch, the
// index of the failing op. Deletes and refreshes take CondNone or
// CondVersion only.
//
// Get of a missing key is Found false; GetMany answers up to MaxGetMany
// keys in request order with nil for a missing one. Delete of a missing
// key is not an error, unless it names a version: then it is a conflict at
// current version 0.
//
// List walks keys with a literal prefix — '%', '_', '*', '?', '[' and '\'
// match only themselves — in ascending byte order, after StartAfter, up to
// Limit (0 means DefaultListLimit; above MaxListLimit it is lowered to
// MaxListLimit) and up to MaxBytes of keys and values (ListRequest.PageFull
// is the rule; the first entry always comes), and says whether more
// remain. An empty prefix lists
// everything. Count(prefix) and DeletePrefix(prefix) return how many keys;
// DeletePrefix refuses an empty prefix. A prefix matches the key equal to
// it.
//
// Increment adds delta atomically to a counter stored as decimal ASCII
// int64 text. A missing or expired key starts at 0 without a TTL; a live
// key keeps its TTL; a value that is not a decimal int64 and an overflow are
// ErrInvalidArgument, and leave the key as it was.
//
// RefreshTTL changes only a live key's expiry (0 removes it), optionally
// under CondVersion. A missing or expired key is ErrNotFound, with or
// without a condition: a refresh never creates a key, and "not there" is
// the more useful answer to a lease holder than "at version 0".
//
// Batch applies up to MaxBatchOps puts and deletes, in order, atomically:
// all or nothing, and a batch that fails publishes no event. A failed
// condition is a *ConflictError whose OpIndex names the op and whose
// CurrentVersion is the key's version as the batch saw it at that op
// (after the batch's own earlier ops).
//
// # Watch
//
// Watch(WatchRequest) streams committed changes under a prefix, in
// revision order, exactly once, with no gap: PUT (new value, version and
// expiry), DELETE and EXPIRE (the version the key had), and, when asked
// for, TTL (the new expiry, the unchanged version). StartRevision 0 starts
// at the next change; a backend with Capabilities.WatchHistory replays
// from any StartRevision within its retention and then continues live,
// and a start before its oldest kept revision fails with a
// *CompactedError naming that oldest revision. An idle watch gets an
// EventProgress now and then, whose Revision says every change up to it
// has been delivered.
//
// EXPIRE events come from cleanup (Expirer), one per key it removes. A key
// that expired and was then written again before cleanup reached it gets
// no EXPIRE event: the write's own PUT is the next event for the key, and
// the earlier event's ExpiresAt already told watchers when it would go. A
// delete of an expired key finds nothing (no event, no revision); cleanup
// later removes it with its EXPIRE event.
//
// A slow watcher never blocks writers: when it falls further behind than
// its buffer, its stream ends with ErrWatchOverflow after the events it
// holds, and the watcher resumes from the last revision it saw plus one.
//
// CleanupExpired(limit) removes expired keys, emits EXPIRE events and
// returns how many; the host calls it periodically on backends that claim
// it. Stats counts live keys and their bytes (key plus value lengths).
//
// Concurrency: every operation is atomic; concurrent increments lose no
// update, and of concurrent put-if-absent or same-version compare-and-set
// calls exactly one wins.
//
// # Errors
//
// Every error is, or wraps, one of the sentinels (ErrNotFound, ErrConflict,
// ErrInvalidArgument, ErrUnavailable, ErrNotSupported, ErrCompacted, ...).
// Package api/rpcerr maps them to gRPC status codes with a stable reason in
// a google.rpc.ErrorInfo detail and back, so errors.Is works across both
// wires; a *ConflictError and a *CompactedError arrive whole. Never match
// on error strings.
package kv
