package sqlite

import (
	"context"
	"database/sql"
	"strings"
	"testing"
)

// TestQueryPlans checks that every hot statement searches an index: point
// lookups and prefix ranges the key index, count and stats the covering
// index (no row read), cleanup the expiry index,
// history reads and pruning the history table's revision (its rowid), and
// that no ordered read sorts its result. A full scan or a sort would pass
// every other test and be slow on a large table. The statements are the
// texts the store prepares.
func TestQueryPlans(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, Config{})
	const keyIndex = "sqlite_autoindex_kv_1"
	for _, tc := range []struct {
		name, query string
		want        []string
	}{
		{"get", getSQL, []string{keyIndex + " (key=?)", "SEARCH m USING PRIMARY KEY (name=?)"}},
		{"get-many", getManySQL, []string{keyIndex + " (key=?)"}},
		{"list", listSQL(true, true, false), []string{keyIndex + " (key>? AND key<?)"}},
		{"list-from", listSQL(true, false, true), []string{keyIndex + " (key>? AND key<?)"}},
		{"list-all", listSQL(false, false, false), []string{keyIndex + " (key>?)"}},
		{"count", countSQL(true), []string{"USING COVERING INDEX kv_cover (key>? AND key<?)"}},
		{"count-all", countSQL(false), []string{"USING COVERING INDEX kv_cover (key>?)"}},
		{"stats", statsSQL, []string{"SCAN kv USING COVERING INDEX kv_cover"}},
		{"delete-prefix", deletePrefixSQL(true), []string{"kv_cover (key>? AND key<?)"}},
		{"cleanup", cleanupSQL(false), []string{"USING COVERING INDEX kv_expires_at (expires_at>? AND expires_at<?)"}},
		{"history", historySQL, []string{"SEARCH h USING INTEGER PRIMARY KEY (rowid>?)", "SEARCH kv_history USING INTEGER PRIMARY KEY (rowid<?)"}},
		{"prune", pruneSQL, []string{"USING INTEGER PRIMARY KEY (rowid<?)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan := explain(t, ctx, s, tc.query)
			for _, want := range tc.want {
				if !strings.Contains(plan, want) {
					t.Errorf("plan\n%s\nwant it to contain %q", plan, want)
				}
			}
			if strings.Contains(plan, "TEMP B-TREE") {
				t.Errorf("plan\n%s\nsorts its result", plan)
			}
			// See live: a bare :now makes SQLite recompile the statement
			// every millisecond once it has re-prepared it once.
			if strings.Contains(strings.ReplaceAll(tc.query, "+:now", ""), ":now") && tc.name != "cleanup" {
				t.Errorf("%s binds :now where the planner sees it (write +:now):\n%s", tc.name, tc.query)
			}
		})
	}
}

func explain(t *testing.T, ctx context.Context, s *Store, query string) string {
	t.Helper()
	rows, err := s.w.QueryContext(ctx, `EXPLAIN QUERY PLAN `+query,
		sql.Named("key", "k"), sql.Named("keys", `["a"]`), sql.Named("lo", "a"), sql.Named("hi", "b"),
		sql.Named("now", 1), sql.Named("limit", 10), sql.Named("from", 5), sql.Named("upto", 5))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan += detail + "\n"
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return plan
}
