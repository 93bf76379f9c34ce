package policy

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"github.com/kvhost/kvhost/host/policy/internal/wasmguard"
)

// ABIVersion is the policy ABI this engine speaks.
const ABIVersion = 1

// Exports of ABI v1 and their signatures.
var requiredExports = []struct {
	name            string
	params, results []api.ValueType
}{
	{"kvhost_abi_version", nil, []api.ValueType{api.ValueTypeI32}},
	{"kvhost_request_buffer", []api.ValueType{api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}},
	{"kvhost_init", []api.ValueType{api.ValueTypeI32, api.ValueTypeI32}, []api.ValueType{api.ValueTypeI64}},
	{"kvhost_evaluate", []api.ValueType{api.ValueTypeI32}, []api.ValueType{api.ValueTypeI64}},
}

var optionalExports = []struct {
	name            string
	params, results []api.ValueType
}{
	{"kvhost_features", nil, []api.ValueType{api.ValueTypeI32}},
	{"_initialize", nil, nil},
}

const featureValue = 1 << 0

// maxAnswerLen bounds an answer record: header, code and 64 KiB of reason
// (of which the host keeps maxReasonLen).
const maxAnswerLen = answerHeaderSize + maxCodeLen + 64<<10

// policySet is one loaded policy: its runtime, compiled module and pool
// of instances. Chains share unchanged sets across reloads.
type policySet struct {
	engine   *Engine
	spec     Spec
	fileHash [32]byte
	config   []byte

	runtime   wazero.Runtime
	compiled  wazero.CompiledModule
	wantValue bool

	pool chan *instance
	live atomic.Int32 // instances alive, in the pool or in use
	// starved is set while replacing a discarded instance fails: with
	// no live instance left, evaluations fail at once instead of waiting.
	starved atomic.Bool

	m        setMetrics
	logLimit *limiter
	failLog  *limiter // failures and audit denials

	mu      sync.Mutex
	closed  bool
	codes   map[string]bool // denial codes seen, bounded for metric labels
	replWG  sync.WaitGroup
	stopCtx context.Context
	stop    context.CancelFunc

	owners int // chains using this set; guarded by Engine.mu
}

// sameAs reports whether the set was built from exactly this input.
func (p *policySet) sameAs(spec Spec, hash [32]byte, config []byte) bool {
	a, b := p.spec, spec
	return a.Name == b.Name && a.Path == b.Path && a.ConfigPath == b.ConfigPath && a.Mode == b.Mode &&
		a.FailOpen == b.FailOpen && a.Timeout == b.Timeout && a.MemoryLimitPages == b.MemoryLimitPages &&
		a.PoolSize == b.PoolSize && p.fileHash == hash && string(p.config) == string(config)
}

// buildSet compiles and validates a module, and starts and warms its
// instances. Nothing of it is visible until the chain is swapped.
func (e *Engine) buildSet(ctx context.Context, spec Spec, wasm, config []byte) (*policySet, error) {
	p := &policySet{
		engine:   e,
		spec:     spec,
		fileHash: sha256.Sum256(wasm),
		config:   config,
		pool:     make(chan *instance, spec.PoolSize),
		m:        e.metrics.forPolicy(spec.Name),
		logLimit: newLimiter(e.opts.LogRate, e.opts.LogBurst),
		failLog:  newLimiter(1, 5),
		codes:    map[string]bool{},
	}
	p.stopCtx, p.stop = context.WithCancel(context.Background())
	guarded, _, err := wasmguard.Instrument(wasm)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %s: %v", ErrInvalidPolicy, spec.Name, spec.Path, err)
	}
	p.runtime = e.newRuntime(ctx, spec.MemoryLimitPages)
	ok := false
	defer func() {
		if !ok {
			p.close()
		}
	}()
	p.compiled, err = p.runtime.CompileModule(ctx, guarded)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %s: %v", ErrInvalidPolicy, spec.Name, spec.Path, err)
	}
	wasi, err := checkModule(p.compiled, spec.MemoryLimitPages)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %s: %v", ErrInvalidPolicy, spec.Name, spec.Path, err)
	}
	if wasi {
		// Every WASI call checks the deadline (hostCallCheck).
		wctx := experimental.WithFunctionListenerFactory(ctx, hostCallCheck{})
		if _, err := wasi_snapshot_preview1.Instantiate(wctx, p.runtime); err != nil {
			return nil, fmt.Errorf("policy %q: WASI: %w", spec.Name, err)
		}
	}
	_, err = p.runtime.NewHostModuleBuilder("kvhost").
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(p.hostLog), []api.ValueType{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32}, nil).
		WithParameterNames("level", "ptr", "len").
		Export("log").
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(deadlineCheck), nil, nil).
		Export(wasmguard.ImportName).
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(growCall), []api.ValueType{api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}).
		WithParameterNames("pages").
		Export(wasmguard.GrowName).
		Instantiate(ctx)
	if err != nil {
		return nil, fmt.Errorf("policy %q: host module: %w", spec.Name, err)
	}
	for i := 0; i < spec.PoolSize; i++ {
		in, err := p.newInstance(ctx, i == 0)
		if err != nil {
			return nil, err
		}
		p.pool <- in
	}
	ok = true
	return p, nil
}

// newRuntime makes the runtime of one policy, whose memories are capped at
// limitPages.
func (e *Engine) newRuntime(ctx context.Context, limitPages uint32) wazero.Runtime {
	return wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().
		WithCompilationCache(e.cache).
		WithMemoryLimitPages(limitPages).
		// The instrumentation stops runaway code; wazero's own mechanism
		// would cost a goroutine per call.
		WithCloseOnContextDone(false))
}

// Compile instruments and compiles the modules at paths into the engine's
// compilation cache, as Load does, without running them or changing the
// chain. With Options.CacheDir set to a server's policy_cache_dir, a
// deploy step (or a test) compiles ahead of the server's start, which
// then reads compiled code instead of spending seconds per policy
// compiling.
func (e *Engine) Compile(ctx context.Context, paths ...string) error {
	e.mu.Lock()
	closed := e.closed
	e.mu.Unlock()
	if closed {
		return ErrClosed
	}
	for _, path := range paths {
		wasm, err := readFile(path, e.opts.MaxModuleSize)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidPolicy, err)
		}
		guarded, _, err := wasmguard.Instrument(wasm)
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrInvalidPolicy, path, err)
		}
		// Memory limits are Load's to check: they do not change the code.
		r := e.newRuntime(ctx, maxMemoryPages)
		_, err = r.CompileModule(ctx, guarded)
		r.Close(ctx)
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrInvalidPolicy, path, err)
		}
	}
	return nil
}

// checkModule verifies the module against ABI v1 and a memory limit of
// limitPages, and says whether it needs WASI.
func checkModule(cm wazero.CompiledModule, limitPages uint32) (wasi bool, err error) {
	var problems []string
	exports := cm.ExportedFunctions()
	sig := func(params, results []api.ValueType) string {
		name := func(ts []api.ValueType) string {
			s := make([]string, len(ts))
			for i, t := range ts {
				s[i] = api.ValueTypeName(t)
			}
			return "(" + strings.Join(s, ", ") + ")"
		}
		return name(params) + " -> " + name(results)
	}
	for _, want := range requiredExports {
		def, ok := exports[want.name]
		if !ok {
			problems = append(problems, fmt.Sprintf("missing export %s %s", want.name, sig(want.params, want.results)))
			continue
		}
		if !slices.Equal(def.ParamTypes(), want.params) || !slices.Equal(def.ResultTypes(), want.results) {
			problems = append(problems, fmt.Sprintf("export %s is %s, want %s", want.name, sig(def.ParamTypes(), def.ResultTypes()), sig(want.params, want.results)))
		}
	}
	for _, opt := range optionalExports {
		if def, ok := exports[opt.name]; ok && (!slices.Equal(def.ParamTypes(), opt.params) || !slices.Equal(def.ResultTypes(), opt.results)) {
			problems = append(problems, fmt.Sprintf("export %s is %s, want %s", opt.name, sig(def.ParamTypes(), def.ResultTypes()), sig(opt.params, opt.results)))
		}
	}
	if mem, ok := cm.ExportedMemories()["memory"]; !ok {
		problems = append(problems, `missing export "memory"`)
	} else if mem.Min() >= limitPages {
		// It would start at the limit, which no evaluation may reach.
		problems = append(problems, fmt.Sprintf("its initial memory of %d pages reaches the memory limit of %d pages", mem.Min(), limitPages))
	}
	for _, def := range cm.ImportedFunctions() {
		mod, name, _ := def.Import()
		switch {
		case mod == wasmguard.ImportModule && (name == wasmguard.ImportName || name == wasmguard.GrowName):
			// added by the instrumentation
		case mod == "kvhost" && name == "log":
			want := []api.ValueType{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32}
			if !slices.Equal(def.ParamTypes(), want) || len(def.ResultTypes()) != 0 {
				problems = append(problems, fmt.Sprintf("import kvhost.log is %s, want (i32, i32, i32) -> ()", sig(def.ParamTypes(), def.ResultTypes())))
			}
		case mod == wasi_snapshot_preview1.ModuleName:
			wasi = true
		default:
			problems = append(problems, fmt.Sprintf("imports %s.%s: the host provides only kvhost.log and %s", mod, name, wasi_snapshot_preview1.ModuleName))
		}
	}
	for _, def := range cm.ImportedMemories() {
		mod, name, _ := def.Import()
		problems = append(problems, fmt.Sprintf("imports memory %s.%s: a policy must define its own memory", mod, name))
	}
	if len(problems) > 0 {
		return false, fmt.Errorf("module does not fit policy ABI v%d: %s", ABIVersion, strings.Join(problems, "; "))
	}
	return wasi, nil
}

// instance is one instantiated module. It is used by one goroutine at a
// time: whoever took it from the pool.
type instance struct {
	set    *policySet
	ctx    context.Context // carries the instance, for the host functions
	mod    api.Module
	mem    api.Memory
	evalFn api.Function
	bufFn  api.Function
	bufPtr uint32
	bufCap uint32
	stack  [2]uint64
	clock  guestClock
	stderr *lineWriter
	// deadline is the running call's deadline in monoNanos, 0 when idle,
	// backstop its wall-clock limit and timeout its length; grace counts
	// the CPU time used past the deadline (deadline.go). timedOut is set
	// by check when it was overrun.
	deadline, backstop, timeout int64
	grace                       grace
	timedOut                    bool
	// memCapped is set by grow when the memory would have reached its
	// limit.
	memCapped bool
}

// badAnswer is an ABI violation by the policy.
type badAnswer struct{ msg string }

func (b *badAnswer) Error() string { return b.msg }

// newInstance instantiates and initialises one instance, under a
// deadline. first also reads the policy's features.
func (p *policySet) newInstance(ctx context.Context, first bool) (*instance, error) {
	in := &instance{set: p}
	in.ctx = context.WithValue(context.Background(), instanceKey{}, in)
	in.stderr = &lineWriter{in: in, set: p, stream: "stderr", level: slog.LevelWarn, keep: true}
	stdout := &lineWriter{in: in, set: p, stream: "stdout", level: slog.LevelInfo}
	// No filesystem, arguments or environment; wazero's default wall
	// clock (fixed start, 1 ms per reading) and our own monotonic one
	// (clock.go), fake both, and sleeps that return at once. The random
	// source is wazero's default (deterministic), read in chunks under
	// the deadline.
	cfg := wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions().
		WithNanotime(in.clock.nanotime, readStep).
		WithNanosleep(in.clock.sleep).
		WithStdout(stdout).
		WithStderr(in.stderr).
		WithRandSource(newRandSource(in))
	mod, err := p.runtime.InstantiateModule(experimental.WithMemoryAllocator(ctx, memoryAllocator), p.compiled, cfg)
	if err != nil {
		return nil, fmt.Errorf("policy %q: instantiate: %w", p.spec.Name, err)
	}
	in.mod = mod
	in.mem = mod.Memory()
	in.evalFn = mod.ExportedFunction("kvhost_evaluate")
	in.bufFn = mod.ExportedFunction("kvhost_request_buffer")
	p.live.Add(1)

	err = in.guard(InitTimeout, func() error {
		if f := mod.ExportedFunction("_initialize"); f != nil {
			if _, err := f.Call(in.ctx); err != nil {
				return fmt.Errorf("_initialize: %w", err)
			}
		}
		v, err := mod.ExportedFunction("kvhost_abi_version").Call(in.ctx)
		if err != nil {
			return fmt.Errorf("kvhost_abi_version: %w", err)
		}
		if int32(v[0]) != ABIVersion {
			return fmt.Errorf("module speaks policy ABI v%d, this host speaks v%d", int32(v[0]), ABIVersion)
		}
		cfgBytes := p.config
		if len(cfgBytes) == 0 {
			cfgBytes = []byte("null")
		}
		if err := in.growBuffer(len(cfgBytes)); err != nil {
			return err
		}
		in.mem.Write(in.bufPtr, cfgBytes)
		res, err := mod.ExportedFunction("kvhost_init").Call(in.ctx, uint64(in.bufPtr), uint64(len(cfgBytes)))
		if err != nil {
			return fmt.Errorf("kvhost_init: %w", err)
		}
		if res[0] != 0 {
			ptr, n := uint32(res[0]>>32), uint32(res[0])
			msg, ok := in.mem.Read(ptr, min(n, maxReasonLen))
			if !ok {
				return fmt.Errorf("kvhost_init failed with an out-of-range message")
			}
			return &initError{msg: sanitize(string(msg), maxReasonLen)}
		}
		if first {
			if f := mod.ExportedFunction("kvhost_features"); f != nil {
				v, err := f.Call(in.ctx)
				if err != nil {
					return fmt.Errorf("kvhost_features: %w", err)
				}
				p.wantValue = uint32(v[0])&featureValue != 0
			}
		}
		// Warm up: one evaluation of an ordinary request faults the code
		// in and sizes the buffers, and proves evaluate does not trap.
		warm := Request{Op: OpGet, Key: "kvhost/warmup", Now: time.Now()}
		_, err = in.evaluate(&warm, p.wantValue)
		if err != nil {
			return fmt.Errorf("warm-up evaluation: %w", err)
		}
		return nil
	})
	if err != nil {
		var ie *initError
		if errors.As(err, &ie) {
			p.discard(in, false)
			return nil, fmt.Errorf("%w %q: configuration refused: %s", ErrInvalidPolicy, p.spec.Name, ie.msg)
		}
		fe := in.failure(err, err == errGuardTimeout)
		p.discard(in, false)
		return nil, fmt.Errorf("%w %q: starting an instance: %s: %s", ErrInvalidPolicy, p.spec.Name, fe.Kind, fe.detail())
	}
	return in, nil
}

type initError struct{ msg string }

func (e *initError) Error() string { return e.msg }

var errGuardTimeout = errors.New("deadline exceeded")

// guard runs fn under a deadline.
func (in *instance) guard(timeout time.Duration, fn func() error) error {
	in.arm(monoNow(), timeout)
	err := fn()
	if in.disarm() {
		return errGuardTimeout
	}
	return err
}

// growBuffer asks the policy for a request buffer of at least n bytes.
func (in *instance) growBuffer(n int) error {
	if uint64(n) > uint64(in.set.spec.MemoryLimitPages)*65536 {
		return &badAnswer{fmt.Sprintf("request of %d bytes cannot fit the policy's memory limit", n)}
	}
	in.stack[0] = uint64(n)
	if err := in.bufFn.CallWithStack(in.ctx, in.stack[:]); err != nil {
		return err
	}
	ptr := uint32(in.stack[0])
	if _, ok := in.mem.Read(ptr, uint32(n)); !ok {
		return &badAnswer{fmt.Sprintf("kvhost_request_buffer(%d) returned %d, outside memory", n, ptr)}
	}
	in.bufPtr, in.bufCap = ptr, uint32(n)
	return nil
}

// evaluate encodes req into the instance and runs kvhost_evaluate.
func (in *instance) evaluate(req *Request, wantValue bool) (answer, error) {
	withValue := wantValue && len(req.Value) == req.ValueLen
	n := recordSize(req, withValue)
	if uint32(n) > in.bufCap || in.bufCap == 0 {
		if err := in.growBuffer(n); err != nil {
			return answer{}, err
		}
	}
	view, ok := in.mem.Read(in.bufPtr, uint32(n))
	if !ok {
		return answer{}, &badAnswer{"request buffer outside memory"}
	}
	encodeRequest(view, req, withValue)
	in.clock.evaluation()
	in.stderr.tail = in.stderr.tail[:0]
	in.stack[0] = uint64(n)
	if err := in.evalFn.CallWithStack(in.ctx, in.stack[:]); err != nil {
		return answer{}, err
	}
	res := in.stack[0]
	if res == 0 {
		return answer{}, nil
	}
	ptr, ln := uint32(res>>32), uint32(res)
	if ln > maxAnswerLen {
		return answer{}, &badAnswer{fmt.Sprintf("answer of %d bytes is too long", ln)}
	}
	b, ok := in.mem.Read(ptr, ln)
	if !ok {
		return answer{}, &badAnswer{fmt.Sprintf("answer at %d+%d is outside memory", ptr, ln)}
	}
	a, err := decodeAnswer(b)
	if err != nil {
		return answer{}, &badAnswer{err.Error()}
	}
	return a, nil
}

// failure classifies why a call failed.
func (in *instance) failure(err error, fired bool) *FailureError {
	p := in.set
	fe := &FailureError{Policy: p.spec.Name}
	limit := uint64(p.spec.MemoryLimitPages) * 65536
	words := in.stderr.lastWords()
	var ba *badAnswer
	var exit *sys.ExitError
	switch {
	case fired:
		fe.Kind, fe.Timeout = FailTimeout, p.spec.Timeout
		if err == errGuardTimeout {
			fe.Timeout = InitTimeout
		}
	case errors.As(err, &ba):
		fe.Kind, fe.Detail = FailBadAnswer, ba.msg
	case in.memCapped || strings.Contains(words, "out of memory"):
		fe.Kind = FailOutOfMemory
		fe.Detail = fmt.Sprintf("reached its memory limit of %d pages (%d MiB)", p.spec.MemoryLimitPages, limit>>20)
		if words != "" {
			fe.Detail += ": " + words
		}
	case errors.As(err, &exit):
		fe.Kind = FailCrash
		fe.Detail = fmt.Sprintf("exited with code %d", exit.ExitCode())
		if words != "" {
			fe.Detail += ": " + words
		}
	case strings.HasPrefix(words, "panic: ") || strings.HasPrefix(words, "fatal error: "):
		// A Go policy's panic prints, then traps.
		fe.Kind, fe.Detail = FailCrash, words
	default:
		fe.Kind = FailTrap
		fe.Detail = firstLine(err.Error())
		if words != "" {
			fe.Detail += ": " + words
		}
	}
	return fe
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return sanitize(s, 512)
}

// evaluate runs one evaluation on a pooled instance. start is the
// monotonic time the evaluation begins (the previous policy's end, so
// that a chain reads the clock once per policy); it returns its end.
func (p *policySet) evaluate(ctx context.Context, req *Request, start int64) (answer, int64, error) {
	var in *instance
	select {
	case in = <-p.pool:
	default:
		var err error
		if in, err = p.acquire(ctx); err != nil {
			return answer{}, monoNow(), err
		}
		start = monoNow() // the wait is not the policy's time
	}
	in.arm(start, p.spec.Timeout)
	ans, err := in.evaluate(req, p.wantValue)
	fired := in.disarm()
	end := monoNow()
	p.m.latency.Observe(float64(end-start) / 1e9)
	if err == nil && !fired {
		p.pool <- in
		return ans, end, nil
	}
	fe := in.failure(err, fired)
	p.discard(in, true)
	return answer{}, end, fe
}

// acquire waits for an instance while all are busy.
func (p *policySet) acquire(ctx context.Context) (*instance, error) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case in := <-p.pool:
			return in, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
			if p.live.Load() == 0 && p.starved.Load() {
				return nil, &FailureError{Policy: p.spec.Name, Kind: FailUnavailable, Detail: "no instance could be started; see the log"}
			}
		}
	}
}

// discard closes a failed instance and, if asked, starts a replacement in
// the background.
func (p *policySet) discard(in *instance, replace bool) {
	in.mod.Close(context.Background())
	p.live.Add(-1)
	if !replace {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.replWG.Add(1)
	go p.replace()
}

// replace starts a new instance, retrying with backoff.
func (p *policySet) replace() {
	defer p.replWG.Done()
	backoff := 50 * time.Millisecond
	for {
		in, err := p.newInstance(p.stopCtx, false)
		if err == nil {
			p.starved.Store(false)
			p.mu.Lock()
			if p.closed {
				p.mu.Unlock()
				p.discard(in, false)
				return
			}
			p.pool <- in
			p.mu.Unlock()
			return
		}
		p.starved.Store(true)
		p.engine.log.Error("policy: cannot replace a failed instance", "policy", p.spec.Name, "err", err, "retry_in", backoff)
		select {
		case <-p.stopCtx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// close releases everything; no evaluation may be running.
func (p *policySet) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.stop()
	p.replWG.Wait()
	for {
		select {
		case in := <-p.pool:
			p.discard(in, false)
			continue
		default:
		}
		break
	}
	if p.runtime != nil {
		p.runtime.Close(context.Background())
	}
}

// countDenial counts a denial, bounding the distinct codes per policy.
func (p *policySet) countDenial(code string) {
	if code == "" {
		code = "denied"
	}
	p.mu.Lock()
	if !p.codes[code] {
		if len(p.codes) >= 32 {
			code = "other"
		}
		p.codes[code] = true
	}
	p.mu.Unlock()
	p.engine.metrics.denials.WithLabelValues(p.spec.Name, code, p.spec.Mode.String()).Inc()
}
