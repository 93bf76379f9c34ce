// Package conformance is the test suite every kvhost backend must pass. It
// checks each rule of the backend contract documented in package kv, one
// subtest per rule, and it has teeth: for every rule, a deliberately broken
// backend in this package's own tests fails it.
//
// # Running it
//
// A backend author calls it from an ordinary _test.go file:
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, func(t testing.TB) kv.Backend {
//			b, err := mybackend.Open(t.Context(), map[string]string{"path": t.TempDir()})
//			if err != nil {
//				t.Fatal(err)
//			}
//			return b
//		})
//	}
//
// The suite closes each backend it is given. Subtests run in parallel, so
// newBackend must return an independent, empty backend on every call
// (unless WithNamespace says the store is shared, below).
//
// The same suite runs over the real wire: RunGRPC serves the backend over
// an in-process gRPC connection, and RunPlugin starts a built plugin binary
// as a go-plugin subprocess for every subtest, exactly as the host does.
// `kvhost plugin verify` runs RunPlugin from the command line:
//
//	conformance.RunPlugin(t, "bin/kvhost-plugin-mybackend", func(t testing.TB) map[string]string {
//		return map[string]string{"path": filepath.Join(t.TempDir(), "kv.db")}
//	})
//
// # Groups and capabilities
//
// Rules come in groups, each a subtest of its own, each rule a subtest of
// its group named by what it says ("core/each-change-takes-the-next-revision",
// "watch-history/replays-from-a-revision-exactly-once-then-continues-live"):
//
//   - core: keys and values, versions and revisions (every change takes
//     exactly the next revision, a write that changes nothing takes none,
//     every read reports the revision it was served at), Get and GetMany,
//     conditions, List and its literal prefixes, Count, DeletePrefix,
//     Increment, atomic batches and their conflicts, Stats, and races
//     (increments, put-if-absent, compare-and-set on one version).
//   - ttl: expiry at millisecond precision, invisibility of expired keys,
//     RefreshTTL, and CleanupExpired when the backend claims it.
//   - watch: live events, their fields, TTL events on request, progress on
//     an idle watch, cancellation, overflow, EXPIRE events.
//   - watch-history: replay from a revision, a start in the future,
//     list-then-watch without a gap, compaction.
//
// Optional parts of the contract are tested when the backend claims them
// in Info.Capabilities (watch, watch-history, cleanup-expired); the rules
// that need an unclaimed capability are skipped, saying so, and the
// group's "is-refused-when-not-claimed" rule checks instead that calling it
// is refused with kv.ErrNotSupported. Run with -run to select groups or
// rules as usual (go test -run 'TestConformance/watch-history/').
//
// # Options
//
// Run, RunGRPC and RunPlugin take options:
//
//   - WithNamespace(ns) is for a backend on a shared server (PostgreSQL,
//     Redis): newBackend may then return handles to one store, which may
//     hold other keys. Every key the suite writes is under ns, each subtest
//     under a prefix of its own below it (ns, a random run id, the rule's
//     name); the suite never counts or deletes outside its prefix, and
//     deletes that prefix when the subtest ends. Rules about the whole
//     store (revision accounting, stats, cleanup, history) run while no
//     other subtest of the run does; nothing outside the run may write to
//     the store or run cleanup on it meanwhile.
//   - WithRetention(n) says how many revisions of history the backend
//     keeps. The compaction rule writes more than that, calls
//     CleanupExpired (where the backend prunes its history), and checks
//     that a watch from revision 1 fails with a *kv.CompactedError naming
//     the oldest revision kept, that Stats agrees, and that a watch from
//     that revision replays. Without it the rule is skipped.
//   - WithFilter(re) runs only the rules whose names match; WithReport(fn)
//     hears how each rule's subtest ended.
//
// # Reading a failure
//
// Every failure says what the backend did, in terms of the calls the suite
// made, and ends with the rule broken in the contract's words:
//
//	--- FAIL: TestConformance/core/each-change-takes-the-next-revision
//	    revisions.go:50: after a delete the store is at revision 7, want 5
//	        rule broken: every committed change takes exactly the next revision: ...
//
// The subtest's name says the rule too; Rules lists them all. A failure
// in one rule rarely means the others are wrong, so fix them one at a
// time, starting with core. Tests wait for events and expiries with
// generous bounds (an event is awaited for 10 seconds), so a backend that
// passes never makes the suite wait; one that loses an event fails after
// the bound. TTL rules use TTLs of tens of milliseconds and wait until the
// expiry the backend reported has passed on the suite's clock: the
// backend's clock must be the same (or agree to the millisecond).
package conformance
