package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/kvhost/kvhost/pluginapi/conformance"
)

func pluginCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "plugin", Short: "Work with backend plugins"}
	var sets []string
	var verbose bool
	var run string
	verify := &cobra.Command{
		Use:   "verify PATH",
		Short: "Run the backend conformance suite against a plugin binary",
		Long: `Run the backend conformance suite against a plugin binary, over the real
go-plugin wire, one fresh plugin process per test.

Settings are passed with --set key=value; the text {tmp} in a value becomes
a fresh temporary directory for each test, for backends that keep files:

  kvhost plugin verify bin/kvhost-plugin-sqlite --set path={tmp}/kv.db

Exit status 0 means the plugin passed every test.`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			path, err := filepath.Abs(args[0])
			if err != nil {
				return err
			}
			if fi, err := os.Stat(path); err != nil {
				return fmt.Errorf("plugin %s: %w", path, err)
			} else if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
				return fmt.Errorf("plugin %s is not an executable file", path)
			}
			settings := map[string]string{}
			for _, s := range sets {
				k, v, ok := strings.Cut(s, "=")
				if !ok || k == "" {
					return fmt.Errorf("--set %q: want key=value", s)
				}
				settings[k] = v
			}
			runVerify(path, settings, verbose, run)
			return nil
		},
	}
	verify.Flags().StringArrayVar(&sets, "set", nil, "backend setting key=value (repeatable; {tmp} is a per-test temp dir)")
	verify.Flags().BoolVarP(&verbose, "verbose", "v", false, "print every test")
	verify.Flags().StringVar(&run, "run", "", "run only tests matching this regular expression (go test -run syntax)")
	cmd.AddCommand(verify)
	return cmd
}

// runVerify runs the suite with the standard test runner and exits with
// its status.
func runVerify(path string, settings map[string]string, verbose bool, run string) {
	testing.Init()
	_ = flag.Set("test.v", fmt.Sprint(verbose))
	if run != "" {
		_ = flag.Set("test.run", "Conformance/("+run+")")
	}
	_ = flag.CommandLine.Parse(nil) // the suite's flags are set above; kvhost's own were parsed by cobra
	tests := []testing.InternalTest{{
		Name: "Conformance",
		F: func(t *testing.T) {
			conformance.RunPlugin(t, path, func(t testing.TB) map[string]string {
				out := make(map[string]string, len(settings))
				var dir string
				for k, v := range settings {
					if strings.Contains(v, "{tmp}") && dir == "" {
						dir = t.TempDir()
					}
					out[k] = strings.ReplaceAll(v, "{tmp}", dir)
				}
				return out
			})
		},
	}}
	testing.Main(matchAll, tests, nil, nil)
	os.Exit(0)
}

func matchAll(pat, str string) (bool, error) { return regexp.MatchString(pat, str) }
