package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/kvhost/kvhost/client/lock"
)

// exitLockLost is kvhost lock's exit status when the lock was lost while
// the command ran (the command was stopped).
const exitLockLost = 4

func lockCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lock NAME [--ttl DURATION] -- COMMAND [ARG...]",
		Short: "Run COMMAND while holding the lock NAME",
		Long: `
Takes the distributed lock NAME (waiting while another owner holds it,
unless --no-wait), runs COMMAND with the lease renewed every third of its
TTL, and releases the lock when COMMAND exits. COMMAND's environment has
KVHOST_LOCK_NAME and KVHOST_LOCK_TOKEN, the fencing token: a number that
is larger for every later holder, for COMMAND to pass to whatever it
writes under the lock.

If the lock is lost while COMMAND runs (the server refused a renewal, or
could not be reached before the lease expired), COMMAND gets SIGTERM,
then SIGKILL after --grace, and kvhost lock exits with status 4. An
interrupt or SIGTERM to kvhost lock is passed on to COMMAND.

Exit status: COMMAND's own when it ran; 1 when the lock could not be
taken (with --no-wait: held by another owner, named on stderr); 4 when the
lock was lost.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 1 || len(args) < 2 {
				return usageError(cmd, "usage: %s", cmd.UseLine())
			}
			return nil
		},
	}
	var (
		ttl, grace time.Duration
		owner      string
		noWait     bool
	)
	k := newConn(cmd, true)
	f := cmd.Flags()
	f.DurationVar(&ttl, "ttl", 15*time.Second, "lease TTL: how long the lock outlives a kvhost lock that stopped renewing it")
	f.DurationVar(&grace, "grace", 10*time.Second, "time COMMAND has to exit after SIGTERM before SIGKILL")
	f.StringVar(&owner, "owner", "", "owner recorded in the lock (default HOSTNAME:PID)")
	f.BoolVar(&noWait, "no-wait", false, "fail at once if another owner holds the lock")
	cmd.RunE = k.run(func(cmd *cobra.Command, args []string) error {
		if ttl <= 0 {
			return usageError(cmd, "--ttl must be positive")
		}
		if owner == "" {
			host, _ := os.Hostname()
			owner = host + ":" + strconv.Itoa(os.Getpid())
		}
		ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		locks := lock.New(k.c)
		take := locks.Acquire
		if noWait {
			take = locks.TryAcquire
		}
		lease, err := take(ctx, args[0], owner, ttl)
		if err != nil {
			return err
		}
		defer func() {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), k.timeoutOr(10*time.Second))
			defer cancel()
			_ = lease.Release(rctx) // a lost lease has nothing to release
		}()
		return runLocked(ctx, lease, grace, args[1:])
	})
	return cmd
}

// timeoutOr is --timeout, or d when it is 0 (no deadline).
func (k *conn) timeoutOr(d time.Duration) time.Duration {
	if k.timeout > 0 {
		return k.timeout
	}
	return d
}

// runLocked runs argv while lease is kept alive, and stops it if the lease
// is lost or ctx ends.
func runLocked(ctx context.Context, lease *lock.Lease, grace time.Duration, argv []string) error {
	c := exec.Command(argv[0], argv[1:]...)
	c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
	c.Env = append(os.Environ(), "KVHOST_LOCK_NAME="+lease.Name, "KVHOST_LOCK_TOKEN="+strconv.FormatInt(lease.Token, 10))
	if err := c.Start(); err != nil {
		return &cliError{msg: fmt.Sprintf("start %s: %v", argv[0], err), code: exitFailure, err: err}
	}
	kctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lost := lease.KeepAlive(kctx)
	exited := make(chan error, 1)
	go func() { exited <- c.Wait() }()
	var lossErr error
	select {
	case err := <-exited:
		return exitOf(err)
	case err, ok := <-lost:
		if !ok { // ctx ended: pass the signal on
			break
		}
		lossErr = err
	case <-ctx.Done():
	}
	_ = c.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	var err error
	select {
	case err = <-exited:
	case <-t.C:
		_ = c.Process.Kill()
		err = <-exited
	}
	if lossErr != nil {
		return &cliError{msg: fmt.Sprintf("%v; stopped %s", lossErr, argv[0]), code: exitLockLost, err: lossErr}
	}
	return exitOf(err)
}

// exitOf turns a command's end into kvhost lock's: its exit status.
func exitOf(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code := ee.ExitCode()
		if code < 0 { // killed by a signal
			code = 128 + int(ee.Sys().(syscall.WaitStatus).Signal())
		}
		return &cliError{msg: fmt.Sprintf("command %s", ee.ProcessState), code: code, err: err}
	}
	return err
}
