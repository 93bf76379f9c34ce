package postgres_test

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/plugins/postgres"
)

// A refused password is a clear error at once, not after the retries
// meant for a server that is down.
func TestWrongPasswordFailsAtOnce(t *testing.T) {
	u, err := url.Parse(testDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), "not-the-password")
	start := time.Now()
	_, err = postgres.Open(t.Context(), map[string]string{"dsn": u.String(), "connect_timeout_ms": "60000"})
	if !errors.Is(err, kv.ErrPermissionDenied) {
		t.Fatalf("open with a wrong password: %v, want ErrPermissionDenied", err)
	}
	t.Logf("%v after %v", err, time.Since(start))
}

// Unknown settings are refused by name.
func TestUnknownSetting(t *testing.T) {
	if _, err := postgres.ParseSettings(map[string]string{"dns": "x"}); !errors.Is(err, kv.ErrInvalidArgument) {
		t.Fatalf("a misspelt setting: %v, want ErrInvalidArgument", err)
	}
}

// A schema written by a newer plugin is refused, naming both versions,
// and left as it was: an older plugin must not write a newer schema.
func TestNewerSchemaRefused(t *testing.T) {
	ctx := t.Context()
	set := settings(t)
	s, err := postgres.Open(ctx, set)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, kv.PutRequest{Key: "k", Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	conn, err := pgx.Connect(ctx, set["dsn"])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "UPDATE "+set["schema"]+".meta SET schema_version = 99"); err != nil {
		t.Fatal(err)
	}
	_, err = postgres.Open(ctx, set)
	if !errors.Is(err, kv.ErrNotSupported) {
		t.Fatalf("open a schema at version 99: %v, want ErrNotSupported", err)
	}
	for _, m := range []string{"schema version 99", "version 2 ", "upgrade"} {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("error %q does not mention %q", err, m)
		}
	}
	var v int
	if err := conn.QueryRow(ctx, "SELECT schema_version FROM "+set["schema"]+".meta").Scan(&v); err != nil || v != 99 {
		t.Fatalf("schema_version after the refusal = %d (%v), want 99 untouched", v, err)
	}
}

// TestHistoryStep1Migrates opens a database made by a plugin of schema
// version 1 (history a row per change): its keys stay, its history is
// dropped with the compact revision moved to the head, so a watch from
// before the upgrade gets the compacted error and one from after replays
// what the new chunks hold.
func TestHistoryStep1Migrates(t *testing.T) {
	ctx := t.Context()
	set := settings(t)
	conn, err := pgx.Connect(ctx, set["dsn"])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	s := set["schema"]
	for _, q := range []string{
		`CREATE SCHEMA IF NOT EXISTS ` + s,
		`CREATE TABLE ` + s + `.meta (id int PRIMARY KEY CHECK (id = 1), rev bigint NOT NULL, compact bigint NOT NULL, schema_version int NOT NULL)`,
		`INSERT INTO ` + s + `.meta VALUES (1, 3, 0, 1)`,
		// Schema step 1, as a version-1 plugin made it.
		`CREATE TABLE ` + s + `.kv (key text COLLATE "C" NOT NULL, value bytea NOT NULL, version bigint NOT NULL,
			expires_at bigint NOT NULL DEFAULT 0, size bigint GENERATED ALWAYS AS (octet_length(key) + octet_length(value)) STORED,
			CONSTRAINT kv_pkey PRIMARY KEY (key) INCLUDE (expires_at, size))`,
		`CREATE INDEX kv_expiry ON ` + s + `.kv (expires_at) WHERE expires_at > 0`,
		`CREATE TABLE ` + s + `.history (rev bigint PRIMARY KEY, type smallint NOT NULL, key text COLLATE "C" NOT NULL,
			value bytea, version bigint NOT NULL, expires_at bigint NOT NULL)`,
		`INSERT INTO ` + s + `.kv (key, value, version) VALUES ('a', 'A', 1), ('c', 'C', 3)`,
		`INSERT INTO ` + s + `.history VALUES (1, 1, 'a', 'A', 1, 0), (2, 1, 'b', 'B', 2, 0), (3, 1, 'c', 'C', 3, 0)`,
		`DELETE FROM ` + s + `.kv WHERE key = 'b'`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	b, err := postgres.Open(ctx, set)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	st := b.(*postgres.Store)
	if got, err := st.Get(ctx, "c"); err != nil || string(got.Entry.Value) != "C" || got.Entry.Version != 3 || got.Revision != 3 {
		t.Fatalf("get c after migrating: %+v, %v; want C at version 3, revision 3", got, err)
	}
	stats, err := st.Stats(ctx)
	if err != nil || stats.Keys != 2 || stats.OldestRevision != 4 {
		t.Fatalf("stats after migrating: %+v, %v; want 2 keys, oldest revision 4 (history dropped)", stats, err)
	}
	var ce *kv.CompactedError
	w, err := st.Watch(ctx, kv.WatchRequest{StartRevision: 1})
	if err == nil {
		_, err = w.Recv()
		w.Close()
	}
	if !errors.As(err, &ce) || ce.Oldest != 4 {
		t.Fatalf("watch from revision 1 after migrating: %v, want compacted with oldest 4", err)
	}
	if _, err := st.Batch(ctx, []kv.Op{kv.PutOp("d", []byte("D"), 0, kv.Condition{}), kv.DeleteOp("a", kv.Condition{})}); err != nil {
		t.Fatal(err)
	}
	w, err = st.Watch(ctx, kv.WatchRequest{StartRevision: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, want := range []string{"PUT d 4", "DELETE a 5"} {
		ev, err := w.Recv()
		if got := fmt.Sprintf("%v %s %d", ev.Type, ev.Key, ev.Revision); err != nil || got != want {
			t.Fatalf("replayed %q, %v; want %q", got, err, want)
		}
	}
}
