package postgres_test

import (
	"errors"
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
	for _, m := range []string{"schema version 99", "version 1 ", "upgrade"} {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("error %q does not mention %q", err, m)
		}
	}
	var v int
	if err := conn.QueryRow(ctx, "SELECT schema_version FROM "+set["schema"]+".meta").Scan(&v); err != nil || v != 99 {
		t.Fatalf("schema_version after the refusal = %d (%v), want 99 untouched", v, err)
	}
}
