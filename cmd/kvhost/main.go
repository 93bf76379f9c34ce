// Command kvhost runs the kvhost key-value store server and talks to it.
//
//	kvhost serve [--config kvhost.yaml]     run the server
//	kvhost get|put|del|list|count|incr|ttl|expire|watch|stats ...
//	kvhost plugin verify PATH               run the conformance suite on a plugin binary
//	kvhost policy test|bench ...            check a WebAssembly policy
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	root := &cobra.Command{
		Use:           "kvhost",
		Short:         "A key-value store host with pluggable backends and WebAssembly policies",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(serveCommand(), pluginCommand())
	addClientCommands(root)
	addPolicyCommands(root)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "kvhost:", err)
		var ec exitCoder
		if errors.As(err, &ec) {
			os.Exit(ec.ExitCode())
		}
		os.Exit(1)
	}
}

// exitCoder is an error that chooses the process exit code.
type exitCoder interface{ ExitCode() int }
