package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// dsnEnv names the environment variable that points the tests at a
// PostgreSQL server (scripts/services.sh sets it).
const dsnEnv = "KVHOST_TEST_POSTGRES_DSN"

// testDSN returns the test server's DSN. Outside CI a missing server
// skips the test, loudly; under CI=true it fails it.
func testDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(dsnEnv)
	if dsn == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set and CI=true: PostgreSQL tests cannot be skipped in CI (run scripts/services.sh)", dsnEnv)
		}
		t.Skipf("SKIPPING PostgreSQL TEST: %s is not set; run `eval \"$(scripts/services.sh)\"` to start a server", dsnEnv)
	}
	return dsn
}

// retention is a history small enough for the suite's compaction rule to
// go past it quickly.
const retention = 200

// newSchema returns a fresh schema name, dropped when the test ends.
func newSchema(t testing.TB, dsn string) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "t_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Logf("drop schema %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+name+" CASCADE"); err != nil {
			t.Logf("drop schema %s: %v", name, err)
		}
	})
	return name
}

// settings gives every backend a schema of its own in the test database.
func settings(t testing.TB) map[string]string {
	dsn := testDSN(t)
	return map[string]string{"dsn": dsn, "schema": newSchema(t, dsn), "history": strconv.Itoa(retention), "pool_size": "3"}
}
