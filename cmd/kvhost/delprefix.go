package main

import "github.com/spf13/cobra"

func delPrefixCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "del-prefix PREFIX",
		Short: "Delete every key under PREFIX and print how many",
		Long: `
The deletion is one operation on the server, which the policies see as one
delete_prefix request on PREFIX (not one per key): a policy may refuse it
as a whole. An empty PREFIX, which would delete everything, is refused.`,
		Args: nargs(1, 1),
	}
	k := newConn(cmd, true)
	cmd.RunE = k.run(func(cmd *cobra.Command, args []string) error {
		if args[0] == "" {
			return usageError(cmd, "PREFIX is empty, which would delete every key")
		}
		ctx, cancel := k.ctx(cmd)
		defer cancel()
		n, err := k.c.DeletePrefix(ctx, args[0])
		if err != nil {
			return err
		}
		if k.json {
			return k.emit(struct {
				Prefix  string `json:"prefix"`
				Deleted int64  `json:"deleted"`
			}{args[0], n})
		}
		keys := "keys"
		if n == 1 {
			keys = "key"
		}
		return k.printf("deleted %d %s under %q\n", n, keys, args[0])
	})
	return cmd
}
