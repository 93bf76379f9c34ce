package host

import (
	"context"
	"fmt"

	"github.com/kvhost/kvhost/kv"
)

// Identity is who a call acts for. Admin principals see the whole
// backend's figures in Stats; everyone else sees only their tenant's.
type Identity struct {
	// Principal is the caller's name, "" for an anonymous caller (a
	// token always names one), which is what policies see
	// (policies/ABI.md: an empty principal is anonymous).
	Principal string
	Tenant    string
	Admin     bool
}

type identityKey struct{}

// WithIdentity returns a context whose calls act for id.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// IdentityFrom returns the identity set by WithIdentity, if any.
func IdentityFrom(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}

// DefaultTenant is the tenant of calls that name none.
const DefaultTenant = "default"

// ValidateTenant checks a tenant name: 1 to 64 letters, digits, '.', '_'
// or '-'. The restriction is what keeps the key encoding injective. It
// runs on every call, so it is a loop rather than a regular expression
// (the regexp was 3% of the API server's CPU on a cached get).
func ValidateTenant(tenant string) error {
	ok := len(tenant) >= 1 && len(tenant) <= 64
	for i := 0; ok && i < len(tenant); i++ {
		c := tenant[i]
		ok = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
	}
	if !ok {
		return fmt.Errorf("%w: tenant %q must be 1 to 64 of A-Z a-z 0-9 . _ -", kv.ErrInvalidArgument, tenant)
	}
	return nil
}

// tenantPrefix is the backend-key prefix of every key of a tenant.
func tenantPrefix(tenant string) string { return "t/" + tenant + "/" }

// maxTenantPrefix is the longest tenantPrefix: it bounds the host's key limit.
const maxTenantPrefix = len("t/") + 64 + len("/")

// identities resolves the identity a call acts for: the context's, or the
// configured default.
type identities struct{ def Identity }

func (ids identities) of(ctx context.Context) (Identity, error) {
	id, ok := IdentityFrom(ctx)
	if !ok {
		return ids.def, nil
	}
	if err := ValidateTenant(id.Tenant); err != nil {
		return id, err
	}
	return id, nil
}
