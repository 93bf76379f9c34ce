package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/kvhost/kvhost/client"
	"github.com/kvhost/kvhost/kv"
)

// Exit codes of the client commands. main exits with an error's ExitCode.
const (
	exitFailure  = 1 // the command ran and failed
	exitUsage    = 2 // the command line is wrong
	exitNotFound = 3 // the key does not exist (get, ttl, expire)
)

const clientHelpFooter = `
Connection: --addr (or KVHOST_ADDR, default ` + client.DefaultAddr + `); --token (or
KVHOST_TOKEN) authenticates. A loopback address is plaintext by default and
any other uses TLS with the system's roots; --tls-ca FILE trusts a private
CA, --tls forces TLS, --insecure forces plaintext.

Output: human-readable by default; -o json prints one JSON object per line.
A value is a JSON string when it is valid UTF-8, and otherwise base64 with
"value_base64": true beside it. Instants are RFC 3339 in UTC, null when the
key never expires.

Exit status: 0 on success; 1 when the command failed (the server refused it,
a condition did not hold, the server could not be reached), with one line on
stderr; 2 when the command line is wrong; 3 when the key does not exist;
cas exits 5 when the key did not hold what was expected, lock 4 when the
lock was lost. --addr also takes unix:///path/to/kvhost.sock (listen_unix).`

// addClientCommands adds the commands that talk to a running server.
func addClientCommands(root *cobra.Command) {
	root.AddGroup(&cobra.Group{ID: "client", Title: "Client commands (talk to a running server):"})
	for _, cmd := range []*cobra.Command{
		getCommand(), putCommand(), delCommand(), delPrefixCommand(), batchCommand(), listCommand(), countCommand(), incrCommand(),
		ttlCommand(), expireCommand(), watchCommand(), statsCommand(), lockCommand(), snapshotCommand(), casCommand(), existsCommand(),
	} {
		cmd.GroupID = "client"
		cmd.Long = cmd.Short + ".\n" + strings.TrimRight(cmd.Long, "\n") + "\n" + clientHelpFooter
		root.AddCommand(cmd)
	}
}

// cliError is an error with the exit code it stands for. Its message is
// printed after "kvhost: " by main, so it does not start with that itself.
type cliError struct {
	msg  string
	code int
	err  error
}

func (e *cliError) Error() string { return e.msg }
func (e *cliError) Unwrap() error { return e.err }
func (e *cliError) ExitCode() int { return e.code }

func usageError(cmd *cobra.Command, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	return &cliError{
		msg:  fmt.Sprintf("%s: %s (see '%s --help')", cmd.Name(), msg, cmd.CommandPath()),
		code: exitUsage,
		err:  errors.New(msg),
	}
}

// keyNotFound is the error of a missing key, whatever the server said.
func keyNotFound(key string, err error) error {
	return &cliError{msg: fmt.Sprintf("key %q not found", key), code: exitNotFound, err: err}
}

// nargs checks the number of positional arguments with a usage error.
func nargs(min, max int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) >= min && len(args) <= max {
			return nil
		}
		return usageError(cmd, "got %d argument(s); usage: %s", len(args), cmd.UseLine())
	}
}

// conn holds the flags every client command shares and, while a command
// runs, its client and output.
type conn struct {
	addr     string
	token    string
	timeout  time.Duration
	output   string
	insecure bool
	tls      bool
	tlsCA    string

	c    *client.Client
	out  io.Writer
	json bool
}

// newConn registers the shared flags on cmd, makes its command-line errors
// usage errors, and returns the conn its RunE uses.
func newConn(cmd *cobra.Command, withTimeout bool) *conn {
	k := &conn{}
	f := cmd.Flags()
	// The environment is read when the command runs, not used as the
	// flag's default, so that --help never prints a token.
	f.StringVar(&k.addr, "addr", client.DefaultAddr, "server address (env KVHOST_ADDR)")
	f.StringVar(&k.token, "token", "", "bearer token (env KVHOST_TOKEN)")
	if withTimeout {
		f.DurationVar(&k.timeout, "timeout", 10*time.Second, "deadline of each call to the server (0: none)")
	}
	f.StringVarP(&k.output, "output", "o", "text", "output format: text or json")
	f.BoolVar(&k.tls, "tls", false, "use TLS even to a loopback address")
	f.StringVar(&k.tlsCA, "tls-ca", "", "PEM `file` of the CA that signed the server's certificate (implies --tls)")
	f.BoolVar(&k.insecure, "insecure", false, "use plaintext even to a non-loopback address")
	cmd.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return usageError(cmd, "%v", err) })
	return k
}

// run wraps a command body: it connects, runs fn and turns its error into
// one clear line with an exit code.
func (k *conn) run(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := k.open(cmd); err != nil {
			return err
		}
		defer k.c.Close()
		return k.explain(fn(cmd, args))
	}
}

func (k *conn) open(cmd *cobra.Command) error {
	if !cmd.Flags().Changed("addr") {
		if v := os.Getenv("KVHOST_ADDR"); v != "" {
			k.addr = v
		}
	}
	if !cmd.Flags().Changed("token") {
		k.token = os.Getenv("KVHOST_TOKEN")
	}
	switch k.output {
	case "text", "json":
		k.json = k.output == "json"
	default:
		return usageError(cmd, "--output must be text or json, not %q", k.output)
	}
	if k.insecure && (k.tls || k.tlsCA != "") {
		return usageError(cmd, "--insecure excludes --tls and --tls-ca")
	}
	opts := []client.Option{client.WithToken(k.token)}
	switch {
	case k.insecure:
		opts = append(opts, client.WithInsecure())
	case k.tlsCA != "":
		pem, err := os.ReadFile(k.tlsCA)
		if err != nil {
			return &cliError{msg: fmt.Sprintf("--tls-ca: %v", err), code: exitFailure, err: err}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return &cliError{msg: fmt.Sprintf("--tls-ca: %s holds no PEM certificate", k.tlsCA), code: exitFailure}
		}
		opts = append(opts, client.WithTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
	case k.tls:
		opts = append(opts, client.WithTLS(&tls.Config{MinVersion: tls.VersionTLS12}))
	}
	c, err := client.New(k.addr, opts...)
	if err != nil {
		return &cliError{msg: trim(err), code: exitUsage, err: err}
	}
	k.c, k.out = c, cmd.OutOrStdout()
	return nil
}

// ctx returns the context of one call to the server, bounded by --timeout.
func (k *conn) ctx(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	if k.timeout > 0 {
		return context.WithTimeout(cmd.Context(), k.timeout)
	}
	return context.WithCancel(cmd.Context())
}

// explain turns a client error into one line that says what to do about
// it where there is something to do.
func (k *conn) explain(err error) error {
	var ce *cliError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ce):
		return err
	case errors.Is(err, context.DeadlineExceeded):
		return &cliError{msg: fmt.Sprintf("no answer from %s within --timeout %v: %s", k.addr, k.timeout, trim(err)), code: exitFailure, err: err}
	case errors.Is(err, client.ErrUnavailable):
		return &cliError{msg: fmt.Sprintf("server %s unavailable: %s", k.addr, trim(err)), code: exitFailure, err: err}
	case errors.Is(err, client.ErrUnauthenticated) && k.token == "":
		return &cliError{msg: trim(err) + " (set --token or KVHOST_TOKEN)", code: exitFailure, err: err}
	}
	return &cliError{msg: trim(err), code: exitFailure, err: err}
}

// trim drops the "kvhost: " that sentinel messages start with; main
// prints its own.
func trim(err error) string {
	return strings.TrimPrefix(err.Error(), "kvhost: ")
}

// emit prints one JSON object on a line.
func (k *conn) emit(v any) error {
	enc := json.NewEncoder(k.out)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// printf prints human output.
func (k *conn) printf(format string, args ...any) error {
	_, err := fmt.Fprintf(k.out, format, args...)
	return err
}

// entryJSON is an entry in -o json output.
type entryJSON struct {
	Key         string     `json:"key"`
	Value       *string    `json:"value,omitempty"`
	ValueBase64 bool       `json:"value_base64,omitempty"`
	Version     int64      `json:"version"`
	ExpiresAt   *time.Time `json:"expires_at"`
	// Revision, in get and list output, is the store revision the read
	// was served at.
	Revision int64 `json:"revision,omitempty"`
}

func toJSON(e kv.Entry, withValue bool) entryJSON {
	out := entryJSON{Key: e.Key, Version: e.Version, ExpiresAt: instant(e.ExpiresAt)}
	if withValue {
		out.Value, out.ValueBase64 = jsonValue(e.Value)
	}
	return out
}

// jsonValue is a value as a JSON string: itself when it is valid UTF-8,
// base64 (and true) when it is not.
func jsonValue(v []byte) (*string, bool) {
	if utf8.Valid(v) {
		s := string(v)
		return &s, false
	}
	s := base64.StdEncoding.EncodeToString(v)
	return &s, true
}

// instant is an expiry for JSON: nil (null) for none, else UTC.
func instant(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// display shows a key or value on one line of human output: as itself
// when it is printable UTF-8, Go-quoted otherwise (so a tab or newline
// inside cannot break the line apart, and an empty value shows as "").
func display(b []byte) string {
	if len(b) > 0 && utf8.Valid(b) && strings.IndexFunc(string(b), func(r rune) bool { return !unicode.IsPrint(r) }) < 0 {
		return string(b)
	}
	return strconv.Quote(string(b))
}

// expiry describes an expiry for humans.
func expiry(t time.Time) string {
	if t.IsZero() {
		return "no expiry"
	}
	left := max(time.Until(t), 0)
	if left >= 10*time.Second {
		left = left.Round(time.Second)
	} else {
		left = left.Round(time.Millisecond)
	}
	return fmt.Sprintf("expires in %v (at %s)", left, t.UTC().Format("2006-01-02T15:04:05.000Z07:00"))
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// condition reads --if-version (and --if-absent where the command has it).
func condition(cmd *cobra.Command, ifVersion int64, ifAbsent bool) ([]client.WriteOption, error) {
	hasVersion := cmd.Flags().Changed("if-version")
	switch {
	case ifAbsent && hasVersion:
		return nil, usageError(cmd, "--if-absent and --if-version exclude each other")
	case ifAbsent:
		return []client.WriteOption{client.IfAbsent()}, nil
	case hasVersion:
		return []client.WriteOption{client.IfVersion(ifVersion)}, nil
	}
	return nil, nil
}

func getCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "get KEY",
		Short: "Print the value stored under KEY",
		Long: `
The value is printed exactly as stored; on a terminal a newline is added
after a value that lacks one. -o json prints key, value, version,
expires_at and the store revision the read was served at.
--linearizable reads past a host's shared read cache (cache.shared), so
that no acknowledged write can be missing; elsewhere every read is.`,
		Args: nargs(1, 1),
	}
	k := newConn(cmd, true)
	linearizable := cmd.Flags().Bool("linearizable", false, "read at the backend, past a shared read cache")
	cmd.RunE = k.run(func(cmd *cobra.Command, args []string) error {
		ctx, cancel := k.ctx(cmd)
		defer cancel()
		var opts []client.ReadOption
		if *linearizable {
			opts = append(opts, client.Linearizable())
		}
		r, err := k.c.Read(ctx, args[0], opts...)
		if err != nil {
			return err
		}
		if !r.Found {
			return keyNotFound(args[0], fmt.Errorf("%w: %q", client.ErrNotFound, args[0]))
		}
		e := r.Entry
		if k.json {
			out := toJSON(e, true)
			out.Revision = r.Revision
			return k.emit(out)
		}
		if _, err := k.out.Write(e.Value); err != nil {
			return err
		}
		if isTerminal(k.out) && (len(e.Value) == 0 || e.Value[len(e.Value)-1] != '\n') {
			return k.printf("\n")
		}
		return nil
	})
	return cmd
}

func putCommand() *cobra.Command {
	var (
		ttl       time.Duration
		ifAbsent  bool
		ifVersion int64
	)
	cmd := &cobra.Command{
		Use:   "put KEY VALUE",
		Short: "Store VALUE under KEY",
		Long: `
VALUE - reads the value from standard input (to store a lone dash, pipe it
in: printf - | kvhost put KEY -). --ttl makes the key expire; a put without
it clears an earlier expiry. --if-absent and --if-version make the put
conditional: when the condition does not hold nothing is written and the
command fails, naming the key's current version.`,
		Example: `  kvhost put greeting hello
  kvhost put session/42 "$TOKEN" --ttl 30m
  kvhost put config.json - < config.json
  kvhost put lock/leader node-1 --if-absent
  kvhost put counter 10 --if-version 7`,
		Args: nargs(2, 2),
	}
	k := newConn(cmd, true)
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "expire the key after this long (e.g. 30s, 1h)")
	cmd.Flags().BoolVar(&ifAbsent, "if-absent", false, "write only if the key does not exist")
	cmd.Flags().Int64Var(&ifVersion, "if-version", 0, "write only if the key is at this `version`")
	cmd.RunE = k.run(func(cmd *cobra.Command, args []string) error {
		opts, err := condition(cmd, ifVersion, ifAbsent)
		if err != nil {
			return err
		}
		if ttl != 0 {
			opts = append(opts, client.WithTTL(ttl))
		}
		value := []byte(args[1])
		if args[1] == "-" {
			if value, err = io.ReadAll(cmd.InOrStdin()); err != nil {
				return fmt.Errorf("reading the value from stdin: %w", err)
			}
		}
		ctx, cancel := k.ctx(cmd)
		defer cancel()
		e, err := k.c.Put(ctx, args[0], value, opts...)
		if err != nil {
			return err
		}
		if k.json {
			return k.emit(toJSON(e, false))
		}
		if e.ExpiresAt.IsZero() {
			return k.printf("OK, version %d\n", e.Version)
		}
		return k.printf("OK, version %d, %s\n", e.Version, expiry(e.ExpiresAt))
	})
	return cmd
}

func delCommand() *cobra.Command {
	var ifVersion int64
	cmd := &cobra.Command{
		Use:   "del KEY",
		Short: "Delete KEY",
		Long: `
Deleting a key that does not exist succeeds and says so (exit status 0;
"deleted": false in JSON). With --if-version the key is deleted only at
that version, and the command fails otherwise.`,
		Args: nargs(1, 1),
	}
	k := newConn(cmd, true)
	cmd.Flags().Int64Var(&ifVersion, "if-version", 0, "delete only if the key is at this `version`")
	cmd.RunE = k.run(func(cmd *cobra.Command, args []string) error {
		opts, err := condition(cmd, ifVersion, false)
		if err != nil {
			return err
		}
		ctx, cancel := k.ctx(cmd)
		defer cancel()
		deleted, err := k.c.Delete(ctx, args[0], opts...)
		if err != nil {
			return err
		}
		switch {
		case k.json:
			return k.emit(struct {
				Key     string `json:"key"`
				Deleted bool   `json:"deleted"`
			}{args[0], deleted})
		case deleted:
			return k.printf("deleted %q\n", args[0])
		}
		return k.printf("key %q did not exist; nothing deleted\n", args[0])
	})
	return cmd
}

func listCommand() *cobra.Command {
	var (
		limit      int
		keysOnly   bool
		startAfter string
	)
	cmd := &cobra.Command{
		Use:   "list [PREFIX]",
		Short: "List the keys under PREFIX, in byte order",
		Long: `
Without PREFIX it lists every key. Text output is KEY<TAB>VALUE per line (a
key or value that is not printable is Go-quoted), or KEY alone with
--keys-only; -o json prints one entry per line, with "revision": the store
revision its page was read at (watch --from-revision REVISION+1 follows
every later change). Without --limit every key
is listed, fetched a page at a time; with it, a note on stderr says how to
continue when keys remain. --timeout bounds each page.`,
		Args: nargs(0, 1),
	}
	k := newConn(cmd, true)
	cmd.Flags().IntVar(&limit, "limit", 0, "list at most `N` keys (0: all)")
	cmd.Flags().BoolVar(&keysOnly, "keys-only", false, "print keys without values")
	cmd.Flags().StringVar(&startAfter, "start-after", "", "list keys after this `key`")
	cmd.RunE = k.run(func(cmd *cobra.Command, args []string) error {
		if limit < 0 {
			return usageError(cmd, "--limit %d is negative", limit)
		}
		prefix := ""
		if len(args) == 1 {
			prefix = args[0]
		}
		after, left := startAfter, limit
		for {
			opts := []client.ListOption{client.StartAfter(after)}
			if keysOnly {
				opts = append(opts, client.KeysOnly())
			}
			if limit > 0 {
				opts = append(opts, client.Limit(min(left, kv.MaxListLimit)))
			}
			ctx, cancel := k.ctx(cmd)
			res, err := k.c.List(ctx, prefix, opts...)
			cancel()
			if err != nil {
				return err
			}
			for _, e := range res.Entries {
				if err := k.listed(e, keysOnly, res.Revision); err != nil {
					return err
				}
			}
			if !res.More || len(res.Entries) == 0 {
				return nil
			}
			after = res.Entries[len(res.Entries)-1].Key
			if limit > 0 {
				if left -= len(res.Entries); left <= 0 {
					fmt.Fprintf(cmd.ErrOrStderr(), "(more keys follow: continue with --start-after %s)\n", strconv.Quote(after))
					return nil
				}
			}
		}
	})
	return cmd
}

func (k *conn) listed(e kv.Entry, keysOnly bool, revision int64) error {
	switch {
	case k.json:
		out := toJSON(e, !keysOnly)
		out.Revision = revision
		return k.emit(out)
	case keysOnly:
		return k.printf("%s\n", display([]byte(e.Key)))
	}
	return k.printf("%s\t%s\n", display([]byte(e.Key)), display(e.Value))
}

func countCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "count [PREFIX]",
		Short: "Count the keys under PREFIX",
		Long:  "\nWithout PREFIX it counts every key.",
		Args:  nargs(0, 1),
	}
	k := newConn(cmd, true)
	cmd.RunE = k.run(func(cmd *cobra.Command, args []string) error {
		prefix := ""
		if len(args) == 1 {
			prefix = args[0]
		}
		ctx, cancel := k.ctx(cmd)
		defer cancel()
		n, err := k.c.Count(ctx, prefix)
		if err != nil {
			return err
		}
		if k.json {
			return k.emit(struct {
				Prefix string `json:"prefix"`
				Count  int64  `json:"count"`
			}{prefix, n})
		}
		return k.printf("%d\n", n)
	})
	return cmd
}

func incrCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "incr KEY [DELTA]",
		Short: "Add DELTA (default 1) to the counter under KEY and print the result",
		Long: `
The key holds a decimal integer; a missing key counts as 0. A negative
DELTA goes after "--", or it would read as a flag: kvhost incr KEY -- -5.`,
		Args: nargs(1, 2),
	}
	k := newConn(cmd, true)
	cmd.RunE = k.run(func(cmd *cobra.Command, args []string) error {
		delta := int64(1)
		if len(args) == 2 {
			d, err := strconv.ParseInt(args[1], 10, 64)
			if err != nil {
				return usageError(cmd, "DELTA %q is not an integer", args[1])
			}
			delta = d
		}
		ctx, cancel := k.ctx(cmd)
		defer cancel()
		n, err := k.c.Increment(ctx, args[0], delta)
		if err != nil {
			return err
		}
		if k.json {
			return k.emit(struct {
				Key       string     `json:"key"`
				Value     int64      `json:"value"`
				Version   int64      `json:"version"`
				ExpiresAt *time.Time `json:"expires_at"`
			}{args[0], n.Value, n.Version, instant(n.ExpiresAt)})
		}
		return k.printf("%d\n", n.Value)
	})
	return cmd
}

// ttlJSON is the JSON of ttl and expire. TTLMillis is null when the key
// never expires.
type ttlJSON struct {
	Key       string     `json:"key"`
	Version   int64      `json:"version"`
	TTLMillis *int64     `json:"ttl_ms"`
	ExpiresAt *time.Time `json:"expires_at"`
}

func (k *conn) printTTL(e kv.Entry) error {
	if k.json {
		out := ttlJSON{Key: e.Key, Version: e.Version, ExpiresAt: instant(e.ExpiresAt)}
		if !e.ExpiresAt.IsZero() {
			ms := max(time.Until(e.ExpiresAt).Milliseconds(), 0)
			out.TTLMillis = &ms
		}
		return k.emit(out)
	}
	return k.printf("%s\n", expiry(e.ExpiresAt))
}

func ttlCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ttl KEY",
		Short: "Show how long KEY has left before it expires",
		Long: `
The time left is reckoned on this machine's clock from the expiry instant
the server keeps; -o json gives both (ttl_ms and expires_at, null when the
key never expires).`,
		Args: nargs(1, 1),
	}
	k := newConn(cmd, true)
	cmd.RunE = k.run(func(cmd *cobra.Command, args []string) error {
		ctx, cancel := k.ctx(cmd)
		defer cancel()
		e, err := k.c.Get(ctx, args[0])
		if errors.Is(err, client.ErrNotFound) {
			return keyNotFound(args[0], err)
		}
		if err != nil {
			return err
		}
		return k.printTTL(e)
	})
	return cmd
}

func expireCommand() *cobra.Command {
	var ifVersion int64
	cmd := &cobra.Command{
		Use:   "expire KEY DURATION",
		Short: "Make KEY expire DURATION from now (0 removes its expiry)",
		Long: `
DURATION is a Go duration: 90s, 30m, 1h30m, or 0 to make the key permanent.
Only the expiry changes: the value and version stay. With --if-version the
change is made only at that version.`,
		Example: `  kvhost expire session/42 15m
  kvhost expire session/42 0`,
		Args: nargs(2, 2),
	}
	k := newConn(cmd, true)
	cmd.Flags().Int64Var(&ifVersion, "if-version", 0, "change the expiry only if the key is at this `version`")
	cmd.RunE = k.run(func(cmd *cobra.Command, args []string) error {
		ttl, err := time.ParseDuration(args[1])
		if args[1] == "0" {
			ttl, err = 0, nil
		}
		if err != nil {
			return usageError(cmd, "DURATION %q is not a duration such as 30s or 1h", args[1])
		}
		opts, err := condition(cmd, ifVersion, false)
		if err != nil {
			return err
		}
		ctx, cancel := k.ctx(cmd)
		defer cancel()
		e, err := k.c.RefreshTTL(ctx, args[0], ttl, opts...)
		if errors.Is(err, client.ErrNotFound) {
			return keyNotFound(args[0], err)
		}
		if err != nil {
			return err
		}
		return k.printTTL(e)
	})
	return cmd
}

func watchCommand() *cobra.Command {
	var (
		fromRevision int64
		ttlEvents    bool
		progress     time.Duration
		exact        bool
	)
	cmd := &cobra.Command{
		Use:   "watch [PREFIX]",
		Short: "Print changes to the keys under PREFIX as they happen, until interrupted",
		Long: `
Once the watch is live, "watching ..." is printed on stderr; every change
committed after that (or, with --from-revision, every change from that
revision on) is printed once, in revision order, as TYPE<TAB>KEY and, for a
PUT, <TAB>VALUE (Go-quoted when not printable). TYPE is PUT, DELETE or
EXPIRE, and TTL with --ttl-events. -o json prints one event per line with
its revision, version and expiry. With --progress, an idle watch prints
PROGRESS<TAB>REVISION now and then: every change up to REVISION has been
printed. Ctrl-C ends it with exit status 0. --exact watches only the key
equal to PREFIX, not the longer keys it prefixes (KEY/child, KEYx).

A watcher that falls too far behind is ended by the server (exit status
1); the message says the --from-revision that resumes it. A revision older
than the history the backend keeps is refused and names the oldest one
still available: list to resync, then watch from the list's revision + 1.`,
		Example: `  kvhost watch config/
  kvhost watch config/ --from-revision 42 -o json
  kvhost watch --exact lock/leader`,
		Args: nargs(0, 1),
	}
	k := newConn(cmd, false)
	cmd.Flags().Int64Var(&fromRevision, "from-revision", 0, "replay every change from this `revision` on, then follow live")
	cmd.Flags().BoolVar(&ttlEvents, "ttl-events", false, "also print TTL events (a key's expiry changed)")
	cmd.Flags().DurationVar(&progress, "progress", 0, "print a progress line after this `interval` without changes (0: never)")
	cmd.Flags().BoolVar(&exact, "exact", false, "watch only the key equal to PREFIX, not the keys it prefixes")
	cmd.RunE = k.run(func(cmd *cobra.Command, args []string) error {
		if fromRevision < 0 {
			return usageError(cmd, "--from-revision %d is negative", fromRevision)
		}
		prefix := ""
		if len(args) == 1 {
			prefix = args[0]
		}
		opts := []client.WatchOption{client.FromRevision(fromRevision), client.WithProgressInterval(-1)}
		if progress > 0 {
			opts = append(opts, client.WithProgressInterval(progress))
		}
		if ttlEvents {
			opts = append(opts, client.WithTTLEvents())
		}
		if exact {
			if prefix == "" {
				return usageError(cmd, "--exact needs a KEY")
			}
			opts = append(opts, client.ExactKey())
		}
		ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		w, err := k.c.Watch(ctx, prefix, opts...)
		if err != nil {
			return err
		}
		defer w.Close()
		fmt.Fprintf(cmd.ErrOrStderr(), "watching %s on %s (Ctrl-C to stop)\n", strconv.Quote(prefix), k.addr)
		last := fromRevision - 1
		for {
			ev, err := w.Recv()
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				if errors.Is(err, client.ErrWatchOverflow) && last > 0 {
					return fmt.Errorf("%w (resume with --from-revision %d)", err, last+1)
				}
				return err
			}
			last = max(last, ev.Revision)
			if err := k.event(ev); err != nil {
				return err
			}
		}
	})
	return cmd
}

func (k *conn) event(ev kv.Event) error {
	if k.json {
		out := struct {
			Type        string     `json:"type"`
			Key         string     `json:"key,omitempty"`
			Value       *string    `json:"value,omitempty"`
			ValueBase64 bool       `json:"value_base64,omitempty"`
			Version     int64      `json:"version,omitempty"`
			Revision    int64      `json:"revision"`
			ExpiresAt   *time.Time `json:"expires_at,omitempty"`
		}{Type: ev.Type.String(), Key: ev.Key, Version: ev.Version, Revision: ev.Revision, ExpiresAt: instant(ev.ExpiresAt)}
		if ev.Type == kv.EventPut {
			out.Value, out.ValueBase64 = jsonValue(ev.Value)
		}
		return k.emit(out)
	}
	switch ev.Type {
	case kv.EventPut:
		return k.printf("%s\t%s\t%s\n", ev.Type, display([]byte(ev.Key)), display(ev.Value))
	case kv.EventProgress:
		return k.printf("%s\t%d\n", ev.Type, ev.Revision)
	}
	return k.printf("%s\t%s\n", ev.Type, display([]byte(ev.Key)))
}

func statsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "Show the number of keys and the backend's totals",
		Long: `
"keys" counts your tenant's keys; the backend figures, shown to admin
principals only, count every tenant's keys and their bytes (keys as stored,
with their tenant prefix, plus values). "revision" is the store revision
and the oldest one a watch can still start at.`,
		Args: nargs(0, 0),
	}
	k := newConn(cmd, true)
	cmd.RunE = k.run(func(cmd *cobra.Command, _ []string) error {
		ctx, cancel := k.ctx(cmd)
		defer cancel()
		s, err := k.c.Stats(ctx)
		if err != nil {
			return err
		}
		if k.json {
			out := struct {
				Keys           int64  `json:"keys"`
				BackendKeys    *int64 `json:"backend_keys"`
				BackendBytes   *int64 `json:"backend_bytes"`
				Backend        string `json:"backend"`
				BackendVersion string `json:"backend_version"`
				Revision       int64  `json:"revision"`
				OldestRevision int64  `json:"oldest_revision"`
			}{Keys: s.Keys, Backend: s.Backend, BackendVersion: s.BackendVersion, Revision: s.Revision, OldestRevision: s.OldestRevision}
			if s.BackendTotals { // null for a principal who may not see them
				out.BackendKeys, out.BackendBytes = &s.BackendKeys, &s.BackendBytes
			}
			return k.emit(out)
		}
		totals := "backend keys:   (for admin principals only)\n"
		if s.BackendTotals {
			totals = fmt.Sprintf("backend keys:   %d\nbackend bytes:  %d (%s)\n", s.BackendKeys, s.BackendBytes, bytesIEC(s.BackendBytes))
		}
		return k.printf("keys:           %d\nbackend:        %s %s\n%srevision:       %d (history from %d)\n",
			s.Keys, s.Backend, s.BackendVersion, totals, s.Revision, s.OldestRevision)
	})
	return cmd
}

// bytesIEC writes a byte count with a binary unit: 1.5 MiB.
func bytesIEC(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
