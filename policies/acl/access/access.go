// Package access is the logic of the acl policy: which principals may do
// which operations under which prefixes.
package access

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/kvhost/kvhost/policies/internal/config"
	"github.com/kvhost/kvhost/policies/sdk"
)

// Permissions. Each operation needs one of them; admin grants all.
const (
	PermRead   = "read"   // get
	PermWrite  = "write"  // put, increment, refresh_ttl
	PermDelete = "delete" // delete, delete_prefix
	PermList   = "list"   // list, count
	PermWatch  = "watch"  // watch
	PermAdmin  = "admin"  // stats, admin, and everything else
)

// Needed returns the permission an operation needs.
func Needed(op sdk.Op) string {
	switch op {
	case sdk.OpGet:
		return PermRead
	case sdk.OpPut, sdk.OpIncrement, sdk.OpRefreshTTL:
		return PermWrite
	case sdk.OpDelete, sdk.OpDeletePrefix:
		return PermDelete
	case sdk.OpList, sdk.OpCount:
		return PermList
	case sdk.OpWatch:
		return PermWatch
	}
	return PermAdmin
}

// Rule grants operations under prefixes to principals.
type Rule struct {
	// Principals: names, "*" for everyone including anonymous callers,
	// "@authenticated" for any named principal, "@anonymous" for callers
	// without one.
	Principals []string `json:"principals"`
	// Tenants restricts the rule to these tenants when not empty.
	Tenants []string `json:"tenants"`
	// Prefixes the rule covers; "" covers everything. "{principal}" and
	// "{tenant}" are replaced by the caller's.
	Prefixes []string `json:"prefixes"`
	// Operations: read, write, delete, list, watch, admin, or "*".
	Operations []string `json:"operations"`
}

// Config is the policy's configuration. Access is denied unless a rule
// grants it.
type Config struct {
	Rules []Rule `json:"rules"`
}

// List is a compiled Config.
type List struct {
	byPrincipal map[string][]*rule
	anyone      []*rule // "*"
	named       []*rule // "@authenticated"
	anonymous   []*rule // "@anonymous"
}

type rule struct {
	tenants  []string
	prefixes []string
	perms    map[string]bool
}

var validPerms = map[string]bool{PermRead: true, PermWrite: true, PermDelete: true, PermList: true, PermWatch: true, PermAdmin: true}

// New compiles cfg.
func New(cfg Config) (*List, error) {
	l := &List{byPrincipal: map[string][]*rule{}}
	for i, r := range cfg.Rules {
		if len(r.Principals) == 0 {
			return nil, fmt.Errorf("acl: rule %d: no principals", i)
		}
		if len(r.Prefixes) == 0 {
			return nil, fmt.Errorf("acl: rule %d: no prefixes (use \"\" for all keys)", i)
		}
		if len(r.Operations) == 0 {
			return nil, fmt.Errorf("acl: rule %d: no operations", i)
		}
		cr := &rule{tenants: r.Tenants, prefixes: r.Prefixes, perms: map[string]bool{}}
		for _, op := range r.Operations {
			switch {
			case op == "*":
				cr.perms[PermAdmin] = true
			case validPerms[op]:
				cr.perms[op] = true
			default:
				return nil, fmt.Errorf("acl: rule %d: unknown operation %q (want read, write, delete, list, watch, admin or *)", i, op)
			}
		}
		for _, p := range r.Prefixes {
			rest := strings.NewReplacer("{principal}", "", "{tenant}", "").Replace(p)
			if strings.ContainsAny(rest, "{}") {
				return nil, fmt.Errorf("acl: rule %d: prefix %q: only {principal} and {tenant} may be substituted", i, p)
			}
		}
		for _, p := range r.Principals {
			switch p {
			case "*":
				l.anyone = append(l.anyone, cr)
			case "@authenticated":
				l.named = append(l.named, cr)
			case "@anonymous":
				l.anonymous = append(l.anonymous, cr)
			case "":
				return nil, fmt.Errorf("acl: rule %d: empty principal (use @anonymous)", i)
			default:
				l.byPrincipal[p] = append(l.byPrincipal[p], cr)
			}
		}
	}
	return l, nil
}

// Parse decodes a JSON configuration.
func Parse(data []byte) (*List, error) {
	var cfg Config
	if err := config.Decode(data, &cfg); err != nil {
		return nil, fmt.Errorf("acl: %w", err)
	}
	if len(cfg.Rules) == 0 {
		return nil, errors.New("acl: no rules configured: every operation would be denied")
	}
	return New(cfg)
}

// Evaluate decides one request.
func (l *List) Evaluate(req sdk.Request) sdk.Decision {
	perm := Needed(req.Op)
	groups := [][]*rule{l.anyone}
	if req.Principal == "" {
		groups = append(groups, l.anonymous)
	} else {
		groups = append(groups, l.named, l.byPrincipal[req.Principal])
	}
	for _, g := range groups {
		for _, r := range g {
			if r.grants(req, perm) {
				return sdk.Allow()
			}
		}
	}
	who := fmt.Sprintf("principal %q", req.Principal)
	if req.Principal == "" {
		who = "an anonymous caller"
	}
	switch {
	case perm == PermAdmin:
		return sdk.Denyf("%s may not %s", who, req.Op).WithCode("forbidden")
	case req.Op.IsPrefixOp():
		return sdk.Denyf("%s may not %s prefix %q (needs %s)", who, req.Op, req.Key, perm).WithCode("forbidden")
	}
	return sdk.Denyf("%s may not %s key %q (needs %s)", who, req.Op, req.Key, perm).WithCode("forbidden")
}

func (r *rule) grants(req sdk.Request, perm string) bool {
	if !r.perms[perm] && !r.perms[PermAdmin] {
		return false
	}
	if len(r.tenants) > 0 && !slices.Contains(r.tenants, req.Tenant) {
		return false
	}
	for _, p := range r.prefixes {
		if strings.Contains(p, "{") {
			if (strings.Contains(p, "{principal}") && req.Principal == "") || (strings.Contains(p, "{tenant}") && req.Tenant == "") {
				continue
			}
			p = strings.NewReplacer("{principal}", req.Principal, "{tenant}", req.Tenant).Replace(p)
		}
		// For a prefix operation the whole range must be covered: listing
		// "app/" is not allowed by a grant on "app/users/".
		if strings.HasPrefix(req.Key, p) {
			return true
		}
	}
	return false
}
