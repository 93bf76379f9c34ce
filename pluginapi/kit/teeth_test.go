package kit_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi/conformance"
	"github.com/kvhost/kvhost/pluginapi/kit"
)

// halfCommitting is an author's store that breaks atomicity: when a
// transaction fails, the writes it made before failing stay committed.
type halfCommitting struct{ *kit.MemStore }

func (s halfCommitting) Update(ctx context.Context, fn func(kit.Tx) error) error {
	var failed error
	if err := s.MemStore.Update(ctx, func(tx kit.Tx) error { failed = fn(tx); return nil }); err != nil {
		return err
	}
	return failed
}

// teethStores are the stores the child process runs the suite on.
var teethStores = map[string]func() kit.Store{
	"memory":          func() kit.Store { return kit.NewMemStore() },
	"half-committing": func() kit.Store { return halfCommitting{kit.NewMemStore()} },
}

// atomicityRules are the rules the child checks: those about writes that
// fail (conformance's own teeth show which a half-applied batch breaks).
var atomicityRules = regexp.MustCompile(`batch|changes-nothing|failed-writes`)

const reportPrefix = "kit-teeth-outcome:"

// The suite catches an author's store that commits half a transaction.
// As conformance's TestSuiteHasTeeth does for its broken backends, the
// suite runs in a child test process, so that its failures are observed
// rather than suffered; the child tells each rule's outcome through
// conformance.WithReport. The sound MemStore runs too, so that a failure
// is the store's and not the harness's.
func TestSuiteCatchesAHalfCommittingStore(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the suite's batch rules in child processes")
	}
	for store, wantFailed := range map[string]bool{"half-committing": true, "memory": false} {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			outcomes, out := runChild(t, store)
			const rule = "core/a-failed-batch-applies-nothing"
			got, ok := outcomes[rule]
			switch {
			case !ok:
				t.Fatalf("the child did not report rule %s\n%s", rule, out)
			case wantFailed && got != conformance.Failed.String():
				t.Errorf("on a store that commits half a transaction, rule %s %s; want it to fail\n%s", rule, got, out)
			case !wantFailed && got != conformance.Passed.String():
				t.Errorf("on the sound MemStore, rule %s %s; want it to pass\n%s", rule, got, out)
			}
			if wantFailed && !strings.Contains(out, "rule broken: ") {
				t.Errorf("the failure does not name the rule broken\n%s", out)
			}
		})
	}
}

// runChild runs TestTeethChild on store and returns each rule's outcome.
func runChild(t *testing.T, store string) (map[string]string, string) {
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run", "^TestTeethChild$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "KVHOST_KIT_TEETH_STORE="+store)
	out, _ := cmd.CombinedOutput() // a failing rule fails the child
	outcomes := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == reportPrefix {
			outcomes[f[1]] = f[2]
		}
	}
	return outcomes, string(out)
}

// TestTeethChild is the child of TestSuiteCatchesAHalfCommittingStore.
func TestTeethChild(t *testing.T) {
	name := os.Getenv("KVHOST_KIT_TEETH_STORE")
	if name == "" {
		t.Skip("runs only as the child process of TestSuiteCatchesAHalfCommittingStore")
	}
	newStore, ok := teethStores[name]
	if !ok {
		t.Fatalf("no store is named %q", name)
	}
	conformance.Run(t, func(t testing.TB) kv.Backend { return newBackend(t, newStore()) },
		conformance.WithFilter(atomicityRules),
		conformance.WithReport(func(r conformance.Rule, o conformance.Outcome) {
			fmt.Printf("%s %s %s\n", reportPrefix, r.Name, o)
		}))
}
