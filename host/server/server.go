// Package server serves a host.Store on kvhost's public gRPC API
// (kvhost.v1) with bearer-token authentication, optional TLS and request
// deadlines, and serves Prometheus metrics, /healthz and /readyz over HTTP.
package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"

	pb "github.com/kvhost/kvhost/api/kvhostv1"
	"github.com/kvhost/kvhost/api/rpcerr"
	"github.com/kvhost/kvhost/host"
	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi"
)

// Token maps a bearer token to the identity its calls act for. Give the
// token itself, or only its SHA-256 (hex), so that the configuration file
// holds nothing a reader could call the server with.
type Token struct {
	Token       string `yaml:"token"`
	TokenSHA256 string `yaml:"token_sha256"`
	Principal   string `yaml:"principal"`
	Tenant      string `yaml:"tenant"`
}

// Options configure a Server.
type Options struct {
	// Tokens accepted on the API.
	Tokens []Token
	// Anonymous, when set, lets calls without a token act as AnonymousIdentity.
	Anonymous bool
	// AnonymousIdentity (default principal "anonymous", tenant "default").
	AnonymousIdentity host.Identity
	// TLS, when set, is used on the gRPC listener.
	TLS *tls.Config
	// RequestTimeout bounds every unary call, whatever deadline the
	// client asked for; a client's shorter deadline still applies
	// (default 10s).
	RequestTimeout time.Duration
	// Logger (slog.Default when nil).
	Logger *slog.Logger
}

// Server is the public API in front of a Store.
type Server struct {
	pb.UnimplementedKVServer
	store  *host.Store
	opts   Options
	log    *slog.Logger
	tokens map[[sha256.Size]byte]host.Identity // by the token's SHA-256
	grpc   *grpc.Server
}

// New returns a Server for store. It refuses tokens that are empty,
// duplicated or name an invalid tenant.
func New(store *host.Store, opts Options) (*Server, error) {
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 10 * time.Second
	}
	if opts.AnonymousIdentity == (host.Identity{}) {
		opts.AnonymousIdentity = host.Identity{Principal: "anonymous", Tenant: host.DefaultTenant}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Server{store: store, opts: opts, log: opts.Logger, tokens: make(map[[sha256.Size]byte]host.Identity, len(opts.Tokens))}
	for i, t := range opts.Tokens {
		digest, err := t.Digest()
		switch {
		case err != nil:
			return nil, fmt.Errorf("auth.tokens[%d]: %w", i, err)
		case t.Principal == "":
			return nil, fmt.Errorf("%w: auth.tokens[%d]: principal is empty", kv.ErrInvalidArgument, i)
		}
		if _, dup := s.tokens[digest]; dup {
			return nil, fmt.Errorf("%w: auth.tokens[%d]: token of %q is used twice", kv.ErrInvalidArgument, i, t.Principal)
		}
		tenant := t.Tenant
		if tenant == "" {
			tenant = host.DefaultTenant
		}
		if err := host.ValidateTenant(tenant); err != nil {
			return nil, fmt.Errorf("auth.tokens[%d]: %w", i, err)
		}
		s.tokens[digest] = host.Identity{Principal: t.Principal, Tenant: tenant}
	}
	if len(s.tokens) == 0 && !opts.Anonymous {
		return nil, fmt.Errorf("%w: no auth tokens configured and anonymous access is off: nobody could call this server", kv.ErrInvalidArgument)
	}
	sopts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(s.unaryAuth),
		grpc.ChainStreamInterceptor(s.streamAuth),
		grpc.MaxRecvMsgSize(pluginapi.MaxMessageSize),
		grpc.MaxSendMsgSize(pluginapi.MaxMessageSize),
		// Clients ping every 30s under idle watches; allow that, and ping
		// idle clients ourselves so a vanished watcher is noticed.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: time.Minute, Timeout: 20 * time.Second}),
	}
	if opts.TLS != nil {
		sopts = append(sopts, grpc.Creds(credentials.NewTLS(opts.TLS)))
	}
	s.grpc = grpc.NewServer(sopts...)
	pb.RegisterKVServer(s.grpc, s)
	return s, nil
}

// Serve serves the API on lis until Stop.
func (s *Server) Serve(lis net.Listener) error { return s.grpc.Serve(lis) }

// Stop ends the server gracefully within ctx, then forcibly.
func (s *Server) Stop(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.grpc.Stop()
	}
}

func (s *Server) authenticate(ctx context.Context) (context.Context, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	auth := md.Get("authorization")
	if len(auth) == 0 {
		if s.opts.Anonymous {
			return host.WithIdentity(ctx, s.opts.AnonymousIdentity), nil
		}
		return nil, rpcerr.ToStatus(fmt.Errorf("%w: no bearer token: send \"authorization: Bearer <token>\"", kv.ErrUnauthenticated))
	}
	tok, ok := strings.CutPrefix(auth[0], "Bearer ")
	if !ok {
		return nil, rpcerr.ToStatus(fmt.Errorf("%w: authorization is not a bearer token", kv.ErrUnauthenticated))
	}
	if id, ok := s.lookup(tok); ok {
		return host.WithIdentity(ctx, id), nil
	}
	return nil, rpcerr.ToStatus(fmt.Errorf("%w: unknown token", kv.ErrUnauthenticated))
}

// Digest returns the SHA-256 of the token, from Token or TokenSHA256
// (exactly one must be set).
func (t Token) Digest() ([sha256.Size]byte, error) {
	var d [sha256.Size]byte
	switch {
	case t.Token != "" && t.TokenSHA256 != "":
		return d, fmt.Errorf("%w: set token or token_sha256, not both", kv.ErrInvalidArgument)
	case t.Token != "":
		return sha256.Sum256([]byte(t.Token)), nil
	case t.TokenSHA256 != "":
		b, err := hex.DecodeString(t.TokenSHA256)
		if err != nil || len(b) != sha256.Size {
			return d, fmt.Errorf("%w: token_sha256 must be 64 hex digits", kv.ErrInvalidArgument)
		}
		copy(d[:], b)
		return d, nil
	}
	return d, fmt.Errorf("%w: token is empty (set token or token_sha256)", kv.ErrInvalidArgument)
}

// lookup hashes the presented token and compares the digest with every
// known one in constant time: neither the time taken nor a map lookup says
// anything about how close a guess was.
func (s *Server) lookup(tok string) (host.Identity, bool) {
	got := sha256.Sum256([]byte(tok))
	var found host.Identity
	ok := false
	for known, id := range s.tokens {
		if subtle.ConstantTimeCompare(known[:], got[:]) == 1 {
			found, ok = id, true
		}
	}
	return found, ok
}

func (s *Server) unaryAuth(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, err := s.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	// The configured timeout bounds every call; a client's shorter
	// deadline still wins (a context keeps the earlier of two deadlines).
	ctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	defer cancel()
	resp, err := handler(ctx, req)
	return resp, rpcerr.ToStatus(err)
}

type authedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (a authedStream) Context() context.Context { return a.ctx }

func (s *Server) streamAuth(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, err := s.authenticate(ss.Context())
	if err != nil {
		return err
	}
	return rpcerr.ToStatus(handler(srv, authedStream{ServerStream: ss, ctx: ctx}))
}

// HTTPHandler serves /metrics (from gatherer), /healthz and /readyz.
func HTTPHandler(store *host.Store, gatherer prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !store.Ready() {
			http.Error(w, "backend plugin is not serving", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	return mux
}
