// Package conformance is the test suite every kvhost backend must pass. It
// checks each line of the contract documented in package pluginapi: keys
// and values, versions, TTL, conditions, listing with literal prefixes,
// counters, TTL refresh, atomic batches, watch, cleanup, stats, and
// concurrency.
//
// A backend author calls it from an ordinary _test.go file in their own
// module, importing only pluginapi and this package:
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
// newBackend must return an independent, empty backend on every call.
//
// The same suite runs over the real wire: RunGRPC serves the backend over
// an in-process gRPC connection, and RunPlugin starts a built plugin binary
// as a go-plugin subprocess for every subtest, exactly as the host does:
//
//	conformance.RunPlugin(t, "bin/kvhost-plugin-mybackend", func(t testing.TB) map[string]string {
//		return map[string]string{"path": filepath.Join(t.TempDir(), "db")}
//	})
//
// Optional parts of the contract (Watch, CleanupExpired) are tested when a
// backend claims them in Info.Capabilities; when it does not, the suite
// checks that calling them is refused with ErrNotSupported.
package conformance
