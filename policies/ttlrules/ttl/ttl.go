// Package ttl is the logic of the ttlrules policy: per-prefix default,
// minimum and maximum TTLs, and prefixes whose keys must expire.
package ttl

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/kvhost/kvhost/policies/internal/config"
	"github.com/kvhost/kvhost/policies/sdk"
)

// Rule governs the keys under one prefix. The longest matching prefix
// wins; the empty prefix is a catch-all.
type Rule struct {
	Prefix string `json:"prefix"`
	// Default replaces a missing TTL on put.
	Default config.Duration `json:"default"`
	Min     config.Duration `json:"min"`
	// Max is the longest TTL allowed; with it no key may live forever.
	Max config.Duration `json:"max"`
	// Required: every key must expire (a put without TTL and without a
	// Default, or a refresh_ttl removing the expiry, is denied).
	Required bool `json:"required"`
	// Clamp rewrites a TTL outside [Min, Max] to the nearest bound
	// instead of denying.
	Clamp bool `json:"clamp"`
	// AllowIncrement lets increment, which cannot set a TTL, create keys
	// under a prefix that requires expiry.
	AllowIncrement bool `json:"allow_increment"`
}

// Config is the policy's configuration.
type Config struct {
	Rules []Rule `json:"rules"`
}

// Rules applies a Config.
type Rules struct {
	rules []Rule // longest prefix first
}

// New validates cfg.
func New(cfg Config) (*Rules, error) {
	seen := map[string]bool{}
	for i, r := range cfg.Rules {
		if seen[r.Prefix] {
			return nil, fmt.Errorf("ttlrules: rule %d: prefix %q appears twice", i, r.Prefix)
		}
		seen[r.Prefix] = true
		def, lo, hi := time.Duration(r.Default), time.Duration(r.Min), time.Duration(r.Max)
		if hi > 0 && lo > hi {
			return nil, fmt.Errorf("ttlrules: rule %q: min %v is above max %v", r.Prefix, lo, hi)
		}
		if def > 0 && (def < lo || (hi > 0 && def > hi)) {
			return nil, fmt.Errorf("ttlrules: rule %q: default %v is outside [min %v, max %v]", r.Prefix, def, lo, hi)
		}
		for _, d := range []time.Duration{def, lo, hi} {
			if d > 0 && d < time.Millisecond {
				return nil, fmt.Errorf("ttlrules: rule %q: TTLs are whole milliseconds, %v is too small", r.Prefix, d)
			}
		}
		if def == 0 && lo == 0 && hi == 0 && !r.Required {
			return nil, fmt.Errorf("ttlrules: rule %q says nothing: set default, min, max or required", r.Prefix)
		}
	}
	rules := append([]Rule(nil), cfg.Rules...)
	sort.SliceStable(rules, func(i, j int) bool { return len(rules[i].Prefix) > len(rules[j].Prefix) })
	return &Rules{rules: rules}, nil
}

// Parse decodes a JSON configuration.
func Parse(data []byte) (*Rules, error) {
	var cfg Config
	if err := config.Decode(data, &cfg); err != nil {
		return nil, fmt.Errorf("ttlrules: %w", err)
	}
	if len(cfg.Rules) == 0 {
		return nil, errors.New("ttlrules: no rules configured")
	}
	return New(cfg)
}

func (r *Rules) match(key string) *Rule {
	for i := range r.rules {
		if strings.HasPrefix(key, r.rules[i].Prefix) {
			return &r.rules[i]
		}
	}
	return nil
}

// Evaluate decides one request. Only put, refresh_ttl and increment are
// governed; everything else is allowed.
func (r *Rules) Evaluate(req *sdk.Request) sdk.Decision {
	if req.Op != sdk.OpPut && req.Op != sdk.OpRefreshTTL && req.Op != sdk.OpIncrement {
		return sdk.Allow()
	}
	rule := r.match(req.Key)
	if rule == nil {
		return sdk.Allow()
	}
	def, lo, hi := time.Duration(rule.Default), time.Duration(rule.Min), time.Duration(rule.Max)
	mustExpire := rule.Required || hi > 0
	if req.Op == sdk.OpIncrement {
		if mustExpire && !rule.AllowIncrement {
			return sdk.Denyf("keys under %q must expire and increment cannot set a TTL; use put with a TTL", rule.Prefix).WithCode("ttl_required")
		}
		return sdk.Allow()
	}
	ttl, rewritten := req.TTL, false
	if ttl == 0 && req.Op == sdk.OpPut && def > 0 {
		ttl, rewritten = def, true
	}
	if ttl == 0 {
		if !mustExpire {
			return sdk.Allow()
		}
		if rule.Clamp && hi > 0 {
			return sdk.AllowWithTTL(hi)
		}
		if hi > 0 {
			return sdk.Denyf("keys under %q must expire within %v; set a TTL", rule.Prefix, hi).WithCode("ttl_required")
		}
		return sdk.Denyf("keys under %q must expire; set a TTL", rule.Prefix).WithCode("ttl_required")
	}
	if lo > 0 && ttl < lo {
		if !rule.Clamp {
			return sdk.Denyf("TTL %v is below the minimum %v for keys under %q", ttl, lo, rule.Prefix).WithCode("ttl_too_short")
		}
		ttl, rewritten = lo, true
	}
	if hi > 0 && ttl > hi {
		if !rule.Clamp {
			return sdk.Denyf("TTL %v is above the maximum %v for keys under %q", ttl, hi, rule.Prefix).WithCode("ttl_too_long")
		}
		ttl, rewritten = hi, true
	}
	if rewritten {
		return sdk.AllowWithTTL(ttl)
	}
	return sdk.Allow()
}
