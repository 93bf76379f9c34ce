package main

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/kvhost/kvhost/client"
	"github.com/kvhost/kvhost/kv"
)

// exitNotSwapped is kvhost cas's exit status when the key did not hold
// what --expect or --expect-absent said, and nothing was written.
const exitNotSwapped = 5

// casJSON is kvhost cas's -o json output: the key as written, or as found.
type casJSON struct {
	Swapped bool `json:"swapped"`
	// Exists says whether a live key is there (always, after a swap).
	Exists bool `json:"exists"`
	entryJSON
}

func casCommand() *cobra.Command {
	var (
		expect       string
		expectAbsent bool
		ttl          time.Duration
	)
	cmd := &cobra.Command{
		Use:   "cas KEY (--expect OLD | --expect-absent) NEW",
		Short: "Store NEW under KEY only if KEY holds OLD (compare-and-swap by value)",
		Long: `
Atomically: when KEY holds exactly the bytes OLD (--expect OLD), or does
not exist (--expect-absent), NEW replaces it; otherwise nothing is written
and the command exits with status 5, saying what KEY holds. Of concurrent
swaps from the same OLD exactly one succeeds. NEW - reads the new value
from standard input. --ttl makes the new value expire; a swap without it
clears an earlier expiry. -o json prints swapped, exists, key, version,
expires_at and, when not swapped, the value found.

Exit status 5: the key did not hold what was expected (not an error: the
answer is no).`,
		Example: `  kvhost cas leader --expect-absent node-1 --ttl 15s
  kvhost cas config/mode --expect blue green
  n=$(kvhost get hits); kvhost cas hits --expect "$n" $((n+1))`,
		Args: nargs(2, 2),
	}
	k := newConn(cmd, true)
	cmd.Flags().StringVar(&expect, "expect", "", "swap only if the key holds exactly this `value`")
	cmd.Flags().BoolVar(&expectAbsent, "expect-absent", false, "swap only if the key does not exist")
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "expire the new value after this long (e.g. 30s, 1h)")
	cmd.RunE = k.run(func(cmd *cobra.Command, args []string) error {
		var want client.Expectation
		switch hasValue := cmd.Flags().Changed("expect"); {
		case hasValue && expectAbsent:
			return usageError(cmd, "--expect and --expect-absent exclude each other")
		case hasValue:
			want = client.ExpectValue([]byte(expect))
		case expectAbsent:
			want = client.ExpectAbsent()
		default:
			return usageError(cmd, "say what KEY must hold: --expect OLD or --expect-absent")
		}
		value := []byte(args[1])
		if args[1] == "-" {
			var err error
			if value, err = io.ReadAll(cmd.InOrStdin()); err != nil {
				return fmt.Errorf("reading the value from stdin: %w", err)
			}
		}
		var opts []client.WriteOption
		if ttl != 0 {
			opts = append(opts, client.WithTTL(ttl))
		}
		ctx, cancel := k.ctx(cmd)
		defer cancel()
		swapped, cur, err := k.c.CompareAndSwap(ctx, args[0], want, value, opts...)
		if err != nil {
			return err
		}
		return k.swapped(args[0], swapped, cur)
	})
	return cmd
}

// swapped prints a compare-and-swap's answer; not swapped is exit status
// exitNotSwapped, with a line that says what the key holds.
func (k *conn) swapped(key string, swapped bool, cur kv.Entry) error {
	exists := cur.Version != 0
	if k.json {
		out := casJSON{Swapped: swapped, Exists: exists, entryJSON: toJSON(cur, !swapped && exists)}
		out.Key = key
		if err := k.emit(out); err != nil {
			return err
		}
	} else if swapped {
		if cur.ExpiresAt.IsZero() {
			return k.printf("OK, version %d\n", cur.Version)
		}
		return k.printf("OK, version %d, %s\n", cur.Version, expiry(cur.ExpiresAt))
	}
	if swapped {
		return nil
	}
	msg := fmt.Sprintf("not swapped: key %q does not exist", key)
	if exists {
		msg = fmt.Sprintf("not swapped: key %q holds %s (version %d)", key, display(cur.Value), cur.Version)
	}
	return &cliError{msg: msg, code: exitNotSwapped}
}

func existsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "exists KEY",
		Short: "Say whether KEY exists, without reading its value",
		Long: `
Prints the key's version and expiry and exits 0 when it exists; exits 3
when it does not (or has expired). The value never leaves the server,
however large. -o json prints key, exists, version and expires_at.`,
		Example: `  kvhost exists lock/leader && echo held`,
		Args:    nargs(1, 1),
	}
	k := newConn(cmd, true)
	cmd.RunE = k.run(func(cmd *cobra.Command, args []string) error {
		ctx, cancel := k.ctx(cmd)
		defer cancel()
		e, found, err := k.c.Exists(ctx, args[0])
		if err != nil {
			return err
		}
		if k.json {
			out := struct {
				Exists bool `json:"exists"`
				entryJSON
			}{found, toJSON(e, false)}
			out.Key = args[0]
			if err := k.emit(out); err != nil {
				return err
			}
		} else if found {
			if err := k.printf("%s exists, version %d, %s\n", strconv.Quote(args[0]), e.Version, expiry(e.ExpiresAt)); err != nil {
				return err
			}
		}
		if !found {
			return keyNotFound(args[0], kv.ErrNotFound)
		}
		return nil
	})
	return cmd
}
