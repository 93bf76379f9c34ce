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
	"net/http/pprof"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/tap"

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
	// Tenant is required: a token acts within one tenant.
	Tenant string `yaml:"tenant"`
	// Admin principals see the whole backend's figures in Stats.
	Admin bool `yaml:"admin"`
}

// Options configure a Server.
type Options struct {
	// Tokens accepted on the API.
	Tokens []Token
	// Anonymous, when set, lets calls without a token act as AnonymousIdentity.
	Anonymous bool
	// AnonymousIdentity (default: no principal, tenant "anonymous":
	// anonymous callers share no tenant with token holders). Its
	// Principal should stay empty: policies take an empty principal for
	// anonymous ("@anonymous" in the acl policy).
	AnonymousIdentity host.Identity
	// MaxRequestBytes bounds one request message, a batch included
	// (default: the store's Limits.RequestLimit()). Larger requests are
	// refused with RESOURCE_EXHAUSTED before they are read whole.
	MaxRequestBytes int
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
	tokens atomic.Pointer[map[[sha256.Size]byte]host.Identity] // by the token's SHA-256
	grpc   *grpc.Server
}

// New returns a Server for store. It refuses tokens that are empty,
// duplicated, or lack a principal or a valid tenant.
func New(store *host.Store, opts Options) (*Server, error) {
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 10 * time.Second
	}
	if opts.AnonymousIdentity == (host.Identity{}) {
		opts.AnonymousIdentity = host.Identity{Tenant: "anonymous"}
	}
	if err := host.ValidateTenant(opts.AnonymousIdentity.Tenant); err != nil {
		return nil, fmt.Errorf("anonymous tenant: %w", err)
	}
	if opts.MaxRequestBytes <= 0 {
		opts.MaxRequestBytes = store.Limits().RequestLimit()
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Server{store: store, opts: opts, log: opts.Logger}
	if err := s.SetTokens(opts.Tokens); err != nil {
		return nil, err
	}
	sopts := []grpc.ServerOption{
		// Callers are authenticated from their headers, before a byte of
		// the request body is read: an unauthenticated caller costs a
		// header parse, however large the message it announces.
		grpc.InTapHandle(s.tap),
		grpc.ChainUnaryInterceptor(s.unary),
		grpc.ChainStreamInterceptor(s.stream),
		grpc.MaxRecvMsgSize(opts.MaxRequestBytes),
		grpc.MaxSendMsgSize(pluginapi.MaxMessageSize),
		// Clients ping every 30s under idle watches; allow that, and ping
		// idle clients ourselves so a vanished watcher is noticed.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: time.Minute, Timeout: 20 * time.Second}),
		// Handlers run on a pool of goroutines that stay, rather than one
		// started per call (as the plugin server does).
		grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0))),
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

// SetTokens replaces the accepted tokens, as a whole, without
// interrupting calls: a call is authenticated against the set in force
// when it arrives. It refuses a set with an invalid token and keeps the
// old one.
func (s *Server) SetTokens(tokens []Token) error {
	set := make(map[[sha256.Size]byte]host.Identity, len(tokens))
	for i, t := range tokens {
		digest, err := t.Digest()
		switch {
		case err != nil:
			return fmt.Errorf("auth.tokens[%d]: %w", i, err)
		case t.Principal == "":
			return fmt.Errorf("%w: auth.tokens[%d]: principal is empty", kv.ErrInvalidArgument, i)
		case t.Tenant == "":
			return fmt.Errorf("%w: auth.tokens[%d] (%s): tenant is empty: name the tenant its calls act for", kv.ErrInvalidArgument, i, t.Principal)
		}
		if _, dup := set[digest]; dup {
			return fmt.Errorf("%w: auth.tokens[%d]: token of %q is used twice", kv.ErrInvalidArgument, i, t.Principal)
		}
		if err := host.ValidateTenant(t.Tenant); err != nil {
			return fmt.Errorf("auth.tokens[%d]: %w", i, err)
		}
		set[digest] = host.Identity{Principal: t.Principal, Tenant: t.Tenant, Admin: t.Admin}
	}
	if len(set) == 0 && !s.opts.Anonymous {
		return fmt.Errorf("%w: no auth tokens configured and anonymous access is off: nobody could call this server", kv.ErrInvalidArgument)
	}
	s.tokens.Store(&set)
	return nil
}

// tap authenticates a call from its headers alone, before gRPC reads its
// message, and puts the caller's identity in its context.
func (s *Server) tap(ctx context.Context, info *tap.Info) (context.Context, error) {
	id, err := s.authenticate(info.Header.Get("authorization"))
	if err != nil {
		return ctx, rpcerr.ToStatus(err)
	}
	return host.WithIdentity(ctx, id), nil
}

// authenticate finds the identity of an authorization header's values.
func (s *Server) authenticate(auth []string) (host.Identity, error) {
	switch len(auth) {
	case 0:
		if s.opts.Anonymous {
			return s.opts.AnonymousIdentity, nil
		}
		return host.Identity{}, fmt.Errorf("%w: no bearer token: send \"authorization: Bearer <token>\"", kv.ErrUnauthenticated)
	case 1:
	default:
		return host.Identity{}, fmt.Errorf("%w: %d authorization headers: send exactly one", kv.ErrUnauthenticated, len(auth))
	}
	scheme, tok, _ := strings.Cut(strings.TrimSpace(auth[0]), " ")
	if !strings.EqualFold(scheme, "bearer") {
		return host.Identity{}, fmt.Errorf("%w: authorization is not a bearer token", kv.ErrUnauthenticated)
	}
	if id, ok := s.lookup(strings.TrimSpace(tok)); ok {
		return id, nil
	}
	return host.Identity{}, fmt.Errorf("%w: unknown token", kv.ErrUnauthenticated)
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
	for known, id := range *s.tokens.Load() {
		if subtle.ConstantTimeCompare(known[:], got[:]) == 1 {
			found, ok = id, true
		}
	}
	return found, ok
}

// unary bounds every call by the configured timeout and maps its error by
// the error table. The caller was authenticated by tap.
func (s *Server) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	// The configured timeout bounds every call; a client's shorter
	// deadline still wins (a context keeps the earlier of two deadlines).
	ctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	defer cancel()
	resp, err := handler(ctx, req)
	return resp, rpcerr.ToStatus(err)
}

func (s *Server) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return rpcerr.ToStatus(handler(srv, ss))
}

// HTTPOptions configure HTTPHandler.
type HTTPOptions struct {
	// MetricsToken, when set, is the bearer token /metrics and
	// /debug/pprof/ ask for.
	MetricsToken string
	// Pprof serves Go's profiler under /debug/pprof/ (net/http/pprof), as
	// etcd does with --enable-pprof: an operator can profile a live host.
	Pprof bool
}

// HTTPHandler serves /metrics (from gatherer), /healthz, /readyz and, when
// opts.Pprof, /debug/pprof/. With a metrics token, /metrics and the
// profiler ask for it as a bearer token; health and readiness stay open,
// for load balancers.
func HTTPHandler(store *host.Store, gatherer prometheus.Gatherer, opts HTTPOptions) http.Handler {
	mux := http.NewServeMux()
	want := sha256.Sum256([]byte(opts.MetricsToken))
	guard := func(what string, h http.Handler) http.Handler {
		if opts.MetricsToken == "" {
			return h
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			auth := r.Header.Values("Authorization")
			scheme, tok, _ := strings.Cut(strings.Join(auth, ""), " ")
			got := sha256.Sum256([]byte(tok))
			if len(auth) != 1 || !strings.EqualFold(scheme, "bearer") || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
				w.Header().Set("WWW-Authenticate", "Bearer")
				http.Error(w, what+" need the metrics token: Authorization: Bearer <token>", http.StatusUnauthorized)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	mux.Handle("/metrics", guard("metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{})))
	if opts.Pprof {
		// Index serves the named profiles (heap, goroutine, allocs, block,
		// mutex, ...) under the prefix; the other four are functions of
		// their own.
		mux.Handle("/debug/pprof/", guard("profiles", http.HandlerFunc(pprof.Index)))
		mux.Handle("/debug/pprof/cmdline", guard("profiles", http.HandlerFunc(pprof.Cmdline)))
		mux.Handle("/debug/pprof/profile", guard("profiles", http.HandlerFunc(pprof.Profile)))
		mux.Handle("/debug/pprof/symbol", guard("profiles", http.HandlerFunc(pprof.Symbol)))
		mux.Handle("/debug/pprof/trace", guard("profiles", http.HandlerFunc(pprof.Trace)))
	}
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
