package client

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	apipb "github.com/kvhost/kvhost/api/kvhostv1"
	"github.com/kvhost/kvhost/api/rpcerr"
	"github.com/kvhost/kvhost/kv"
)

// The sentinels every error of this package wraps; they are package kv's, so
// errors.Is holds whichever package a caller names.
var (
	ErrNotFound         = kv.ErrNotFound
	ErrConflict         = kv.ErrConflict
	ErrInvalidArgument  = kv.ErrInvalidArgument
	ErrUnavailable      = kv.ErrUnavailable
	ErrNotSupported     = kv.ErrNotSupported
	ErrWatchOverflow    = kv.ErrWatchOverflow
	ErrTooLarge         = kv.ErrTooLarge
	ErrPermissionDenied = kv.ErrPermissionDenied
	ErrUnauthenticated  = kv.ErrUnauthenticated
	ErrClosed           = kv.ErrClosed
	ErrInternal         = kv.ErrInternal
	ErrCompacted        = kv.ErrCompacted
	ErrStorageFull      = kv.ErrStorageFull
	ErrDataLoss         = kv.ErrDataLoss
)

// ConflictError is the error of a failed condition (errors.Is(err,
// ErrConflict)); CurrentVersion is the key's version, 0 when absent, and
// OpIndex the failing op of a Batch (-1 outside one).
type ConflictError = kv.ConflictError

// maxMessageSize bounds one message each way: a 16 MiB value with room
// for batches of several large values (the server's own limit decides).
const maxMessageSize = 128 << 20

// DefaultAddr is where `kvhost serve` listens when it has no configuration.
const DefaultAddr = "127.0.0.1:7070"

// Client is a connection to a kvhost server. It is safe for concurrent use;
// one Client per server is enough for a whole program.
type Client struct {
	conn   *grpc.ClientConn
	rpc    apipb.KVClient
	near   *nearCache // nil without WithNearCache
	closed atomic.Bool
}

// Option configures New.
type Option func(*options)

type options struct {
	token     string
	tls       *tls.Config
	insecure  bool
	dial      []grpc.DialOption
	nearBytes int64
}

// WithToken authenticates every call with a bearer token. An empty token
// sends none (anonymous calls, where the server allows them).
func WithToken(token string) Option {
	return func(o *options) { o.token = token }
}

// WithTLS connects over TLS with this configuration (nil: the system's
// roots and the address's host name). It overrides WithInsecure.
func WithTLS(cfg *tls.Config) Option {
	return func(o *options) {
		if cfg == nil {
			cfg = &tls.Config{}
		}
		o.tls, o.insecure = cfg.Clone(), false
	}
}

// WithInsecure connects in plaintext whatever the address. Without it only
// loopback addresses do; a bearer token sent in plaintext across a network
// can be read by anyone on the path.
func WithInsecure() Option {
	return func(o *options) { o.insecure, o.tls = true, nil }
}

// WithDialOptions adds gRPC dial options, applied after the client's own so
// that they can override them (a custom dialer, keepalive, interceptors).
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.dial = append(o.dial, opts...) }
}

// New returns a client of the server at addr ("host:port", or any gRPC
// target such as "unix:///run/kvhost.sock"). It does not dial: the first
// call does (with WithNearCache, its tracking session at once), so New
// fails only on bad options.
func New(addr string, opts ...Option) (*Client, error) {
	if addr == "" {
		return nil, fmt.Errorf("%w: empty server address", ErrInvalidArgument)
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	creds := insecure.NewCredentials()
	switch {
	case o.tls != nil:
		creds = credentials.NewTLS(o.tls)
	case !o.insecure && !isLoopback(addr):
		creds = credentials.NewTLS(&tls.Config{})
	}
	dial := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		// Pings on an otherwise quiet connection notice a dead server
		// (and keep NATs open) under a long idle watch; the server
		// permits this rate.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(maxMessageSize),
			grpc.MaxCallSendMsgSize(maxMessageSize),
		),
	}
	if o.token != "" {
		dial = append(dial, grpc.WithPerRPCCredentials(bearer(o.token)))
	}
	conn, err := grpc.NewClient(addr, append(dial, o.dial...)...)
	if err != nil {
		return nil, fmt.Errorf("%w: server address %q: %w", ErrInvalidArgument, addr, err)
	}
	c := &Client{conn: conn, rpc: apipb.NewKVClient(conn)}
	if o.nearBytes > 0 {
		c.near = newNearCache(c.rpc, o.nearBytes)
	}
	return c, nil
}

// Close ends the connection. Calls after Close fail with ErrClosed; so do
// open watches.
func (c *Client) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	if c.near != nil {
		c.near.close()
	}
	return c.conn.Close()
}

// check refuses calls on a closed client: gRPC would report them as
// cancelled, which reads like the caller's own context.
func (c *Client) check() error {
	if c.closed.Load() {
		return ErrClosed
	}
	return nil
}

// wireErr turns an RPC error into a sentinel-wrapping error by
// the one error table (api/rpcerr).
func (c *Client) wireErr(err error) error {
	if c.closed.Load() {
		return ErrClosed
	}
	return rpcerr.FromStatus(err)
}

// bearer sends the token as per-RPC metadata.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

// RequireTransportSecurity is false because New already chose the
// transport: TLS unless the address is loopback or WithInsecure was given.
func (bearer) RequireTransportSecurity() bool { return false }

// isLoopback reports whether a gRPC target names this machine, where
// plaintext is a safe default.
func isLoopback(target string) bool {
	if strings.HasPrefix(target, "unix:") || strings.HasPrefix(target, "unix-abstract:") {
		return true
	}
	// Strip a scheme with an authority ("dns:///host:port",
	// "passthrough:///host:port").
	if i := strings.Index(target, ":///"); i >= 0 {
		target = target[i+len(":///"):]
	}
	host := target
	if h, _, err := net.SplitHostPort(target); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
