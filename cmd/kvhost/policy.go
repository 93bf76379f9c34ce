package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/kvhost/kvhost/host"
	"github.com/kvhost/kvhost/host/config"
	"github.com/kvhost/kvhost/host/policy"
	"github.com/kvhost/kvhost/kv"
)

// policyGuard puts the policy engine at the host's checkpoint.
type policyGuard struct{ e *policy.Engine }

var _ host.ChangingGuard = policyGuard{}

// Changed is closed when a new chain takes effect.
func (g policyGuard) Changed() <-chan struct{} { return g.e.Loaded() }

func (g policyGuard) Check(ctx context.Context, c *host.Check) error {
	if !c.Op.Policy() {
		return fmt.Errorf("policy guard: %w: operation %q has no policy ABI code", kv.ErrInternal, c.Op)
	}
	d, err := g.e.Evaluate(ctx, policy.Request{
		Op: c.Op, Key: c.Key, Value: c.Value, ValueLen: len(c.Value), TTL: c.TTL,
		Principal: c.Identity.Principal, Tenant: c.Identity.Tenant, InBatch: c.InBatch,
	})
	if err != nil {
		return err
	}
	c.TTL = d.TTL
	return nil
}

// newPolicyGuard loads the configured policy chain and watches its files
// (modules and config_file files) for changes. On SIGHUP it reads the
// configuration file at cfgPath again and loads its policies section, so
// inline policy configuration, new policies and removed ones take effect
// without a restart; a section that does not load is refused and the
// running chain stays. The engine runs even with no policies (an empty
// chain costs tens of nanoseconds), so that SIGHUP can add some.
func newPolicyGuard(ctx context.Context, cfg *config.File, cfgPath string, log *slog.Logger, reg prometheus.Registerer) (host.Guard, func(), error) {
	specs, err := cfg.PolicySpecs()
	if err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(cfg.PolicyCacheDir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("policy cache: %w", err)
	}
	e, err := policy.NewEngine(ctx, policy.Options{CacheDir: cfg.PolicyCacheDir, Logger: log, Metrics: reg})
	if err != nil {
		return nil, nil, err
	}
	if err := e.Load(ctx, specs); err != nil {
		_ = e.Close(context.Background())
		return nil, nil, err
	}
	wctx, stop := context.WithCancel(ctx)
	go func() {
		if err := e.Watch(wctx); err != nil {
			log.Error("policy file watch stopped; reload with SIGHUP", "error", err)
		}
	}()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for {
			select {
			case <-wctx.Done():
				return
			case <-hup:
				log.Info("policy reload on SIGHUP", "config", cfgPath)
				if err := reloadPolicies(wctx, e, cfgPath); err != nil {
					log.Error("policy reload on SIGHUP refused; the running policies stay", "config", cfgPath, "error", err)
				} else {
					log.Info("policies reloaded on SIGHUP", "policies", e.Policies())
				}
			}
		}
	}()
	log.Info("policies loaded", "policies", e.Policies())
	return policyGuard{e}, func() {
		signal.Stop(hup)
		stop()
		_ = e.Close(context.Background())
	}, nil
}

// reloadPolicies loads the policies section of the configuration file
// again, or, without a file, re-reads the running policies' files.
func reloadPolicies(ctx context.Context, e *policy.Engine, cfgPath string) error {
	if cfgPath == "" {
		return e.Reload(ctx)
	}
	f, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	specs, err := f.PolicySpecs()
	if err != nil {
		return err
	}
	return e.Load(ctx, specs)
}

func addPolicyCommands(root *cobra.Command) {
	cmd := &cobra.Command{Use: "policy", Short: "Test and measure WebAssembly policies"}
	var cfgPath, name, cacheDir string
	var timeout time.Duration
	load := func(ctx context.Context, wasm string) (*policy.Engine, error) {
		var cfgJSON []byte
		if cfgPath != "" {
			data, err := os.ReadFile(cfgPath)
			if err != nil {
				return nil, err
			}
			if cfgJSON, err = policy.ConfigJSON(data); err != nil {
				return nil, fmt.Errorf("policy config %s: %w", cfgPath, err)
			}
		}
		e, err := policy.NewEngine(ctx, policy.Options{CacheDir: cacheDir, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
		if err != nil {
			return nil, err
		}
		if err := e.Load(ctx, []policy.Spec{{Name: name, Path: wasm, Config: cfgJSON, Timeout: timeout}}); err != nil {
			_ = e.Close(ctx)
			return nil, err
		}
		return e, nil
	}
	test := &cobra.Command{
		Use:   "test POLICY.wasm CASES.yaml",
		Short: "Run table-driven cases through a policy, with the engine the server uses",
		Long: `Run table-driven cases through a policy, with the engine the server uses.

CASES.yaml lists requests and the decisions expected of them:

  defaults: {principal: alice, tenant: acme}
  cases:
    - name: sessions must expire
      request: {op: put, key: "session:1"}
      expect: {allow: false, policy: ttlrules, reason_contains: "TTL"}

Exit status 0 when every case passes, 1 otherwise.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cases, err := os.ReadFile(args[1])
			if err != nil {
				return err
			}
			e, err := load(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			defer e.Close(context.Background())
			rep, err := policy.RunCases(cmd.Context(), e, cases)
			if err != nil {
				return fmt.Errorf("cases %s: %w", args[1], err)
			}
			if err := rep.Write(cmd.OutOrStdout()); err != nil {
				return err
			}
			if rep.Failed > 0 {
				return fmt.Errorf("%d of %d cases failed", rep.Failed, rep.Failed+rep.Passed)
			}
			return nil
		},
	}
	test.Flags().StringVar(&cfgPath, "config", "", "optional: the policy's configuration, YAML or JSON (default: none, the policy gets null)")
	test.Flags().StringVar(&name, "name", "", "the policy's name in decisions (default: the file name without .wasm)")
	test.Flags().DurationVar(&timeout, "timeout", policy.DefaultTimeout, "the deadline of one evaluation, as the policy's timeout in the server")
	test.Flags().StringVar(&cacheDir, "cache-dir", "", "keep compiled policies in this directory, like the server's policy_cache_dir (default: compile every time)")
	var dur time.Duration
	var conc, count int
	bench := &cobra.Command{
		Use:   "bench POLICY.wasm [CASES.yaml]",
		Short: "Measure the cost of one evaluation of a policy",
		Long: `Measure the cost of one evaluation of a policy, with the engine the server
uses, on the requests of CASES.yaml (default: one put of a short key).

It prints the counts of allowed, denied and failed evaluations, the failed
ones by kind (timeout, trap, out_of_memory, crash, bad_answer), the
latency percentiles, and the slowest evaluations of each kind with their
requests: a policy that fails or stalls now and then shows it here before
it shows in a server.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := load(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			defer e.Close(context.Background())
			opts := policy.BenchOptions{Duration: dur, Concurrency: conc, Evaluations: count}
			if count > 0 && !cmd.Flags().Changed("duration") {
				opts.Duration = 0 // until the count is reached
			}
			if len(args) == 2 {
				data, err := os.ReadFile(args[1])
				if err != nil {
					return err
				}
				f, err := policy.ParseCases(data)
				if err != nil {
					return fmt.Errorf("cases %s: %w", args[1], err)
				}
				for _, c := range f.Cases {
					req, err := f.Request(c)
					if err != nil {
						return err
					}
					opts.Requests = append(opts.Requests, req)
				}
			}
			res, err := policy.Bench(cmd.Context(), e, opts)
			if err != nil {
				return err
			}
			_, err = io.WriteString(cmd.OutOrStdout(), res.String()+"\n")
			return err
		},
	}
	bench.Flags().StringVar(&cfgPath, "config", "", "optional: the policy's configuration, YAML or JSON (default: none, the policy gets null)")
	bench.Flags().StringVar(&name, "name", "", "the policy's name (default: the file name without .wasm)")
	bench.Flags().DurationVar(&dur, "duration", time.Second, "how long to measure")
	bench.Flags().IntVar(&count, "evaluations", 0, "measure this many evaluations (without --duration: however long they take)")
	bench.Flags().IntVar(&conc, "concurrency", 1, "concurrent evaluations")
	bench.Flags().DurationVar(&timeout, "timeout", policy.DefaultTimeout, "the deadline of one evaluation; evaluations past it count as failed")
	bench.Flags().StringVar(&cacheDir, "cache-dir", "", "keep compiled policies in this directory, like the server's policy_cache_dir (default: compile every time)")
	compile := &cobra.Command{
		Use:   "compile --cache-dir DIR POLICY.wasm...",
		Short: "Compile policies into a server's policy_cache_dir ahead of its start",
		Long: `Compile policies into a compilation cache directory, without running them.

Pointed at the directory a server's policy_cache_dir names, it lets the
server's start (or SIGHUP reload) read compiled code instead of compiling,
which takes seconds per policy. Compiled code is keyed by the module's
bytes, the engine's version and the CPU: it is reused only where it fits.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cacheDir == "" {
				return fmt.Errorf("--cache-dir is required")
			}
			e, err := policy.NewEngine(cmd.Context(), policy.Options{CacheDir: cacheDir, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
			if err != nil {
				return err
			}
			defer e.Close(context.Background())
			return e.Compile(cmd.Context(), args...)
		},
	}
	compile.Flags().StringVar(&cacheDir, "cache-dir", "", "the compilation cache directory (a server's policy_cache_dir)")
	cmd.AddCommand(test, bench, compile)
	root.AddCommand(cmd)
}
