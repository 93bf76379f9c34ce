package policy

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tetratelabs/wazero"
)

// Options configure an Engine.
type Options struct {
	// CacheDir keeps compiled policies across restarts (wazero's
	// compilation cache). Empty: in memory, for this process only.
	CacheDir string
	// Logger receives policy logs, audit denials, failures and reloads.
	// Nil: slog.Default().
	Logger *slog.Logger
	// Metrics registers the engine's collectors; nil registers nothing.
	Metrics prometheus.Registerer
	// LogRate and LogBurst limit each policy's log lines (kvhost.log,
	// stdout, stderr) per second; defaults 10 and 50.
	LogRate  float64
	LogBurst int
	// MaxModuleSize bounds a policy file; default 64 MiB.
	MaxModuleSize int64
}

// Engine runs an ordered chain of policies. It is safe for concurrent
// use; Evaluate never blocks on Load, Reload or Watch.
type Engine struct {
	opts    Options
	log     *slog.Logger
	cache   wazero.CompilationCache
	metrics *metrics

	cur atomic.Pointer[chain]

	mu      sync.Mutex // serialises Load, Reload and Close
	specs   []Spec
	closed  bool
	changed chan struct{} // closed and replaced after every load, for Watch
	done    chan struct{} // closed by Close
	retired sync.WaitGroup
}

// chain is one immutable generation of the policy chain. Evaluations hold
// a reference; the engine holds one until the chain is replaced.
type chain struct {
	sets    []*policySet
	refs    atomic.Int64
	drained chan struct{}
}

func newChain(sets []*policySet) *chain {
	c := &chain{sets: sets, drained: make(chan struct{})}
	c.refs.Store(1)
	return c
}

func (c *chain) tryAcquire() bool {
	for {
		n := c.refs.Load()
		if n == 0 {
			return false
		}
		if c.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (c *chain) release() {
	if c.refs.Add(-1) == 0 {
		close(c.drained)
	}
}

// NewEngine starts an engine with an empty chain, which allows
// everything.
func NewEngine(ctx context.Context, opts Options) (*Engine, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.LogRate <= 0 {
		opts.LogRate = 10
	}
	if opts.LogBurst <= 0 {
		opts.LogBurst = 50
	}
	if opts.MaxModuleSize <= 0 {
		opts.MaxModuleSize = 64 << 20
	}
	m, err := newMetrics(opts.Metrics)
	if err != nil {
		return nil, err
	}
	e := &Engine{
		opts:    opts,
		log:     opts.Logger,
		metrics: m,
		changed: make(chan struct{}),
		done:    make(chan struct{}),
	}
	if opts.CacheDir != "" {
		if e.cache, err = wazero.NewCompilationCacheWithDir(opts.CacheDir); err != nil {
			return nil, fmt.Errorf("policy: compilation cache %s: %w", opts.CacheDir, err)
		}
	} else {
		e.cache = wazero.NewCompilationCache()
	}
	e.cur.Store(newChain(nil))
	return e, nil
}

// Load compiles, instantiates, initialises and warms the policies, then
// swaps them in as the new chain, in order. If any policy fails, nothing
// changes and the previous chain keeps running. Policies whose file,
// configuration and settings are unchanged keep their running instances.
func (e *Engine) Load(ctx context.Context, specs []Spec) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.load(ctx, specs, false)
}

// Loaded returns a channel closed when the next load takes effect (not
// when one is refused): whoever serves answers the chain decided — a
// client's near cache — forgets them then.
func (e *Engine) Loaded() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.changed
}

// Reload re-reads the current chain's files (modules and configuration
// files) and loads them if any changed; the host calls it on SIGHUP. A
// refused reload leaves the running chain in place.
func (e *Engine) Reload(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.load(ctx, e.specs, true)
}

type loadInput struct {
	spec   Spec
	wasm   []byte
	config []byte
	hash   [32]byte
}

func (e *Engine) load(ctx context.Context, specs []Spec, onlyIfChanged bool) (err error) {
	if e.closed {
		return ErrClosed
	}
	defer func() {
		if err != nil {
			e.metrics.reloads.WithLabelValues("refused").Inc()
		}
	}()
	inputs, err := e.readSpecs(specs)
	if err != nil {
		return err
	}
	old := e.cur.Load()
	reuse := func(in loadInput) *policySet {
		for _, p := range old.sets {
			if p.sameAs(in.spec, in.hash, in.config) {
				return p
			}
		}
		return nil
	}
	if onlyIfChanged {
		unchanged := len(inputs) == len(old.sets)
		for i, in := range inputs {
			if unchanged && reuse(in) != old.sets[i] {
				unchanged = false
			}
		}
		if unchanged {
			e.metrics.reloads.WithLabelValues("unchanged").Inc()
			return nil
		}
	}
	sets := make([]*policySet, 0, len(inputs))
	var built []*policySet
	for _, in := range inputs {
		if p := reuse(in); p != nil {
			sets = append(sets, p)
			continue
		}
		p, err := e.buildSet(ctx, in.spec, in.wasm, in.config)
		if err != nil {
			for _, b := range built {
				b.close()
			}
			if len(old.sets) > 0 {
				// With nothing running (a first load, the offline
				// tools), the caller reports the error itself.
				e.log.Error("policy: load refused; the running policies stay", "policy", in.spec.Name, "path", in.spec.Path, "err", err)
			}
			return err
		}
		built = append(built, p)
		sets = append(sets, p)
	}
	for _, p := range sets {
		p.owners++
	}
	e.cur.Store(newChain(sets))
	e.retire(old)
	e.specs = specsOf(sets)
	close(e.changed)
	e.changed = make(chan struct{})
	e.metrics.reloads.WithLabelValues("ok").Inc()
	names := make([]string, len(sets))
	for i, p := range sets {
		names[i] = p.spec.Name
	}
	rebuilt := make([]string, len(built))
	for i, p := range built {
		rebuilt[i] = p.spec.Name
	}
	// rebuilt names the policies whose module, configuration or settings
	// changed; the others kept their running instances.
	e.log.Info("policy: chain loaded", "policies", names, "rebuilt", rebuilt)
	return nil
}

func specsOf(sets []*policySet) []Spec {
	specs := make([]Spec, len(sets))
	for i, p := range sets {
		specs[i] = p.spec
	}
	return specs
}

// readSpecs applies defaults and reads every file.
func (e *Engine) readSpecs(specs []Spec) ([]loadInput, error) {
	inputs := make([]loadInput, 0, len(specs))
	names := map[string]bool{}
	for _, s := range specs {
		s = s.withDefaults()
		if s.Path == "" {
			return nil, fmt.Errorf("%w %q: no path", ErrInvalidPolicy, s.Name)
		}
		if names[s.Name] {
			return nil, fmt.Errorf("%w: two policies are named %q", ErrInvalidPolicy, s.Name)
		}
		if s.MemoryLimitPages > maxMemoryPages {
			// wazero would panic on it.
			return nil, fmt.Errorf("%w %q: memory limit of %d pages is over WebAssembly's %d (4 GiB)", ErrInvalidPolicy, s.Name, s.MemoryLimitPages, maxMemoryPages)
		}
		names[s.Name] = true
		wasm, err := readFile(s.Path, e.opts.MaxModuleSize)
		if err != nil {
			return nil, fmt.Errorf("%w %q: %v", ErrInvalidPolicy, s.Name, err)
		}
		cfg := s.Config
		if s.ConfigPath != "" {
			raw, err := readFile(s.ConfigPath, 16<<20)
			if err != nil {
				return nil, fmt.Errorf("%w %q: config: %v", ErrInvalidPolicy, s.Name, err)
			}
			if cfg, err = ConfigJSON(raw); err != nil {
				return nil, fmt.Errorf("%w %q: config %s: %v", ErrInvalidPolicy, s.Name, s.ConfigPath, err)
			}
		}
		if len(cfg) == 0 {
			cfg = []byte("null")
		}
		inputs = append(inputs, loadInput{spec: s, wasm: wasm, config: cfg, hash: sha256.Sum256(wasm)})
	}
	return inputs, nil
}

func readFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than the %d bytes allowed", path, limit)
	}
	return b, nil
}

// retire drops the engine's reference to a replaced chain; once its last
// evaluation finishes, sets no longer used by any chain are closed.
func (e *Engine) retire(c *chain) {
	e.retired.Add(1)
	go func() {
		defer e.retired.Done()
		<-c.drained
		e.mu.Lock()
		var closing []*policySet
		for _, p := range c.sets {
			p.owners--
			if p.owners == 0 {
				closing = append(closing, p)
			}
		}
		e.mu.Unlock()
		for _, p := range closing {
			p.close()
		}
	}()
	c.release()
}

// Evaluate runs the chain on req. Every policy sees the TTL as rewritten
// by the policies before it. The result is:
//
//   - allowed: a Decision with Allow set and the TTL to apply, nil error;
//   - denied by a policy in enforce mode: Allow false, Policy and Reason
//     set, and a *DeniedError (errors.Is ErrDenied and
//     kv.ErrPermissionDenied);
//   - a policy failed (deadline, trap, memory, crash) and does not fail
//     open: Allow false and a *FailureError (errors.Is ErrPolicyFailed).
//
// Policies in audit mode never deny: their denials and failures are
// logged and counted.
func (e *Engine) Evaluate(ctx context.Context, req Request) (Decision, error) {
	var c *chain
	for {
		if c = e.cur.Load(); c == nil {
			return Decision{}, ErrClosed
		}
		if c.tryAcquire() {
			break
		}
	}
	defer c.release()
	dec := Decision{Allow: true, TTL: req.TTL}
	if len(c.sets) == 0 {
		return dec, nil
	}
	t := monoNow()
	if req.Now.IsZero() {
		req.Now = wallAt(t)
	}
	if req.ValueLen == 0 {
		req.ValueLen = len(req.Value)
	}
	for _, p := range c.sets {
		var ans answer
		var err error
		ans, t, err = p.evaluate(ctx, &req, t)
		if err != nil {
			var fe *FailureError
			if !errors.As(err, &fe) {
				return Decision{Policy: p.spec.Name}, err
			}
			e.metrics.failures.WithLabelValues(p.spec.Name, fe.Kind.String()).Inc()
			if p.failLog.allow() {
				e.log.Error("policy: evaluation failed", "policy", p.spec.Name, "kind", fe.Kind.String(), "detail", fe.detail(),
					"mode", p.spec.Mode.String(), "fail_open", p.spec.FailOpen, "op", req.Op.String(), "key", req.Key)
			}
			if p.spec.Mode == Audit || p.spec.FailOpen {
				continue
			}
			return Decision{Policy: p.spec.Name, Reason: fe.Error(), TTL: req.TTL}, fe
		}
		switch ans.verdict {
		case verdictAllowTTL:
			if p.spec.Mode == Audit {
				if p.failLog.allow() {
					e.log.Info("policy: audit: would rewrite TTL", "policy", p.spec.Name, "op", req.Op.String(), "key", req.Key, "ttl", req.TTL, "new_ttl", ans.ttl)
				}
				continue
			}
			req.TTL = ans.ttl
			dec.TTL, dec.TTLRewritten, dec.Policy = ans.ttl, true, p.spec.Name
		case verdictDeny:
			p.countDenial(ans.code)
			reason := ans.reason
			if reason == "" {
				reason = "denied"
			}
			if p.spec.Mode == Audit {
				if p.failLog.allow() {
					e.log.Warn("policy: audit: would deny", "policy", p.spec.Name, "code", ans.code, "reason", reason,
						"op", req.Op.String(), "key", req.Key, "principal", req.Principal, "tenant", req.Tenant)
				}
				continue
			}
			return Decision{Policy: p.spec.Name, Reason: reason, Code: ans.code, TTL: req.TTL},
				&DeniedError{Policy: p.spec.Name, Code: ans.code, Reason: reason}
		}
	}
	return dec, nil
}

// Policies returns the names of the running chain, in order.
func (e *Engine) Policies() []string {
	c := e.cur.Load()
	if c == nil {
		return nil
	}
	names := make([]string, len(c.sets))
	for i, p := range c.sets {
		names[i] = p.spec.Name
	}
	return names
}

// Close stops the engine: the chain is emptied, running evaluations
// finish (or ctx ends the wait), and every instance is released.
func (e *Engine) Close(ctx context.Context) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	close(e.done)
	old := e.cur.Swap(nil)
	e.retire(old)
	e.mu.Unlock()
	waited := make(chan struct{})
	go func() {
		e.retired.Wait()
		close(waited)
	}()
	select {
	case <-waited:
	case <-ctx.Done():
		return ctx.Err()
	}
	return e.cache.Close(ctx)
}
