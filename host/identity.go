package host

import (
	"context"
	"fmt"
	"regexp"

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

var tenantRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// ValidateTenant checks a tenant name: 1 to 64 letters, digits, '.', '_'
// or '-'. The restriction is what keeps the key encoding injective.
func ValidateTenant(tenant string) error {
	if !tenantRE.MatchString(tenant) {
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
