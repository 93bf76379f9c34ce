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
	p, _ := needed(op)
	return p
}

func needed(op sdk.Op) (string, uint8) {
	switch op {
	case sdk.OpGet:
		return PermRead, bitRead
	case sdk.OpPut, sdk.OpIncrement, sdk.OpRefreshTTL:
		return PermWrite, bitWrite
	case sdk.OpDelete, sdk.OpDeletePrefix:
		return PermDelete, bitDelete
	case sdk.OpList, sdk.OpCount:
		return PermList, bitList
	case sdk.OpWatch:
		return PermWatch, bitWatch
	}
	return PermAdmin, bitAdmin
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

// List is a compiled Config. Evaluating it does not allocate unless it
// denies.
type List struct {
	byPrincipal map[string][]*rule
	// few is byPrincipal as a slice when it is small: in a Go policy a
	// short scan is cheaper than hashing.
	few       []principalRules
	anyone    []*rule // "*"
	named     []*rule // "@authenticated"
	anonymous []*rule // "@anonymous"
}

type principalRules struct {
	name  string
	rules []*rule
}

type rule struct {
	tenants  []string
	prefixes []template
	perms    uint8 // bit per permission; admin grants all
}

const (
	bitRead uint8 = 1 << iota
	bitWrite
	bitDelete
	bitList
	bitWatch
	bitAdmin
)

var permBits = map[string]uint8{PermRead: bitRead, PermWrite: bitWrite, PermDelete: bitDelete, PermList: bitList, PermWatch: bitWatch, PermAdmin: bitAdmin}

// template is a prefix, possibly with {principal} and {tenant} in it,
// split into parts so that matching needs no string building.
type template struct {
	parts []part
}

type part struct {
	lit string
	sub int // 0: lit; subPrincipal or subTenant
}

const (
	subPrincipal = 1
	subTenant    = 2
)

func compileTemplate(p string) (template, error) {
	var t template
	for p != "" {
		i := strings.IndexByte(p, '{')
		if i < 0 {
			t.parts = append(t.parts, part{lit: p})
			break
		}
		if i > 0 {
			t.parts = append(t.parts, part{lit: p[:i]})
		}
		switch {
		case strings.HasPrefix(p[i:], "{principal}"):
			t.parts = append(t.parts, part{sub: subPrincipal})
			p = p[i+len("{principal}"):]
		case strings.HasPrefix(p[i:], "{tenant}"):
			t.parts = append(t.parts, part{sub: subTenant})
			p = p[i+len("{tenant}"):]
		default:
			return t, errors.New("only {principal} and {tenant} may be substituted")
		}
	}
	for _, p := range t.parts {
		if strings.Contains(p.lit, "}") {
			return t, errors.New("only {principal} and {tenant} may be substituted")
		}
	}
	return t, nil
}

// covers reports whether key (or a prefix operation's prefix) lies under
// the template, for this caller. A placeholder for an empty principal or
// tenant matches nothing.
func (t *template) covers(key, principal, tenant string) bool {
	for _, p := range t.parts {
		s := p.lit
		switch p.sub {
		case subPrincipal:
			if s = principal; s == "" {
				return false
			}
		case subTenant:
			if s = tenant; s == "" {
				return false
			}
		}
		if !strings.HasPrefix(key, s) {
			return false
		}
		key = key[len(s):]
	}
	return true
}

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
		cr := &rule{tenants: r.Tenants}
		for _, op := range r.Operations {
			if op == "*" {
				op = PermAdmin
			}
			bit, ok := permBits[op]
			if !ok {
				return nil, fmt.Errorf("acl: rule %d: unknown operation %q (want read, write, delete, list, watch, admin or *)", i, op)
			}
			cr.perms |= bit
		}
		for _, p := range r.Prefixes {
			t, err := compileTemplate(p)
			if err != nil {
				return nil, fmt.Errorf("acl: rule %d: prefix %q: %v", i, p, err)
			}
			cr.prefixes = append(cr.prefixes, t)
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
	if len(l.byPrincipal) <= 16 {
		for name, rules := range l.byPrincipal {
			l.few = append(l.few, principalRules{name, rules})
		}
	}
	return l, nil
}

func (l *List) rulesOf(principal string) []*rule {
	if l.few == nil && len(l.byPrincipal) > 0 {
		return l.byPrincipal[principal]
	}
	for i := range l.few {
		if l.few[i].name == principal {
			return l.few[i].rules
		}
	}
	return nil
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
func (l *List) Evaluate(req *sdk.Request) sdk.Decision {
	perm, bit := needed(req.Op)
	if grantsAny(l.anyone, req, bit) {
		return sdk.Allow()
	}
	if req.Principal == "" {
		if grantsAny(l.anonymous, req, bit) {
			return sdk.Allow()
		}
	} else if grantsAny(l.named, req, bit) || grantsAny(l.rulesOf(req.Principal), req, bit) {
		return sdk.Allow()
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

func grantsAny(rules []*rule, req *sdk.Request, bit uint8) bool {
	for _, r := range rules {
		if r.grants(req, bit) {
			return true
		}
	}
	return false
}

// grants: for a prefix operation the whole range must be covered: listing
// "app/" is not allowed by a grant on "app/users/".
func (r *rule) grants(req *sdk.Request, bit uint8) bool {
	if r.perms&(bit|bitAdmin) == 0 {
		return false
	}
	if len(r.tenants) > 0 && !slices.Contains(r.tenants, req.Tenant) {
		return false
	}
	for i := range r.prefixes {
		if r.prefixes[i].covers(req.Key, req.Principal, req.Tenant) {
			return true
		}
	}
	return false
}
