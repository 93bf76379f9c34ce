package postgres_test

import (
	"errors"
	"net/url"
	"testing"
	"time"

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
