package host_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/kvhost/kvhost/host"
	"github.com/kvhost/kvhost/kv"
)

// The rule ValidateTenant states, as the regular expression it was once
// checked with.
var tenantRule = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

func TestValidateTenant(t *testing.T) {
	for _, tenant := range []string{
		"acme", "a", "A.b_c-9", strings.Repeat("x", 64), // valid
		"", strings.Repeat("x", 65), "a/b", "a b", "ünï", "a\x00", "t/", "a:b", "a\n", // not
	} {
		err := host.ValidateTenant(tenant)
		if want := tenantRule.MatchString(tenant); (err == nil) != want {
			t.Errorf("ValidateTenant(%q) = %v, want valid %v", tenant, err, want)
		}
		if err != nil && !errors.Is(err, kv.ErrInvalidArgument) {
			t.Errorf("ValidateTenant(%q) = %v, not ErrInvalidArgument", tenant, err)
		}
	}
}

func FuzzValidateTenant(f *testing.F) {
	f.Add("acme")
	f.Add("a/b")
	f.Fuzz(func(t *testing.T, tenant string) {
		if got, want := host.ValidateTenant(tenant) == nil, tenantRule.MatchString(tenant); got != want {
			t.Fatalf("ValidateTenant(%q) valid %v, the rule says %v", tenant, got, want)
		}
	})
}
