package sqlite

import (
	"context"
	"database/sql"
	"strings"
	"testing"
)

// TestQueryPlans checks that every hot statement searches an index: point
// lookups and prefix ranges the key index, cleanup the expiry index. A
// full scan would pass every other test and be slow on a large table.
func TestQueryPlans(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, Config{})
	for _, tc := range []struct{ name, query, want string }{
		{"get", getSQL, "USING INDEX sqlite_autoindex_kv_1 (key=?)"},
		{"get-many", `SELECT key, value, version, expires_at FROM kv WHERE key IN (SELECT value FROM json_each(:keys)) AND ` + live, "USING INDEX sqlite_autoindex_kv_1 (key=?)"},
		{"list", `SELECT key, value, version, expires_at FROM kv WHERE key > :lo AND key < :hi AND ` + live + ` ORDER BY key LIMIT :limit`, "USING INDEX sqlite_autoindex_kv_1 (key>? AND key<?)"},
		{"list-all", `SELECT key, value, version, expires_at FROM kv WHERE key >= :lo AND ` + live + ` ORDER BY key LIMIT :limit`, "USING INDEX sqlite_autoindex_kv_1 (key>?)"},
		{"delete-prefix", `DELETE FROM kv WHERE key >= :lo AND key < :hi AND ` + live, "USING INDEX sqlite_autoindex_kv_1 (key>? AND key<?)"},
		{"cleanup", cleanupSQL, "USING COVERING INDEX kv_expires_at (expires_at>? AND expires_at<?)"},
	} {
		rows, err := s.w.QueryContext(ctx, `EXPLAIN QUERY PLAN `+tc.query,
			sql.Named("key", "k"), sql.Named("keys", `["a"]`), sql.Named("lo", "a"), sql.Named("hi", "b"),
			sql.Named("now", 1), sql.Named("limit", 10))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var plan string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan += detail + "\n"
		}
		rows.Close()
		if !strings.Contains(plan, tc.want) {
			t.Errorf("%s: plan\n%s\nwant it to contain %q", tc.name, plan, tc.want)
		}
	}
}
