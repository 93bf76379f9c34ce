package redis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kvhost/kvhost/kv"
)

// mapErr gives an error from go-redis its kv sentinel:
//
//   - a Redis out of memory (OOM) is kv.ErrStorageFull: the script was
//     refused before it ran, the store is intact;
//   - a connection that failed, was refused or timed out, a pool with no
//     free connection, and the replies of a Redis that cannot serve now
//     (LOADING, BUSY, MASTERDOWN, READONLY after a failover, TRYAGAIN,
//     CLUSTERDOWN, NOREPLICAS, MISCONF) or refuses our credentials
//     (NOAUTH, WRONGPASS, NOPERM) are kv.ErrUnavailable;
//   - a closed client is kv.ErrClosed when the store was closed;
//   - anything else is kv.ErrInternal.
//
// The message keeps the failure's kind ("connection refused", "i/o
// timeout") but not the server's address, which callers of the public API
// have no business seeing. Errors that already carry a sentinel, and
// context errors, pass through.
func (s *Store) mapErr(err error) error {
	if err == nil {
		return nil
	}
	for _, known := range []error{
		kv.ErrNotFound, kv.ErrConflict, kv.ErrInvalidArgument, kv.ErrUnavailable,
		kv.ErrNotSupported, kv.ErrTooLarge, kv.ErrClosed, kv.ErrInternal, kv.ErrCompacted,
		kv.ErrStorageFull, kv.ErrDataLoss,
		context.Canceled, context.DeadlineExceeded,
	} {
		if errors.Is(err, known) {
			return err
		}
	}
	if errors.Is(err, goredis.ErrClosed) {
		if s.closed.Load() {
			return kv.ErrClosed
		}
		return fmt.Errorf("%w: the Redis client is closed", kv.ErrUnavailable)
	}
	var rerr goredis.Error
	if errors.As(err, &rerr) {
		msg := rerr.Error()
		code, _, _ := strings.Cut(msg, " ")
		switch code {
		case "OOM":
			return fmt.Errorf("%w: Redis is out of memory (maxmemory): %s", kv.ErrStorageFull, msg)
		case "LOADING", "BUSY", "MASTERDOWN", "READONLY", "TRYAGAIN", "CLUSTERDOWN", "NOREPLICAS", "MISCONF",
			"NOAUTH", "WRONGPASS", "NOPERM":
			return fmt.Errorf("%w: Redis answers: %s", kv.ErrUnavailable, msg)
		}
		return fmt.Errorf("%w: Redis answers: %s", kv.ErrInternal, msg)
	}
	if errors.Is(err, goredis.ErrPoolTimeout) || errors.Is(err, goredis.ErrPoolExhausted) {
		return fmt.Errorf("%w: no free connection to Redis", kv.ErrUnavailable)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: the connection to Redis was closed", kv.ErrUnavailable)
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return fmt.Errorf("%w: connection to Redis: %s: %v", kv.ErrUnavailable, opErr.Op, opErr.Err)
	}
	var netErr net.Error
	if errors.As(err, &netErr) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return fmt.Errorf("%w: connection to Redis: %v", kv.ErrUnavailable, err)
	}
	return fmt.Errorf("%w: %w", kv.ErrInternal, err)
}

// ctxErr prefers the caller's context error: with ContextTimeoutEnabled a
// cancelled call fails with a network timeout, but the caller gave up,
// Redis did not fail.
func (s *Store) ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && err != nil {
		return cerr
	}
	return s.mapErr(err)
}

// isOOM says whether Redis refused a command for want of memory.
func isOOM(err error) bool {
	var rerr goredis.Error
	return errors.As(err, &rerr) && strings.HasPrefix(rerr.Error(), "OOM")
}
