// Package pluginapi is the contract between the kvhost host and its storage
// backends, and everything a backend author needs to keep it: the Backend
// interface and its types, one error model that survives the process
// boundary, the go-plugin glue (Serve on the plugin side, Start on the host
// side), and validation helpers shared by every backend.
//
// # Writing a backend
//
// A backend is a Go package with an OpenFunc and a ten-line main:
//
//	package main
//
//	import (
//		"github.com/kvhost/kvhost/pluginapi"
//		"example.com/mybackend"
//	)
//
//	func main() { pluginapi.Serve(mybackend.Open) }
//
// Open receives the operator's settings (string keys and values from the
// host's configuration) and returns a Backend. Refuse unknown settings with
// an error wrapping ErrInvalidArgument that names them. Implement Watcher
// and Expirer too when the backend can, and say so in Info.Capabilities:
// across the process boundary nobody can type-assert, so capabilities
// travel in Info.
//
// Prove the backend keeps the contract with the conformance suite, from an
// ordinary test in your own module:
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, func(t testing.TB) kv.Backend { return mybackend.New() })
//	}
//
// and through the wire with conformance.RunPlugin against your built binary
// (or `kvhost plugin verify ./my-plugin`).
//
// # The contract
//
// Keys are valid UTF-8, 1 to MaxKeyLen (1024) bytes, without NUL. Values are
// any bytes, empty allowed; every backend accepts at least MinValueSize
// (16 MiB).
//
// Versions: every write (put, increment, each put of a batch) stamps the
// key with a new version from one backend-wide, strictly increasing
// counter, starting above 0. A key deleted (or expired) and created again
// never gets an old version back, so compare-and-set has no ABA problem. A
// TTL refresh does not change the version.
//
// TTL has millisecond precision (a positive TTL below 1ms rounds up). A key
// is invisible to every operation — get, list, count, conditions, increment,
// delete, refresh — from the instant it expires, even before anything
// removes it. TTL 0 means no expiry; a put without a TTL clears an earlier
// one.
//
// Conditions: CondNone, CondAbsent (an expired key counts as absent) or
// CondVersion (the live key is at exactly that version; a missing key is at
// version 0, which never matches). A failed condition is a *ConflictError
// carrying the key's current version. Deletes and refreshes take CondNone
// or CondVersion only.
//
// Get returns ErrNotFound for a missing key; GetMany answers up to
// MaxGetMany keys in request order with nil for a missing one. Delete of a
// missing key is not an error; it reports whether it deleted anything.
//
// List walks keys with a literal prefix — '%', '_', '*', '?', '[' and '\'
// match only themselves — in ascending byte order, after StartAfter, up to
// Limit (0 means DefaultListLimit; above MaxListLimit it is lowered to
// MaxListLimit), and says whether more remain. An empty prefix lists
// everything. Count(prefix) and DeletePrefix(prefix) return how many keys;
// DeletePrefix refuses an empty prefix.
//
// Increment adds delta atomically to a counter stored as decimal ASCII
// int64 text. A missing or expired key starts at 0 without a TTL; a live key
// keeps its TTL; a value that is not a decimal int64 and an overflow are
// ErrInvalidArgument, and leave the key as it was.
//
// RefreshTTL changes only a live key's expiry (0 removes it), optionally
// under CondVersion; a missing or expired key is ErrNotFound.
//
// Batch applies up to MaxBatchOps puts and deletes, in order, atomically:
// all or nothing. A failed condition is a *ConflictError whose OpIndex
// names the op.
//
// Watch(prefix) is live when it returns: every change committed afterwards
// under the prefix arrives exactly once, in commit order, as PUT (new value
// and version), DELETE or EXPIRE (the version the key had). A TTL refresh
// and a failed write send nothing. A slow watcher never blocks writers: when
// it falls further behind than its buffer, its stream ends with
// ErrWatchOverflow after the events it holds, and the client resyncs.
// WatchHub implements all of this for a backend that publishes after each
// commit.
//
// CleanupExpired(limit) removes expired keys, emits EXPIRE events and
// returns how many; the host calls it periodically on backends that claim
// it. Stats counts live keys and their bytes (key plus value lengths).
//
// Concurrency: every operation is atomic; concurrent increments lose no
// update, and of concurrent put-if-absent calls exactly one wins.
//
// # Errors
//
// Every error is, or wraps, one of the sentinels (ErrNotFound, ErrConflict,
// ErrInvalidArgument, ErrUnavailable, ErrNotSupported, ...). One table maps
// them to gRPC status codes and back (ToStatus, FromStatus), so errors.Is
// works on the host side of the wire; a *ConflictError travels as a status
// detail and arrives whole. Never match on error strings.
//
// # Versions of the protocol
//
// ProtocolVersion is 1. The host offers every protocol version it speaks
// (PluginSets) and go-plugin picks the highest one the plugin shares; a new
// version will sit beside version 1 rather than replace it.
package pluginapi
