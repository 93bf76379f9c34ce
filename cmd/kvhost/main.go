// Command kvhost runs the kvhost key-value store server and talks to it.
//
//	kvhost serve [--config kvhost.yaml]     run the server
//	kvhost get|put|del|del-prefix|batch|list|count|incr|ttl|expire|cas|exists|watch|stats ...
//	kvhost lock NAME -- COMMAND             run a command while holding a distributed lock
//	kvhost snapshot save|restore FILE       save the keys to a snapshot file, or restore them
//	kvhost migrate --from CONFIG --to CONFIG copy every key from one backend to another
//	kvhost plugin verify PATH               run the conformance suite on a plugin binary
//	kvhost policy test|bench ...            check a WebAssembly policy
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

func main() {
	root := &cobra.Command{
		Use:           "kvhost",
		Short:         "A key-value store host with pluggable backends and WebAssembly policies",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(serveCommand(), pluginCommand(), migrateCommand())
	addClientCommands(root)
	addPolicyCommands(root)
	// A wrong command line (an unknown command or flag anywhere) exits 2,
	// like the client commands' own usage errors.
	root.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usageError(cmd, "unknown command %q", args[0])
		}
		return nil
	}
	root.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return usageError(cmd, "%v", err) })
	for _, c := range root.Commands() {
		if c.Name() == "serve" || c.Name() == "plugin" || c.Name() == "policy" {
			for _, sub := range append([]*cobra.Command{c}, c.Commands()...) {
				sub.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return usageError(cmd, "%v", err) })
			}
		}
	}
	if err := root.Execute(); err != nil {
		// Sentinel messages already start with "kvhost: "; say it once.
		fmt.Fprintln(os.Stderr, "kvhost:", strings.TrimPrefix(err.Error(), "kvhost: "))
		var ec exitCoder
		if errors.As(err, &ec) {
			os.Exit(ec.ExitCode())
		}
		os.Exit(1)
	}
}

// exitCoder is an error that chooses the process exit code.
type exitCoder interface{ ExitCode() int }
