package policy_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/kvhost/kvhost/host/policy"
	"github.com/kvhost/kvhost/policies/policytest"
)

// exampleSpecs reads testdata/chain.yaml as the host would, with the
// modules built from source.
func exampleSpecs(tb testing.TB) []policy.Spec {
	tb.Helper()
	raw, err := os.ReadFile("testdata/chain.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	var cfg struct {
		Policies []policy.SpecConfig `yaml:"policies"`
	}
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		tb.Fatal(err)
	}
	var specs []policy.Spec
	for _, sc := range cfg.Policies {
		s, err := sc.Spec("")
		if err != nil {
			tb.Fatal(err)
		}
		s.Path = built(tb, "policies/"+strings.TrimSuffix(filepath.Base(s.Path), ".wasm"))
		s.PoolSize = 2
		specs = append(specs, s)
	}
	return specs
}

func TestExamplePoliciesThroughTheEngine(t *testing.T) {
	e := newEngine(t, nil)
	mustLoad(t, e, exampleSpecs(t)...)
	if got := strings.Join(e.Policies(), ","); got != "keyvalidation,ttlrules,acl" {
		t.Fatalf("chain %s", got)
	}
	cases, err := os.ReadFile("testdata/chain_cases.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := policy.RunCases(context.Background(), e, cases)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	rep.Write(&out)
	if rep.Failed > 0 || rep.Passed != 14 {
		t.Fatalf("cases:\n%s", out.String())
	}
	if !strings.HasSuffix(out.String(), "14 passed, 0 failed\n") {
		t.Fatalf("report:\n%s", out.String())
	}
}

// Each policy alone, configured without recompiling: the same module
// allows or denies as its configuration says.
func TestExamplePoliciesFollowTheirConfiguration(t *testing.T) {
	for _, tc := range []struct {
		policy, config string
		req            policy.Request
		allow          bool
	}{
		{"keyvalidation", `{"max_key_length": 4}`, policy.Request{Op: policy.OpGet, Key: "abcde"}, false},
		{"keyvalidation", `{"max_key_length": 8}`, policy.Request{Op: policy.OpGet, Key: "abcde"}, true},
		{"ttlrules", `{"rules": [{"prefix": "n:", "max": "60s"}]}`, policy.Request{Op: policy.OpPut, Key: "n:1", TTL: 120e9}, false},
		{"ttlrules", `{"rules": [{"prefix": "n:", "max": "5m"}]}`, policy.Request{Op: policy.OpPut, Key: "n:1", TTL: 120e9}, true},
		{"acl", `{"rules": [{"principals": ["a"], "prefixes": ["x/"], "operations": ["read"]}]}`, policy.Request{Op: policy.OpGet, Key: "x/1", Principal: "a"}, true},
		{"acl", `{"rules": [{"principals": ["a"], "prefixes": ["y/"], "operations": ["read"]}]}`, policy.Request{Op: policy.OpGet, Key: "x/1", Principal: "a"}, false},
	} {
		e := newEngine(t, nil)
		mustLoad(t, e, policy.Spec{Name: tc.policy, Path: built(t, "policies/"+tc.policy), Config: []byte(tc.config), PoolSize: 1, Timeout: generousTimeout})
		d, err := eval(t, e, tc.req)
		if d.Allow != tc.allow {
			t.Errorf("%s with %s: %s, want allow=%v", tc.policy, tc.config, describe(d, err), tc.allow)
		}
	}
}

func TestExamplePoliciesRefuseBadConfiguration(t *testing.T) {
	e := newEngine(t, nil)
	for _, name := range policytest.Examples {
		err := e.Load(context.Background(), []policy.Spec{{Name: name, Path: built(t, "policies/"+name), Config: []byte(`{"no_such_setting": 1}`), PoolSize: 1}})
		if err == nil || !strings.Contains(err.Error(), "no_such_setting") {
			t.Errorf("%s: err = %v, want the unknown field named", name, err)
		}
	}
}
