package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi"
	"github.com/kvhost/kvhost/pluginapi/conformance"
)

// verifyFlags are the flags of kvhost plugin verify.
type verifyFlags struct {
	sets      []string
	verbose   bool
	run       string
	namespace string
	retention int
}

func pluginCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "plugin", Short: "Work with backend plugins"}
	var f verifyFlags
	verify := &cobra.Command{
		Use:   "verify PATH",
		Short: "Run the backend conformance suite against a plugin binary",
		Long: `Run the backend conformance suite against a plugin binary, over the real
go-plugin wire, one fresh plugin process per rule.

The plugin is started once first: if it cannot start (a wrong path, a
failed handshake, another protocol version, settings it refuses) that is
reported once and verify exits 1. Then each rule of the contract is a
test named group/rule (core/..., ttl/..., watch/..., watch-history/...);
a failing test prints what the plugin did and the rule it broke, and a
summary of the broken rules ends the run. Exit status 0 means the plugin
kept every rule it was tested on.

Settings are passed with --set key=value; the text {tmp} in a value becomes
a fresh temporary directory for each test, for backends that keep files.
The memory plugin needs no settings; the SQLite plugin takes its file:

  kvhost plugin verify bin/kvhost-plugin-sqlite --set path={tmp}/kv.db

--retention N tells the suite the history the plugin keeps (as its own
settings configure it), so that it can check compaction. --namespace NS
is for plugins whose every process shares one store (a database server):
the suite then writes only under NS.`,
		Args: nargs(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runVerify(cmd, args[0], f)
		},
	}
	verify.Flags().StringArrayVar(&f.sets, "set", nil, "backend setting key=value (repeatable; {tmp} is a per-test temp dir)")
	verify.Flags().BoolVarP(&f.verbose, "verbose", "v", false, "print every rule as it is checked, and why each skipped one was skipped")
	verify.Flags().StringVar(&f.run, "run", "", "check only the rules whose name (group/rule) matches this regular expression")
	verify.Flags().StringVar(&f.namespace, "namespace", "", "write only under this key prefix, in a store the plugin processes share")
	verify.Flags().IntVar(&f.retention, "retention", 0, "revisions of history the plugin keeps, to check compaction")
	cmd.AddCommand(verify)
	return cmd
}

// runVerify checks the command line, starts the plugin once, then runs the
// suite with the standard test runner and exits with its status.
func runVerify(cmd *cobra.Command, arg string, f verifyFlags) error {
	path, err := filepath.Abs(arg)
	if err != nil {
		return err
	}
	settings := map[string]string{}
	for _, s := range f.sets {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return usageError(cmd, "--set %q: want key=value", s)
		}
		settings[k] = v
	}
	opts := []conformance.Option{}
	if f.run != "" {
		re, err := regexp.Compile(f.run)
		if err != nil {
			return usageError(cmd, "--run: %v", err)
		}
		opts = append(opts, conformance.WithFilter(re))
	}
	if f.namespace != "" {
		opts = append(opts, conformance.WithNamespace(f.namespace))
	}
	if f.retention < 0 {
		return usageError(cmd, "--retention %d: want a number of revisions", f.retention)
	}
	if f.retention > 0 {
		opts = append(opts, conformance.WithRetention(f.retention))
	}
	if err := probePlugin(path, settings); err != nil {
		return err
	}
	suite(path, settings, f.verbose, opts)
	return nil
}

// expand replaces {tmp} in setting values with dir.
func expand(settings map[string]string, dir func() string) map[string]string {
	out := make(map[string]string, len(settings))
	for k, v := range settings {
		if strings.Contains(v, "{tmp}") {
			v = strings.ReplaceAll(v, "{tmp}", dir())
		}
		out[k] = v
	}
	return out
}

// probePlugin starts the plugin once and asks for its Info, so that a
// plugin that cannot start is reported once, with the reason, and not by
// every test.
func probePlugin(path string, settings map[string]string) error {
	tmp, err := os.MkdirTemp("", "kvhost-verify-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	logs := &tailWriter{max: 10, from: filepath.Base(path)}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := pluginapi.Start(ctx, pluginapi.StartConfig{
		Path:     path,
		Settings: expand(settings, func() string { return tmp }),
		Logger:   hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: logs}),
	})
	if err != nil {
		why := ""
		if errors.Is(err, kv.ErrUnavailable) { // the process, not the backend, failed
			why = logs.tail()
		}
		return fmt.Errorf("plugin verify: the plugin cannot start, so no rule was checked: %w%s", err, why)
	}
	defer p.Kill()
	info, err := p.Info(ctx)
	if err != nil {
		return fmt.Errorf("plugin verify: the plugin started but Info failed, so no rule was checked: %w", err)
	}
	fmt.Printf("kvhost plugin verify: %s %s (%s), protocol v%d, capabilities %+v\n",
		info.Name, info.Version, path, info.ProtocolVersion, info.Capabilities)
	return nil
}

// tailWriter keeps the last lines the plugin wrote to its stderr (which
// go-plugin logs under the binary's name) and the line saying how its
// process exited, to explain a plugin that exits before its handshake.
type tailWriter struct {
	mu    sync.Mutex
	max   int
	from  string
	lines []string
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		_, l, _ = strings.Cut(l, " ") // the timestamp
		if strings.Contains(l, "] "+w.from+": ") || strings.Contains(l, "plugin process exited") {
			w.lines = append(w.lines, strings.TrimSpace(l))
		}
	}
	if over := len(w.lines) - w.max; over > 0 {
		w.lines = w.lines[over:]
	}
	return len(p), nil
}

func (w *tailWriter) tail() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.lines) == 0 {
		return ""
	}
	return "\nthe plugin's last words:\n  " + strings.Join(w.lines, "\n  ")
}

// suite runs the conformance suite as the test "Conformance" and exits.
func suite(path string, settings map[string]string, verbose bool, opts []conformance.Option) {
	testing.Init()
	_ = flag.Set("test.v", fmt.Sprint(verbose))
	_ = flag.CommandLine.Parse(nil) // kvhost's own flags were parsed by cobra
	var r results
	opts = append(opts, conformance.WithReport(r.add))
	tests := []testing.InternalTest{{
		Name: "Conformance",
		F: func(t *testing.T) {
			t.Cleanup(func() { r.summary(os.Stdout, path) }) // after every rule
			conformance.RunPlugin(t, path, func(t testing.TB) map[string]string {
				return expand(settings, sync.OnceValue(t.TempDir))
			}, opts...)
		},
	}}
	testing.Main(func(pat, str string) (bool, error) { return regexp.MatchString(pat, str) }, tests, nil, nil)
	os.Exit(0)
}

// results collects how each rule's test ended, for the summary.
type results struct {
	mu      sync.Mutex
	broken  []conformance.Rule
	passed  int
	skipped int
}

func (r *results) add(rule conformance.Rule, o conformance.Outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch o {
	case conformance.Failed:
		r.broken = append(r.broken, rule)
	case conformance.Passed:
		r.passed++
	default:
		r.skipped++
	}
}

func (r *results) summary(w io.Writer, path string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.broken) == 0 {
		fmt.Fprintf(w, "kvhost plugin verify: %s keeps all %d rules checked (%d skipped; -v says why)\n", path, r.passed, r.skipped)
		return
	}
	fmt.Fprintf(w, "kvhost plugin verify: %s breaks %d of %d rules checked:\n", path, len(r.broken), len(r.broken)+r.passed)
	for _, rule := range r.broken {
		fmt.Fprintf(w, "  %s\n      %s\n", rule.Name, rule.Says)
	}
}
