package pluginapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/kvhost/kvhost/kv"
	pb "github.com/kvhost/kvhost/pluginapi/internal/pluginpb"
	"github.com/kvhost/kvhost/pluginapi/internal/sharedpages"
)

// ProtocolVersion is the plugin protocol version this package speaks. A
// version changes only when the wire contract changes incompatibly; a host
// offers every version it can speak and go-plugin picks the highest one
// both sides share.
const ProtocolVersion = 2

// PluginName is the name a backend is dispensed under.
const PluginName = "backend"

// MaxMessageSize bounds one plugin message: a 16 MiB value with room for
// batches of several large values.
const MaxMessageSize = 128 << 20

// The plugin connection is a local socket with one peer: large flow-control
// windows let a big reply (a 10K-key list page) flow without waiting for
// window updates from the other process, and larger buffers mean fewer
// system calls.
const (
	windowSize = 4 << 20
	bufferSize = 256 << 10
)

// Handshake is the go-plugin handshake. The cookie is not security: it only
// stops a plugin binary from being run by hand by mistake.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "KVHOST_PLUGIN",
	MagicCookieValue: "a4f6c1de-kvhost-backend",
}

// PluginSets returns the versioned plugin sets of the host side. Version 1
// is not among them: contract v2 changed its meaning (revisions), and it
// was retired before any third party depended on it. Later versions will
// sit beside version 2 here.
func PluginSets() map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		ProtocolVersion: {PluginName: &GRPCPlugin{}},
	}
}

// GRPCPlugin is the go-plugin adapter. On the plugin side Open is set; on
// the host side it is empty and only GRPCClient is used.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Open OpenFunc

	server *grpcServer
	pages  *sharedpages.Area // plugin side: the host's shared page area, or nil
}

// GRPCServer registers the backend service (plugin side).
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Open == nil {
		return fmt.Errorf("%w: GRPCPlugin has no Open function", kv.ErrInternal)
	}
	p.server = newGRPCServer(p.Open, p.pages)
	pb.RegisterBackendServer(s, p.server)
	return nil
}

// GRPCClient returns a *Client (host side).
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return NewClient(c), nil
}

// closeBackend closes the served backend, if any.
func (p *GRPCPlugin) closeBackend() error {
	if p.server == nil {
		return nil
	}
	return p.server.close()
}

// Serve runs a backend as a go-plugin subprocess. It is the whole of a
// backend binary's main:
//
//	func main() { pluginapi.Serve(mybackend.Open) }
//
// It returns when the host ends the plugin, after closing the backend.
// Logs written with the hclog default logger (or to stderr as JSON lines)
// flow into the host's log.
//
// Unless GOGC is set in its environment, a plugin runs with GOGC=400: a
// backend's live heap is small while every reply allocates its encoding
// afresh, so collecting less often is cheap in memory and measurably faster
// for large replies (docs/PERFORMANCE.md). A backend whose data lives
// outside the heap should also say WithMemoryLimit, so that the garbage
// collector's slack stays bounded under many large replies at once.
func Serve(open OpenFunc, opts ...ServeOption) {
	var o serveOptions
	for _, opt := range opts {
		opt(&o)
	}
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(400)
	}
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set && o.memoryLimit > 0 {
		debug.SetMemoryLimit(o.memoryLimit)
	}
	logger := hclog.New(&hclog.LoggerOptions{Output: os.Stderr, JSONFormat: true, Level: hclog.Info})
	hclog.SetDefault(logger)
	p := &GRPCPlugin{Open: open, pages: inheritedPages(logger)}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{
			ProtocolVersion: {PluginName: p},
		},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			opts = append(opts, grpc.MaxRecvMsgSize(MaxMessageSize), grpc.MaxSendMsgSize(MaxMessageSize),
				// Reused handler goroutines keep their grown stacks:
				// a backend's deep call paths (a SQL engine) pay for
				// stack growth once, not on every call.
				grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0))),
				grpc.InitialWindowSize(windowSize), grpc.InitialConnWindowSize(windowSize),
				grpc.ReadBufferSize(bufferSize), grpc.WriteBufferSize(bufferSize),
				codecServerOption())
			return plugin.DefaultGRPCServer(opts)
		},
		Logger: logger,
	})
	if err := p.closeBackend(); err != nil {
		logger.Error("closing backend", "error", err)
	}
}

// ServeOption configures Serve.
type ServeOption func(*serveOptions)

type serveOptions struct{ memoryLimit int64 }

// WithMemoryLimit sets the plugin's soft memory limit (Go's GOMEMLIMIT,
// which the environment overrides): the garbage collector works harder as
// the heap nears it. It is for backends whose data lives outside the heap
// (a database file, a server), whose heap is only requests in flight.
func WithMemoryLimit(bytes int64) ServeOption {
	return func(o *serveOptions) { o.memoryLimit = bytes }
}

// StartConfig says how to start a backend plugin binary.
type StartConfig struct {
	// Path of the plugin binary.
	Path string
	// Args passed to it.
	Args []string
	// Settings for the backend's Open.
	Settings map[string]string
	// SHA256, when set (hex), pins the binary: go-plugin refuses to start
	// a binary whose checksum differs.
	SHA256 string
	// Logger receives the plugin's logs; hclog's default when nil.
	Logger hclog.Logger
	// StartTimeout bounds the handshake (default 10s).
	StartTimeout time.Duration
	// DisableMTLS turns off go-plugin's automatic mutual TLS on the
	// plugin connection. It is on by default.
	DisableMTLS bool
	// DisableSharedPages keeps every list page on the plugin connection.
	// By default the host gives the plugin a shared memory area (Linux)
	// and large pages cross through it (docs/RATIONALE.md).
	DisableSharedPages bool
	// Pages, when set, counts how list pages crossed; several Starts may
	// share one (a supervisor restarting a plugin). The Client's own
	// otherwise.
	Pages *PageCounts
}

// Plugin is a started plugin process and the Client to its backend.
type Plugin struct {
	*Client
	proc *plugin.Client
	// Negotiated is the protocol version both sides agreed on.
	Negotiated int
}

// Start launches a plugin binary, completes the handshake, dispenses its
// backend and opens it with the configured settings. The caller owns the
// process: Kill ends it.
func Start(ctx context.Context, cfg StartConfig) (*Plugin, error) {
	if cfg.Path == "" {
		return nil, fmt.Errorf("%w: plugin path is empty", kv.ErrInvalidArgument)
	}
	fi, err := os.Stat(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("%w: plugin binary %s: %w", kv.ErrInvalidArgument, cfg.Path, err)
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return nil, fmt.Errorf("%w: plugin binary %s is not an executable file", kv.ErrInvalidArgument, cfg.Path)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = hclog.Default()
	}
	var secure *plugin.SecureConfig
	if cfg.SHA256 != "" {
		sum, err := hex.DecodeString(cfg.SHA256)
		if err != nil || len(sum) != sha256.Size {
			return nil, fmt.Errorf("%w: plugin sha256 %q is not 64 hex digits", kv.ErrInvalidArgument, cfg.SHA256)
		}
		secure = &plugin.SecureConfig{Checksum: sum, Hash: sha256.New()}
	}
	cmd := exec.Command(cfg.Path, cfg.Args...)
	bindToParent(cmd)
	cmd.Env = hostEnv()
	var pages *sharedpages.Area
	if !cfg.DisableSharedPages {
		pages = offerPages(cmd, logger)
	}
	cc := &plugin.ClientConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: PluginSets(),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         !cfg.DisableMTLS,
		SecureConfig:     secure,
		SkipHostEnv:      true, // cmd.Env has it, less what is only for the plugin (hostEnv)
		Logger:           logger,
		StartTimeout:     cfg.StartTimeout,
		GRPCDialOptions: []grpc.DialOption{
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageSize), grpc.MaxCallSendMsgSize(MaxMessageSize), codecCallOption()),
			grpc.WithInitialWindowSize(windowSize), grpc.WithInitialConnWindowSize(windowSize),
			grpc.WithReadBufferSize(bufferSize), grpc.WithWriteBufferSize(bufferSize),
		},
	}
	proc := plugin.NewClient(cc)
	fail := func(err error) (*Plugin, error) {
		proc.Kill()
		if pages != nil {
			pages.Close()
		}
		return nil, err
	}
	rpc, err := proc.Client()
	closeExtraFiles(cmd) // the plugin has its copies, or failed to start
	if err != nil {
		if errors.Is(err, plugin.ErrChecksumsDoNotMatch) {
			return fail(fmt.Errorf("%w: plugin %s does not match its pinned sha256: %w", kv.ErrInvalidArgument, cfg.Path, err))
		}
		if v, ok := incompatibleVersion(err); ok {
			return fail(fmt.Errorf("%w: plugin %s speaks kvhost plugin protocol v%s, and this host speaks v%d: rebuild the plugin against pluginapi v%d (%w)",
				kv.ErrInvalidArgument, cfg.Path, v, ProtocolVersion, ProtocolVersion, err))
		}
		return fail(fmt.Errorf("%w: starting plugin %s: %w", kv.ErrUnavailable, cfg.Path, err))
	}
	raw, err := rpc.Dispense(PluginName)
	if err != nil {
		return fail(fmt.Errorf("%w: plugin %s: %w", kv.ErrUnavailable, cfg.Path, err))
	}
	c, ok := raw.(*Client)
	if !ok {
		return fail(fmt.Errorf("%w: plugin %s dispensed %T", kv.ErrInternal, cfg.Path, raw))
	}
	c.pages = pages
	if cfg.Pages != nil {
		c.counts = cfg.Pages
	}
	settings := cfg.Settings
	if settings == nil {
		settings = map[string]string{}
	}
	if err := c.Open(ctx, settings); err != nil {
		return fail(fmt.Errorf("plugin %s: open: %w", cfg.Path, err))
	}
	return &Plugin{Client: c, proc: proc, Negotiated: proc.NegotiatedVersion()}, nil
}

// Kill ends the plugin process (gracefully first, so the backend closes).
func (p *Plugin) Kill() {
	p.proc.Kill()
	p.closePages()
}

// Abort ends a plugin that no longer answers: go-plugin's graceful Kill
// asks the plugin to shut down and would wait on a frozen process forever,
// so the process is killed first and the connection cleaned up after.
func (p *Plugin) Abort() {
	if pid := p.Pid(); pid > 0 {
		if proc, err := os.FindProcess(pid); err == nil {
			_ = proc.Kill() // SIGKILL ends a stopped process too
		}
	}
	p.proc.Kill()
	p.closePages()
}

// closePages unmaps the shared page area once the plugin has ended; a
// list still in flight then fails with ErrUnavailable.
func (p *Plugin) closePages() {
	if p.Client.pages != nil {
		p.Client.pages.Close()
	}
}

// Exited reports whether the plugin process has exited.
func (p *Plugin) Exited() bool { return p.proc.Exited() }

// Pid returns the plugin process id, or 0.
func (p *Plugin) Pid() int {
	if rc := p.proc.ReattachConfig(); rc != nil {
		return rc.Pid
	}
	return 0
}

// Close kills the plugin; it makes *Plugin a Backend whose Close ends it.
func (p *Plugin) Close() error {
	p.Kill()
	return nil
}

// incompatibleVersion recognises go-plugin's refusal of a plugin whose
// protocol version the host does not speak, and returns the plugin's
// version. go-plugin has no typed error for it; its message has said
// "incompatible API version with plugin. Plugin version: N, Client
// versions: [...]" (capitalised in older releases) since version
// negotiation was added.
func incompatibleVersion(err error) (string, bool) {
	const marker = "Plugin version: "
	msg := err.Error()
	i := strings.Index(msg, marker)
	if !strings.Contains(strings.ToLower(msg), "incompatible api version") || i < 0 {
		return "", false
	}
	v := msg[i+len(marker):]
	if j := strings.IndexAny(v, ", "); j >= 0 {
		v = v[:j]
	}
	return v, true
}
