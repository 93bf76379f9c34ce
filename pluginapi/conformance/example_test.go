package conformance_test

import (
	"fmt"

	"github.com/kvhost/kvhost/pluginapi/conformance"
)

// Every rule the suite checks, by group; each is a subtest of the same
// name, and its failures end with what the rule says.
func ExampleRules() {
	for _, r := range conformance.Rules() {
		fmt.Println(r.Name)
	}
	// Output:
	// core/info-names-the-backend-its-protocol-and-what-it-implements
	// core/keys-of-1-to-1024-bytes-of-utf8-round-trip
	// core/invalid-input-is-refused-and-changes-nothing
	// core/values-are-any-bytes-including-empty
	// core/values-of-16-mib-are-accepted
	// core/get-of-a-missing-key-is-found-false-not-an-error
	// core/versions-are-the-revisions-of-value-changes
	// core/a-recreated-key-never-reuses-a-version
	// core/each-change-takes-the-next-revision
	// core/a-write-that-changes-nothing-takes-no-revision
	// core/reads-report-the-revision-they-were-served-at
	// core/put-conditions-if-absent-and-if-version
	// core/delete-of-a-missing-key-is-not-an-error-unless-it-names-a-version
	// core/get-many-answers-in-request-order-with-nil-for-missing
	// core/get-many-answers-every-key-of-a-full-request
	// core/list-walks-keys-in-byte-order-a-page-at-a-time
	// core/list-limit-defaults-to-1000-and-is-capped-at-10000
	// core/list-pages-are-bounded-by-bytes
	// core/prefixes-are-literal
	// core/a-prefix-matches-the-key-equal-to-it
	// core/a-prefix-may-end-in-any-code-point
	// core/a-packed-page-is-the-list-page
	// core/count-and-delete-prefix-cover-exactly-the-prefix
	// core/increment-adds-to-a-decimal-counter
	// core/batch-ops-apply-in-order
	// core/a-failed-batch-applies-nothing
	// core/a-batch-conflict-names-the-op-and-the-version-after-earlier-ops
	// core/stats-count-live-keys-and-their-bytes
	// core/concurrent-increments-lose-no-update
	// core/concurrent-put-if-absent-has-one-winner
	// core/concurrent-compare-and-set-on-one-version-has-one-winner
	// ttl/expiry-is-the-call-time-plus-the-ttl-rounded-up-to-a-millisecond
	// ttl/a-key-with-a-ttl-expires-and-one-without-does-not
	// ttl/an-expired-key-is-invisible-to-every-operation
	// ttl/a-put-without-a-ttl-removes-an-earlier-one
	// ttl/refresh-changes-only-the-expiry-and-keeps-the-version
	// ttl/refresh-of-a-missing-key-is-not-found-even-with-a-version
	// ttl/cleanup-removes-expired-keys-up-to-its-limit-one-revision-each
	// ttl/cleanup-is-refused-when-not-claimed
	// watch/delivers-every-change-under-its-prefix-once-in-order
	// watch/events-carry-their-revision-version-and-expiry
	// watch/delete-prefix-sends-one-event-per-key-in-key-order
	// watch/a-prefix-matches-the-key-equal-to-it
	// watch/ttl-events-only-when-asked
	// watch/failed-writes-publish-nothing
	// watch/an-idle-watch-reports-progress-at-or-after-its-last-change
	// watch/a-cancelled-watch-ends
	// watch/a-slow-watcher-ends-with-overflow-and-never-blocks-writers
	// watch/an-expired-key-overwritten-before-cleanup-gets-no-expire-event
	// watch/is-refused-when-not-claimed
	// watch-history/replays-from-a-revision-exactly-once-then-continues-live
	// watch-history/a-start-revision-in-the-future-delivers-only-from-it
	// watch-history/list-then-watch-from-its-revision-plus-one-has-no-gap-or-repeat
	// watch-history/a-compacted-start-fails-with-the-oldest-revision-kept
	// watch-history/is-refused-when-not-claimed
}
