package policy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// A cases file holds table-driven tests of a policy chain, for
// `kvhost policy test`:
//
//	defaults:                 # optional, merged into every request
//	  principal: alice
//	  now: 2026-01-01T00:00:00Z
//	cases:
//	  - name: sessions get a default TTL
//	    request: {op: put, key: "session:1"}
//	    expect: {allow: true, ttl: 1h}
//	  - name: long sessions are refused
//	    request: {op: put, key: "session:1", ttl: 48h}
//	    expect: {allow: false, policy: ttlrules, code: ttl_too_long, reason_contains: "24h"}
//
// Request fields: op (get, put, delete, list, count, delete_prefix,
// increment, refresh_ttl, watch, stats, admin), key, value, value_len,
// ttl, principal, tenant, now, in_batch. Expect fields: allow (required),
// policy, code, reason, reason_contains, ttl (the TTL to apply after
// rewrites), failure (true when a policy must fail rather than decide).

// CaseRequest is the YAML form of a Request; nil fields take the
// defaults.
type CaseRequest struct {
	Op        *string        `yaml:"op"`
	Key       *string        `yaml:"key"`
	Value     *string        `yaml:"value"`
	ValueLen  *int           `yaml:"value_len"`
	TTL       *time.Duration `yaml:"ttl"`
	Principal *string        `yaml:"principal"`
	Tenant    *string        `yaml:"tenant"`
	Now       *time.Time     `yaml:"now"`
	InBatch   *bool          `yaml:"in_batch"`
}

// Expectation is what a case expects; nil fields are not checked.
type Expectation struct {
	Allow          *bool          `yaml:"allow"`
	Policy         *string        `yaml:"policy"`
	Code           *string        `yaml:"code"`
	Reason         *string        `yaml:"reason"`
	ReasonContains *string        `yaml:"reason_contains"`
	TTL            *time.Duration `yaml:"ttl"`
	Failure        bool           `yaml:"failure"`
}

// Case is one test case.
type Case struct {
	Name    string      `yaml:"name"`
	Request CaseRequest `yaml:"request"`
	Expect  Expectation `yaml:"expect"`
}

// CaseFile is a parsed cases file.
type CaseFile struct {
	Defaults CaseRequest `yaml:"defaults"`
	Cases    []Case      `yaml:"cases"`
}

// ParseCases parses a cases file, checking every case is runnable.
func ParseCases(data []byte) (*CaseFile, error) {
	var f CaseFile
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("policy: cases: %w", err)
	}
	if len(f.Cases) == 0 {
		return nil, errors.New("policy: cases: no cases")
	}
	for i, c := range f.Cases {
		if c.Name == "" {
			f.Cases[i].Name = fmt.Sprintf("case %d", i+1)
		}
		if _, err := f.Request(c); err != nil {
			return nil, fmt.Errorf("policy: cases: %s: %w", f.Cases[i].Name, err)
		}
		if c.Expect.Allow == nil && !c.Expect.Failure {
			return nil, fmt.Errorf("policy: cases: %s: expect.allow is required", f.Cases[i].Name)
		}
	}
	return &f, nil
}

// Request builds a case's request, applying the defaults.
func (f *CaseFile) Request(c Case) (Request, error) {
	pick := func(v, d *string) string {
		if v != nil {
			return *v
		}
		if d != nil {
			return *d
		}
		return ""
	}
	d, r := f.Defaults, c.Request
	opName := pick(r.Op, d.Op)
	if opName == "" {
		return Request{}, errors.New("request.op is required")
	}
	op, err := ParseOp(opName)
	if err != nil {
		return Request{}, err
	}
	req := Request{Op: op, Key: pick(r.Key, d.Key), Principal: pick(r.Principal, d.Principal), Tenant: pick(r.Tenant, d.Tenant)}
	if v := firstOf(r.Value, d.Value); v != nil {
		req.Value = []byte(*v)
	}
	if v := firstOf(r.ValueLen, d.ValueLen); v != nil {
		req.ValueLen = *v
	}
	if v := firstOf(r.TTL, d.TTL); v != nil {
		req.TTL = *v
	}
	if v := firstOf(r.Now, d.Now); v != nil {
		req.Now = *v
	}
	if v := firstOf(r.InBatch, d.InBatch); v != nil {
		req.InBatch = *v
	}
	return req, nil
}

func firstOf[T any](a, b *T) *T {
	if a != nil {
		return a
	}
	return b
}

// CaseResult is the outcome of one case.
type CaseResult struct {
	Name     string
	Passed   bool
	Decision Decision
	Err      error
	// Problems says what differed from the expectation.
	Problems []string
}

// CaseReport is the outcome of a cases file.
type CaseReport struct {
	Results        []CaseResult
	Passed, Failed int
}

// RunCases runs every case of a cases file through the engine's chain,
// exactly as the host would evaluate the requests. It returns an error
// only for a malformed file; failing cases are in the report.
//
// The `kvhost policy test POLICY.wasm --config CFG CASES.yaml` command
// loads one Spec{Path: POLICY.wasm, Config: ConfigJSON(CFG)} into an
// engine, calls RunCases, writes the report and exits non-zero when
// Failed > 0.
func RunCases(ctx context.Context, e *Engine, cases []byte) (*CaseReport, error) {
	f, err := ParseCases(cases)
	if err != nil {
		return nil, err
	}
	rep := &CaseReport{}
	for _, c := range f.Cases {
		req, _ := f.Request(c)
		d, err := e.Evaluate(ctx, req)
		res := CaseResult{Name: c.Name, Decision: d, Err: err, Problems: checkCase(c.Expect, d, err)}
		res.Passed = len(res.Problems) == 0
		if res.Passed {
			rep.Passed++
		} else {
			rep.Failed++
		}
		rep.Results = append(rep.Results, res)
	}
	return rep, nil
}

func checkCase(x Expectation, d Decision, err error) []string {
	var p []string
	var fe *FailureError
	failed := errors.As(err, &fe)
	if err != nil && !failed && !errors.Is(err, ErrDenied) {
		return []string{fmt.Sprintf("evaluation error: %v", err)}
	}
	if x.Failure != failed {
		if failed {
			p = append(p, fmt.Sprintf("a policy failed: %v", err))
		} else {
			p = append(p, "expected a policy failure")
		}
	}
	if x.Allow != nil && *x.Allow != d.Allow {
		if d.Allow {
			p = append(p, "allowed, expected a denial")
		} else {
			p = append(p, fmt.Sprintf("denied by %q (%s), expected allow", d.Policy, d.Reason))
		}
	}
	if x.Policy != nil && *x.Policy != d.Policy {
		p = append(p, fmt.Sprintf("policy %q, expected %q", d.Policy, *x.Policy))
	}
	if x.Code != nil && *x.Code != d.Code {
		p = append(p, fmt.Sprintf("code %q, expected %q", d.Code, *x.Code))
	}
	if x.Reason != nil && *x.Reason != d.Reason {
		p = append(p, fmt.Sprintf("reason %q, expected %q", d.Reason, *x.Reason))
	}
	if x.ReasonContains != nil && !strings.Contains(d.Reason, *x.ReasonContains) {
		p = append(p, fmt.Sprintf("reason %q does not contain %q", d.Reason, *x.ReasonContains))
	}
	if x.TTL != nil && *x.TTL != d.TTL {
		p = append(p, fmt.Sprintf("ttl %v, expected %v", d.TTL, *x.TTL))
	}
	return p
}

// Write prints one line per case and a closing "N passed, N failed".
func (r *CaseReport) Write(w io.Writer) error {
	for _, c := range r.Results {
		var err error
		if c.Passed {
			_, err = fmt.Fprintf(w, "ok   %s\n", c.Name)
		} else {
			_, err = fmt.Fprintf(w, "FAIL %s: %s\n", c.Name, strings.Join(c.Problems, "; "))
		}
		if err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(w, "%d passed, %d failed\n", r.Passed, r.Failed)
	return err
}
