// Package policy runs operator-supplied WebAssembly policies on every
// storage operation: an ordered chain in which each policy allows the
// operation, denies it with a reason, or allows it with a rewritten TTL.
// The module contract is policy ABI v1 (policies/ABI.md); the Go SDK for
// writing policies is policies/sdk.
//
// # Use
//
//	eng, err := policy.NewEngine(ctx, policy.Options{
//		CacheDir: "/var/cache/kvhost/wasm", // compiled code survives restarts
//		Logger:   logger,
//		Metrics:  prometheus.DefaultRegisterer,
//	})
//	err = eng.Load(ctx, specs) // from the host config: SpecConfig.Spec
//	go eng.Watch(ctx)          // reload when a policy file changes
//	// on SIGHUP: eng.Load(ctx, newSpecs) after re-reading the config,
//	// or eng.Reload(ctx) to re-read only the policy files.
//
//	d, err := eng.Evaluate(ctx, policy.Request{Op: policy.OpPut, Key: key,
//		ValueLen: len(v), TTL: ttl, Principal: who, Tenant: tenant})
//	if err != nil {
//		return err // errors.Is(err, kv.ErrPermissionDenied) for denials
//	}
//	ttl = d.TTL // the chain may have rewritten it
//
// The host evaluates every operation: each op of a batch on its own (OpPut
// or OpDelete with InBatch), each key of a multi-get as OpGet, list, count,
// delete-prefix and watch subscriptions with their prefix as Key.
//
// # Errors
//
// A denial is a *DeniedError: errors.Is(err, ErrDenied) and
// errors.Is(err, kv.ErrPermissionDenied) hold, and its text names
// the policy and its reason. A policy that fails (deadline, trap, memory
// cap, crash, malformed answer) fails closed with a *FailureError
// (errors.Is(err, ErrPolicyFailed), which wraps kv.ErrInternal),
// unless its Spec sets FailOpen. Policies in Audit mode never refuse
// anything: their denials and failures are logged and counted. Load
// errors wrap ErrInvalidPolicy and name what is wrong.
//
// # Isolation and cost
//
// Each policy has its own wazero runtime (its memory cap is a runtime
// setting), compiled once through the shared compilation cache, and a
// bounded pool of instances (a channel; an instance serves one evaluation
// at a time). A failed instance is discarded and replaced in the
// background. Load compiles, instantiates, initialises and warms a new
// chain before swapping it in atomically; evaluations in flight finish on
// the chain they started with, and a refused load leaves the running chain
// untouched. Unchanged policies keep their instances across loads.
//
// The host holds each instance's memory to its cap: every memory.grow is
// a call into the host, so a grow that would reach the cap fails the
// evaluation at once, whatever the module would do next, and a grow's
// time counts against the deadline. The memory is address space reserved
// for the cap when the instance starts, so a grow commits pages instead
// of copying the memory (docs/RATIONALE.md, "Policy memory").
//
// Deadlines cost no timer, context or goroutine per call: the module is
// instrumented at load time to call back into the host every few thousand
// loop iterations or function entries, and that callback stops a call past
// its deadline (internal/wasmguard; docs/RATIONALE.md, "Policy
// deadlines"). The chain of the three example policies adds about 2.3 µs
// to an operation (docs/PERFORMANCE.md, "Policies").
//
// # Metrics
//
// With Options.Metrics set: kvhost_policy_evaluation_seconds{policy}
// (latency; its _count is the number of evaluations),
// kvhost_policy_denials_total{policy,code,mode},
// kvhost_policy_failures_total{policy,kind} (kind: timeout, trap,
// out_of_memory, crash, bad_answer, unavailable),
// kvhost_policy_reloads_total{result} and
// kvhost_policy_log_lines_dropped_total{policy}.
//
// # Tooling
//
// RunCases runs a YAML file of table-driven cases through an engine (the
// `kvhost policy test` command), Bench measures the cost per evaluation
// (`kvhost policy bench`), and Engine.Compile fills a compilation cache
// ahead of a server's start (`kvhost policy compile`).
package policy
