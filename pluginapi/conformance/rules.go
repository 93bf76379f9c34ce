package conformance

import (
	"regexp"
	"strings"

	"github.com/kvhost/kvhost/kv"
)

// rule is one rule of the contract and the test that checks it.
type rule struct {
	Rule
	// needs names the capabilities (keys of capabilities) the rule
	// applies to; without them it is skipped.
	needs []string
	// unclaimed names a capability this rule checks is refused cleanly:
	// it runs only when the backend does not claim it.
	unclaimed string
	// exclusive: the rule is about the whole store (its revision counter,
	// history, cleanup, stats) or loads it heavily; in a shared store it
	// runs while no other subtest runs.
	exclusive bool
	test      func(*check)
}

// capabilities are the optional parts of the contract, by the name rules
// use for them. A later capability adds a line here, a refusal rule and
// its group of rules below.
var capabilities = map[string]func(kv.Capabilities) bool{
	"watch":           func(c kv.Capabilities) bool { return c.Watch },
	"watch-history":   func(c kv.Capabilities) bool { return c.WatchHistory },
	"cleanup-expired": func(c kv.Capabilities) bool { return c.CleanupExpired },
}

// refusalGroup says which group holds a capability's refusal rule.
var refusalGroup = map[string]string{
	"watch":           "watch",
	"watch-history":   "watch-history",
	"cleanup-expired": "ttl",
}

// rules is the suite, group by group. Each name says the rule; each Says
// is how a failure explains it.
var rules = []rule{
	// core: keys, values, versions and revisions, reads, conditions,
	// lists, counters, batches, stats, concurrency.
	{Rule: Rule{"core/info-names-the-backend-its-protocol-and-what-it-implements",
		"Info names the backend and its version, speaks this plugin protocol, and claims only capabilities it implements (watch-history needs watch)"},
		test: testInfo},
	{Rule: Rule{"core/keys-of-1-to-1024-bytes-of-utf8-round-trip",
		"keys are valid UTF-8 of 1 to 1024 bytes without NUL, and read back exactly as written"},
		test: testKeys},
	{Rule: Rule{"core/invalid-input-is-refused-and-changes-nothing",
		"invalid input (a bad key or prefix, a negative TTL or list limit, a condition the operation does not take, too many keys or ops) is ErrInvalidArgument and changes nothing"},
		test: testInvalidInput},
	{Rule: Rule{"core/values-are-any-bytes-including-empty",
		"values are any bytes, empty allowed, and read back exactly"},
		test: testValues},
	{Rule: Rule{"core/values-of-16-mib-are-accepted",
		"every backend accepts values of at least 16 MiB"},
		test: testLargeValue},
	{Rule: Rule{"core/get-of-a-missing-key-is-found-false-not-an-error",
		"Get of a missing key is Found false with no error, and still reports the revision it was served at"},
		test: testGetMissing},
	{Rule: Rule{"core/versions-are-the-revisions-of-value-changes",
		"an entry's version is the revision of its last value change (put, increment, batch put); a TTL refresh keeps it"},
		test: testVersions},
	{Rule: Rule{"core/a-recreated-key-never-reuses-a-version",
		"a key deleted or expired and written again gets a version above every earlier one, so compare-and-set has no ABA problem"},
		test: testNoABA},
	{Rule: Rule{"core/each-change-takes-the-next-revision",
		"every committed change takes exactly the next revision: a put, an increment, a TTL refresh (which keeps the version), a delete, each key of a delete-prefix, each op of a batch that changed something"},
		exclusive: true, test: testEachChangeTakesOne},
	{Rule: Rule{"core/a-write-that-changes-nothing-takes-no-revision",
		"a write that changes nothing (a delete of a missing key, a failed condition, a failed batch, a delete-prefix that matched nothing, a refused increment) takes no revision"},
		exclusive: true, test: testNoChangeTakesNone},
	{Rule: Rule{"core/reads-report-the-revision-they-were-served-at",
		"Get, GetMany, List, Count and Stats report the store revision they were served at: every change up to it, none after it"},
		exclusive: true, test: testReadsReportRevision},
	{Rule: Rule{"core/put-conditions-if-absent-and-if-version",
		"a put if-absent succeeds only when no live key exists, a put if-version only when the live key is at exactly that version (a missing key is at version 0, which never matches); a failed condition is a *ConflictError with the current version"},
		test: testPutConditions},
	{Rule: Rule{"core/delete-of-a-missing-key-is-not-an-error-unless-it-names-a-version",
		"a delete of a missing key is not an error and deletes nothing, unless it names a version: then it is a conflict at current version 0"},
		test: testDelete},
	{Rule: Rule{"core/get-many-answers-in-request-order-with-nil-for-missing",
		"GetMany answers in request order, with nil for a missing key"},
		test: testGetManyOrder},
	{Rule: Rule{"core/get-many-answers-every-key-of-a-full-request",
		"GetMany answers every one of up to MaxGetMany (1000) keys"},
		test: testGetManyFull},
	{Rule: Rule{"core/list-walks-keys-in-byte-order-a-page-at-a-time",
		"List returns live keys under a prefix in ascending byte order, after StartAfter, up to Limit, and says whether more remain; an empty prefix lists everything"},
		test: testListOrder},
	{Rule: Rule{"core/list-limit-defaults-to-1000-and-is-capped-at-10000",
		"a List limit of 0 means 1000 and a limit above 10000 is lowered to 10000"},
		test: testListLimits},
	{Rule: Rule{"core/list-pages-are-bounded-by-bytes",
		"a List page holds entries while their key plus value bytes stay within MaxBytes (key bytes alone with KeysOnly; 0 means 4 MiB), the first entry always comes however large, and More says whether keys remain"},
		test: testListBytes},
	{Rule: Rule{"core/prefixes-are-literal",
		"prefixes are literal: '%', '_', '*', '?', '[' and '\\' match only themselves in List, Count and DeletePrefix"},
		test: testLiteralPrefixes},
	{Rule: Rule{"core/a-prefix-matches-the-key-equal-to-it",
		"a prefix matches the key equal to it, in List, Count and DeletePrefix"},
		test: testPrefixEqualKey},
	{Rule: Rule{"core/a-prefix-may-end-in-any-code-point",
		"a prefix whose last code point ends in the byte 0xBF (U+00BF, U+07FF, U+FFFF, U+10FFFF), so that its last byte plus one is not UTF-8, works in List, Count and DeletePrefix like any other"},
		test: testPrefixLastCodePoint},
	{Rule: Rule{"core/a-packed-page-is-the-list-page",
		"a backend that writes list pages packed for the plugin wire (pluginapi.PackedLister) answers every list with the same page through ListPacked as through List: keys, values, versions, expiries, More, and a revision no older"},
		test: testPackedPage},
	{Rule: Rule{"core/count-and-delete-prefix-cover-exactly-the-prefix",
		"Count and DeletePrefix cover exactly the live keys under the prefix and say how many; DeletePrefix refuses an empty prefix"},
		test: testCountDeletePrefix},
	{Rule: Rule{"core/increment-adds-to-a-decimal-counter",
		"Increment adds to a decimal int64 counter (a missing key starts at 0, a live key keeps its TTL); a value that is not a decimal int64 and an overflow are ErrInvalidArgument and leave the key as it was"},
		test: testIncrement},
	{Rule: Rule{"core/batch-ops-apply-in-order",
		"a batch applies its ops in order: a later op sees the effect of an earlier one on the same key"},
		test: testBatch},
	{Rule: Rule{"core/a-failed-batch-applies-nothing",
		"a batch is all or nothing: when one op fails, none is applied"},
		test: testBatchAtomic},
	{Rule: Rule{"core/a-batch-conflict-names-the-op-and-the-version-after-earlier-ops",
		"a failed condition in a batch is a *ConflictError whose OpIndex names the op and whose CurrentVersion is the key's version as the batch saw it at that op, after its own earlier ops"},
		test: testBatchConflict},
	{Rule: Rule{"core/stats-count-live-keys-and-their-bytes",
		"Stats counts live keys and their bytes (key plus value lengths)"},
		exclusive: true, test: testStats},
	{Rule: Rule{"core/concurrent-increments-lose-no-update",
		"concurrent increments of one counter lose no update"},
		test: testConcurrentIncrement},
	{Rule: Rule{"core/concurrent-put-if-absent-has-one-winner",
		"of concurrent put-if-absent calls on one key exactly one wins; the others are conflicts"},
		test: testConcurrentPutIfAbsent},
	{Rule: Rule{"core/concurrent-compare-and-set-on-one-version-has-one-winner",
		"of concurrent if-version puts on the same version of one key exactly one wins; the others are conflicts naming the winner's version"},
		test: testConcurrentCompareAndSet},

	// ttl: expiry, its precision, invisibility, refresh and cleanup.
	{Rule: Rule{"ttl/expiry-is-the-call-time-plus-the-ttl-rounded-up-to-a-millisecond",
		"the expiry is the Unix millisecond at the time of the call plus the TTL rounded up to a whole millisecond (never truncated, never rounded to seconds)"},
		test: testExpiryPrecision},
	{Rule: Rule{"ttl/a-key-with-a-ttl-expires-and-one-without-does-not",
		"a key with a TTL is gone once its expiry passes; TTL 0 means no expiry, and a positive TTL never becomes no expiry"},
		test: testKeysExpire},
	{Rule: Rule{"ttl/an-expired-key-is-invisible-to-every-operation",
		"an expired key is invisible to every operation from the instant it expires, before anything removes it: get, get-many, list, count, stats, conditions (it counts as absent), increment (it starts at 0 without a TTL), delete, delete-prefix and refresh"},
		test: testExpiredInvisible},
	{Rule: Rule{"ttl/a-put-without-a-ttl-removes-an-earlier-one",
		"a put without a TTL clears an earlier TTL"},
		test: testPutClearsTTL},
	{Rule: Rule{"ttl/refresh-changes-only-the-expiry-and-keeps-the-version",
		"RefreshTTL changes only a live key's expiry (TTL 0 removes it), keeps its value and version, and honours an if-version condition"},
		test: testRefreshTTL},
	{Rule: Rule{"ttl/refresh-of-a-missing-key-is-not-found-even-with-a-version",
		"RefreshTTL of a missing or expired key is ErrNotFound, with or without an if-version condition (not a conflict), and creates nothing"},
		test: testRefreshMissing},
	{Rule: Rule{"ttl/cleanup-removes-expired-keys-up-to-its-limit-one-revision-each",
		"CleanupExpired removes up to limit expired keys, each with its own revision and an EXPIRE event carrying the version the key had, and returns how many"},
		needs: []string{"cleanup-expired"}, exclusive: true, test: testCleanup},
	{Rule: Rule{"ttl/cleanup-is-refused-when-not-claimed",
		"a backend that does not claim cleanup-expired refuses CleanupExpired with ErrNotSupported"},
		unclaimed: "cleanup-expired", test: testCleanupRefused},

	// watch: live events.
	{Rule: Rule{"watch/delivers-every-change-under-its-prefix-once-in-order",
		"a watch delivers every change under its prefix committed after Watch returns, exactly once, in revision order, and nothing outside its prefix"},
		needs: []string{"watch"}, test: testWatchDelivers},
	{Rule: Rule{"watch/events-carry-their-revision-version-and-expiry",
		"an event carries the revision its change took; a PUT its value, version (equal to the revision) and expiry; a TTL event the unchanged version and the new expiry; a DELETE the version the key had"},
		needs: []string{"watch"}, test: testWatchEventFields},
	{Rule: Rule{"watch/delete-prefix-sends-one-event-per-key-in-key-order",
		"a delete-prefix sends one DELETE event per key, in key order, on consecutive revisions"},
		needs: []string{"watch"}, test: testWatchDeletePrefixOrder},
	{Rule: Rule{"watch/a-prefix-matches-the-key-equal-to-it",
		"a watch's prefix matches the key equal to it"},
		needs: []string{"watch"}, test: testWatchPrefixEqual},
	{Rule: Rule{"watch/ttl-events-only-when-asked",
		"a TTL refresh sends a TTL event only to watches that ask for TTL events"},
		needs: []string{"watch"}, test: testWatchTTLEvents},
	{Rule: Rule{"watch/failed-writes-publish-nothing",
		"a write that fails or changes nothing (a failed batch, a failed condition, a delete of a missing key, a refused increment) publishes no event"},
		needs: []string{"watch"}, test: testWatchFailedWrites},
	{Rule: Rule{"watch/an-idle-watch-reports-progress-at-or-after-its-last-change",
		"an idle watch receives PROGRESS events at its ProgressInterval whose Revision is at or after the last change it delivered"},
		needs: []string{"watch"}, test: testWatchProgress},
	{Rule: Rule{"watch/a-cancelled-watch-ends",
		"a watch ends when its context is cancelled or it is closed"},
		needs: []string{"watch"}, test: testWatchCancel},
	{Rule: Rule{"watch/a-slow-watcher-ends-with-overflow-and-never-blocks-writers",
		"a watcher that does not keep up never blocks writers: its stream ends with ErrWatchOverflow after the events it holds, skipping none"},
		needs: []string{"watch"}, exclusive: true, test: testWatchOverflow},
	{Rule: Rule{"watch/an-expired-key-overwritten-before-cleanup-gets-no-expire-event",
		"a key that expired and was written again before cleanup reached it gets no EXPIRE event: the write's event is the next one for the key"},
		needs: []string{"watch", "cleanup-expired"}, exclusive: true, test: testNoExpireAfterOverwrite},
	{Rule: Rule{"watch/is-refused-when-not-claimed",
		"a backend that does not claim watch refuses Watch with ErrNotSupported"},
		unclaimed: "watch", test: testWatchRefused},

	// watch-history: watches that start at a revision.
	{Rule: Rule{"watch-history/replays-from-a-revision-exactly-once-then-continues-live",
		"a watch from a start revision replays every kept change under its prefix from that revision, exactly once and in order, then continues with live changes without a gap or a repeat"},
		needs: []string{"watch", "watch-history"}, exclusive: true, test: testReplay},
	{Rule: Rule{"watch-history/a-start-revision-in-the-future-delivers-only-from-it",
		"a watch whose start revision is above the store's delivers only changes from that revision on"},
		needs: []string{"watch", "watch-history"}, exclusive: true, test: testFutureStart},
	{Rule: Rule{"watch-history/list-then-watch-from-its-revision-plus-one-has-no-gap-or-repeat",
		"a caller that lists and then watches from the list's revision plus one sees every later change exactly once"},
		needs: []string{"watch", "watch-history"}, exclusive: true, test: testListThenWatch},
	{Rule: Rule{"watch-history/a-compacted-start-fails-with-the-oldest-revision-kept",
		"a watch from a revision older than the history kept fails with a *CompactedError (errors.Is ErrCompacted) naming the oldest revision kept, which Stats reports too and from which a watch replays"},
		needs: []string{"watch", "watch-history"}, exclusive: true, test: testCompacted},
	{Rule: Rule{"watch-history/is-refused-when-not-claimed",
		"a backend that does not claim watch-history refuses a watch from a start revision with ErrNotSupported"},
		unclaimed: "watch-history", test: testHistoryRefused},
}

// group is the rules of one group, in table order.
type group struct {
	name  string
	rules []rule
}

// groups returns the selected rules by group, in table order.
func groups(filter *regexp.Regexp) []group {
	var out []group
	for _, r := range rules {
		if filter != nil && !filter.MatchString(r.Name) {
			continue
		}
		name, _, _ := strings.Cut(r.Name, "/")
		if len(out) == 0 || out[len(out)-1].name != name {
			out = append(out, group{name: name})
		}
		out[len(out)-1].rules = append(out[len(out)-1].rules, r)
	}
	return out
}
