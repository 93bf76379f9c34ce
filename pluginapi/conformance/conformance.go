package conformance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi"
)

// NewBackend returns a backend for one subtest. Without WithNamespace it
// must be a fresh, empty store of its own; with it, it may be a handle to
// a store shared with the other subtests (the suite closes each handle).
type NewBackend func(t testing.TB) kv.Backend

// Rule is one rule of the contract, checked by the subtest of the same
// name ("group/rule-in-words").
type Rule struct {
	Name string
	// Says is the rule in the contract's words; every failure message of
	// the rule's subtest ends with it.
	Says string
}

// Rules lists every rule the suite checks, in the order it runs them.
func Rules() []Rule {
	out := make([]Rule, len(rules))
	for i, r := range rules {
		out[i] = r.Rule
	}
	return out
}

// Outcome is how one rule's subtest ended.
type Outcome int

const (
	Passed Outcome = iota
	Failed
	// Skipped: the backend does not claim what the rule needs, it claims
	// what a refusal rule checks is refused, or an option the rule needs
	// is missing (WithRetention).
	Skipped
)

func (o Outcome) String() string {
	return [...]string{"passed", "failed", "skipped"}[o]
}

// Option configures a run of the suite.
type Option func(*config)

type config struct {
	namespace string
	shared    bool
	retention int
	filter    *regexp.Regexp
	report    func(Rule, Outcome)
}

// WithNamespace puts every key the suite writes under ns, and lets
// NewBackend return handles to one shared store (a database server that
// the subtests share). Each subtest then writes under a prefix of its own
// below ns, deletes that prefix when it ends, and never counts or deletes
// outside it (the empty-prefix List reads from its own prefix on); keys
// outside ns may exist. Subtests whose rule is about the whole store
// (revision accounting, stats, CleanupExpired, history and compaction)
// run while no other subtest runs; nothing outside this run may write to
// the store or call CleanupExpired on it meanwhile.
func WithNamespace(ns string) Option {
	return func(c *config) { c.namespace, c.shared = ns, true }
}

// WithRetention says how many revisions of history the backend under test
// keeps (its configured retention). The watch-history compaction rule
// needs it: the suite writes more revisions than that to force compaction.
// Without it, that rule is skipped.
func WithRetention(revisions int) Option {
	return func(c *config) { c.retention = revisions }
}

// WithFilter runs only the rules whose name ("group/rule") matches re.
func WithFilter(re *regexp.Regexp) Option {
	return func(c *config) { c.filter = re }
}

// WithReport calls report once for each rule run, when its subtest ends.
// kvhost plugin verify uses it for its summary.
func WithReport(report func(Rule, Outcome)) Option {
	return func(c *config) { c.report = report }
}

// Run runs the suite against backends made by newBackend, in-process. Each
// group of rules is a subtest, each rule a subtest of its group; all run
// in parallel.
func Run(t *testing.T, newBackend NewBackend, opts ...Option) {
	t.Helper()
	cfg := &config{}
	for _, o := range opts {
		o(cfg)
	}
	r := &runner{newBackend: newBackend, cfg: cfg}
	if cfg.shared {
		r.run = cfg.namespace + randomID() + "/"
	}
	for _, group := range groups(cfg.filter) {
		t.Run(group.name, func(t *testing.T) {
			t.Parallel()
			for _, rl := range group.rules {
				t.Run(strings.TrimPrefix(rl.Name, group.name+"/"), func(t *testing.T) {
					t.Parallel()
					r.check(t, rl)
				})
			}
		})
	}
}

// RunGRPC runs the suite with each backend served over an in-process gRPC
// connection, so every value and error crosses the real plugin protocol
// with the same message limits as a plugin subprocess.
func RunGRPC(t *testing.T, open pluginapi.OpenFunc, settings func(t testing.TB) map[string]string, opts ...Option) {
	t.Helper()
	Run(t, func(t testing.TB) kv.Backend {
		t.Helper()
		c, err := pluginapi.ServeInProcess(t.Context(), open)
		if err != nil {
			t.Fatalf("serve in process: %v", err)
		}
		var set map[string]string
		if settings != nil {
			set = settings(t)
		}
		if err := c.Open(t.Context(), set); err != nil {
			_ = c.Close()
			t.Fatalf("open: %v", err)
		}
		return c
	}, opts...)
}

// RunPlugin runs the suite against a built plugin binary: every subtest
// starts its own plugin process over go-plugin, with the settings returned
// by settings (which may be nil).
func RunPlugin(t *testing.T, path string, settings func(t testing.TB) map[string]string, opts ...Option) {
	t.Helper()
	Run(t, func(t testing.TB) kv.Backend {
		return StartPlugin(t, path, settings)
	}, opts...)
}

// StartPlugin starts one plugin process for a test and kills it at cleanup.
func StartPlugin(t testing.TB, path string, settings func(t testing.TB) map[string]string) *pluginapi.Plugin {
	t.Helper()
	var set map[string]string
	if settings != nil {
		set = settings(t)
	}
	p, err := pluginapi.Start(t.Context(), pluginapi.StartConfig{
		Path:     path,
		Settings: set,
		Logger:   hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: testWriter{t}}),
	})
	if err != nil {
		t.Fatalf("start plugin %s: %v", path, err)
	}
	t.Cleanup(p.Kill)
	return p
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func randomID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// runner runs rules against one NewBackend.
type runner struct {
	newBackend NewBackend
	cfg        *config
	run        string // shared store: the prefix of this run, below the namespace
	// exclusive lets a rule about the whole store run while no other
	// subtest does (shared store only).
	exclusive sync.RWMutex
}

// check runs one rule in its subtest.
func (r *runner) check(t *testing.T, rl rule) {
	if r.cfg.report != nil {
		t.Cleanup(func() { r.cfg.report(rl.Rule, outcome(t)) })
	}
	if r.cfg.shared {
		r.lock(t, rl.exclusive)
	}
	b := r.newBackend(t)
	if b == nil {
		t.Fatal("newBackend returned nil")
	}
	t.Cleanup(func() { _ = b.Close() })
	c := &check{T: t, rule: rl.Rule, b: b, cfg: r.cfg}
	if r.cfg.shared {
		c.p = r.run + rl.Name + "/"
		t.Cleanup(func() { c.deleteOwnPrefix() })
	}
	info, err := b.Info(t.Context())
	if err != nil {
		c.Fatalf("Info: %v", err)
	}
	c.info = info
	for _, need := range rl.needs {
		if !capabilities[need](info.Capabilities) {
			t.Skipf("the backend does not claim %s (%s/is-refused-when-not-claimed checks that it refuses it cleanly)", need, refusalGroup[need])
		}
	}
	if rl.unclaimed != "" && capabilities[rl.unclaimed](info.Capabilities) {
		t.Skipf("the backend claims %s: the other rules of the group check it", rl.unclaimed)
	}
	rl.test(c)
}

// lock takes the store for one subtest until it ends, cleanups included:
// alone for a rule about the whole store, shared otherwise.
func (r *runner) lock(t *testing.T, exclusive bool) {
	if exclusive {
		r.exclusive.Lock()
		t.Cleanup(r.exclusive.Unlock)
		return
	}
	r.exclusive.RLock()
	t.Cleanup(r.exclusive.RUnlock)
}

// deleteOwnPrefix removes what a subtest left in a shared store. The
// subtest's context is already cancelled when cleanups run.
func (c *check) deleteOwnPrefix() {
	ctx := context.WithoutCancel(c.Context())
	if _, err := c.b.DeletePrefix(ctx, c.p); err != nil {
		c.Logf("cleaning up prefix %q: %v", c.p, err)
	}
}

func outcome(t *testing.T) Outcome {
	switch {
	case t.Failed():
		return Failed
	case t.Skipped():
		return Skipped
	}
	return Passed
}
