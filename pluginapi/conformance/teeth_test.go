package conformance_test

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi/conformance"
)

// teethRetention is the history the broken backends keep: small, so that
// the suite forces compaction quickly.
const teethRetention = 300

func allTeeth() []tooth {
	return slices.Concat(passing, coreTeeth, ttlTeeth, watchTeeth, historyTeeth)
}

// The suite must have teeth: each deliberately broken backend fails
// exactly the subtests of the rules it breaks, and the unbroken ones pass.
// Each runs in a child test process so that its failures are observed,
// not suffered.
func TestSuiteHasTeeth(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole suite once per broken backend")
	}
	for _, tc := range allTeeth() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run", "^TestBrokenBackend$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), "KVHOST_BROKEN="+tc.name)
			out, err := cmd.CombinedOutput()
			failed := failedRules(string(out))
			if tc.fails == nil && err != nil && len(failed) == 0 {
				t.Fatalf("the child test process failed outside any rule: %v\n%s", err, out)
			}
			want := slices.Sorted(slices.Values(tc.fails))
			if !slices.Equal(failed, want) {
				t.Errorf("the backend that %s failed the rules\n\t%s\nwant exactly\n\t%s\n%s",
					tc.name, strings.Join(failed, "\n\t"), strings.Join(want, "\n\t"), out)
			}
			if len(want) > 0 && !strings.Contains(string(out), "rule broken: ") {
				t.Errorf("the failures of the backend that %s do not name the rule broken\n%s", tc.name, out)
			}
		})
	}
}

var failLine = regexp.MustCompile(`--- FAIL: TestBrokenBackend/(\S+) \(`)

// failedRules returns the rules whose subtests failed in a child's output.
func failedRules(out string) []string {
	rules := map[string]bool{}
	for _, r := range conformance.Rules() {
		rules[r.Name] = true
	}
	var failed []string
	for _, m := range failLine.FindAllStringSubmatch(out, -1) {
		if rules[m[1]] {
			failed = append(failed, m[1])
		}
	}
	slices.Sort(failed)
	return slices.Compact(failed)
}

// Every rule must have a broken backend that fails it: a rule without one
// is a rule nobody has seen the suite catch.
func TestEveryRuleHasTeeth(t *testing.T) {
	caught := map[string]bool{}
	names := map[string]bool{}
	for _, tc := range allTeeth() {
		if names[tc.name] {
			t.Errorf("two teeth are named %q", tc.name)
		}
		names[tc.name] = true
		for _, r := range tc.fails {
			caught[r] = true
		}
	}
	rules := map[string]bool{}
	for _, r := range conformance.Rules() {
		rules[r.Name] = true
		if !caught[r.Name] {
			t.Errorf("no broken backend fails rule %s", r.Name)
		}
		if r.Says == "" {
			t.Errorf("rule %s does not say what it checks", r.Name)
		}
	}
	for r := range caught {
		if !rules[r] {
			t.Errorf("a tooth expects to fail %q, which is not a rule of the suite", r)
		}
	}
}

// TestBrokenBackend is the child of TestSuiteHasTeeth.
func TestBrokenBackend(t *testing.T) {
	name := os.Getenv("KVHOST_BROKEN")
	if name == "" {
		t.Skip("runs only as the child process of TestSuiteHasTeeth")
	}
	i := slices.IndexFunc(allTeeth(), func(tc tooth) bool { return tc.name == name })
	if i < 0 {
		t.Fatalf("no broken backend is named %q", name)
	}
	apply := allTeeth()[i].apply
	conformance.Run(t, func(testing.TB) kv.Backend { return newBroken(teethRetention, apply) },
		conformance.WithRetention(teethRetention))
}
