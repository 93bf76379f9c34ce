// Package config reads kvhost's configuration file: YAML, strict (an
// unknown field is an error naming it and its line), with defaults for
// every field: a file that only says how callers authenticate (auth) is a
// working loopback server on the SQLite backend. Without any file, kvhost
// uses Default: the same, with anonymous access.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/kvhost/kvhost/host"
	"github.com/kvhost/kvhost/host/policy"
	"github.com/kvhost/kvhost/host/server"
)

// File is the whole configuration file.
type File struct {
	// Listen is the gRPC API address (default 127.0.0.1:7070).
	Listen string `yaml:"listen"`
	// ListenUnix, when set, also serves the API on a Unix socket at this
	// path, for clients on this machine: the same server, tokens, limits
	// and TLS as Listen, without the TCP loopback's cost per call. The
	// socket is created with ListenUnixMode and removed on shutdown; a
	// socket left by a killed server is replaced, one a live server
	// answers on is refused.
	ListenUnix string `yaml:"listen_unix"`
	// ListenUnixMode is the socket's permissions, "0600" (the server's
	// user only; the default) or "0660" (its group too).
	ListenUnixMode string `yaml:"listen_unix_mode"`
	// MetricsListen serves /metrics, /healthz and /readyz ("" disables;
	// default 127.0.0.1:7071).
	MetricsListen *string `yaml:"metrics_listen"`
	// MetricsToken, when set, is the bearer token /metrics asks for. A
	// metrics_listen beyond loopback needs one, or
	// AllowOpenMetricsOnNetwork.
	MetricsToken string `yaml:"metrics_token"`
	// EnablePprof serves Go's profiler under /debug/pprof/ on the
	// metrics listener (off by default), behind metrics_token when one
	// is set. A profile shows what the server is doing, and a CPU profile
	// costs CPU while it runs: like /metrics, it needs a token beyond
	// loopback (or allow_open_metrics_on_network).
	EnablePprof bool `yaml:"enable_pprof"`
	// AllowOpenMetricsOnNetwork serves /metrics without a token on a
	// non-loopback metrics_listen (it shows key counts and operation
	// rates to anyone who can reach it).
	AllowOpenMetricsOnNetwork bool `yaml:"allow_open_metrics_on_network"`
	// DataDir is where embedded backends keep data (default ./data).
	DataDir string      `yaml:"data_dir"`
	Backend Backend     `yaml:"backend"`
	Auth    Auth        `yaml:"auth"`
	TLS     TLS         `yaml:"tls"`
	Limits  host.Limits `yaml:"limits"`
	// RequestTimeout bounds every unary call, whatever deadline the client
	// sent (default 10s).
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// CleanupInterval: how often expired keys are removed (default 1s).
	CleanupInterval time.Duration `yaml:"cleanup_interval"`
	// Cache is the host's read cache (host.CacheConfig).
	Cache host.CacheConfig `yaml:"cache"`
	// SlowThreshold: operations at least this slow are counted and logged (default 100ms).
	SlowThreshold time.Duration `yaml:"slow_threshold"`
	// LogLevel: debug, info, warn or error (default info).
	LogLevel string `yaml:"log_level"`
	// Policies run on every operation, in order (see policy.SpecConfig).
	Policies []policy.SpecConfig `yaml:"policies"`
	// PolicyCacheDir keeps compiled policies across restarts (default
	// DATA_DIR/policy-cache).
	PolicyCacheDir string `yaml:"policy_cache_dir"`

	// dir is the configuration file's directory: relative policy paths
	// are resolved against it.
	dir string
}

// Backend chooses the backend plugin.
type Backend struct {
	// Plugin names a plugin binary kvhost-plugin-NAME, looked up beside
	// the kvhost binary, then on PATH (default sqlite).
	Plugin string `yaml:"plugin"`
	// Path is an explicit plugin binary; it overrides Plugin.
	Path string `yaml:"path"`
	// SHA256 pins the binary (hex).
	SHA256 string `yaml:"sha256"`
	// Settings are passed to the backend. For sqlite, path defaults to
	// DATA_DIR/kvhost.db.
	Settings map[string]string `yaml:"settings"`
	// SharedPages lets large list pages cross from the plugin through
	// memory shared with it rather than the plugin connection (default
	// true, on Linux; false keeps every page on the connection).
	SharedPages *bool `yaml:"shared_pages"`
}

// Auth configures API authentication.
type Auth struct {
	// Anonymous lets calls without a token in, with no principal (what
	// policies see as anonymous), in tenant AnonymousTenant. Off unless said, except for the
	// no-config default (which listens on loopback only).
	Anonymous bool `yaml:"anonymous"`
	// AnonymousTenant is the tenant of anonymous calls (default
	// "anonymous": they share no keys with token holders unless told to).
	AnonymousTenant string `yaml:"anonymous_tenant"`
	// AnonymousAdmin lets anonymous calls see the whole backend's figures
	// (on in the no-config default, a single-user store on loopback).
	AnonymousAdmin bool `yaml:"anonymous_admin"`
	// AllowAnonymousOnNetwork lets anonymous access be on while listen
	// is not a loopback address: anyone who can reach the port can then
	// use the store. Without it such a configuration is refused.
	AllowAnonymousOnNetwork bool `yaml:"allow_anonymous_on_network"`
	// Tokens are the accepted bearer tokens; each names its principal and
	// tenant (and admin: true to see the whole backend's figures).
	// SIGHUP re-reads them from the file.
	Tokens []server.Token `yaml:"tokens"`
}

// TLS turns on TLS for the API when both files are set.
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// AllowPlaintextOnNetwork lets tokens travel without TLS while listen
	// is not a loopback address, where anyone on the path can read them.
	// Without it such a configuration is refused.
	AllowPlaintextOnNetwork bool `yaml:"allow_plaintext_on_network"`
}

// Default is the configuration used when there is no file: SQLite under
// ./data, loopback only, anonymous access.
func Default() *File {
	f := &File{Auth: Auth{Anonymous: true, AnonymousAdmin: true}}
	f.applyDefaults()
	return f
}

// Load reads and validates a configuration file.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	f, err := parse(data, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return f, nil
}

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid configuration")

// Parse parses and validates configuration YAML; relative policy paths
// stay relative to the working directory.
func Parse(data []byte) (*File, error) { return parse(data, "") }

func parse(data []byte, dir string) (*File, error) {
	f := &File{dir: dir}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	f.applyDefaults()
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *File) applyDefaults() {
	if f.Listen == "" {
		f.Listen = "127.0.0.1:7070"
	}
	if f.MetricsListen == nil {
		m := "127.0.0.1:7071"
		f.MetricsListen = &m
	}
	if f.DataDir == "" {
		f.DataDir = "data"
	}
	if f.Backend.Plugin == "" && f.Backend.Path == "" {
		f.Backend.Plugin = "sqlite"
	}
	if f.Backend.Settings == nil {
		f.Backend.Settings = map[string]string{}
	}
	if f.Backend.Plugin == "sqlite" && f.Backend.Path == "" && f.Backend.Settings["path"] == "" {
		f.Backend.Settings["path"] = filepath.Join(f.DataDir, "kvhost.db")
	}
	if f.ListenUnixMode == "" {
		f.ListenUnixMode = "0600"
	}
	if f.RequestTimeout == 0 {
		f.RequestTimeout = 10 * time.Second
	}
	if f.LogLevel == "" {
		f.LogLevel = "info"
	}
	if f.PolicyCacheDir == "" {
		f.PolicyCacheDir = filepath.Join(f.DataDir, "policy-cache")
	}
	if f.Auth.AnonymousTenant == "" {
		f.Auth.AnonymousTenant = "anonymous"
	}
}

// Validate checks the file, naming the first problem.
func (f *File) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	if _, _, err := net.SplitHostPort(f.Listen); err != nil {
		return bad("listen %q: %v", f.Listen, err)
	}
	if f.ListenUnix != "" {
		if len(f.ListenUnix) > server.MaxUnixPath {
			return bad("listen_unix %q: %d bytes, longer than the %d a socket path allows", f.ListenUnix, len(f.ListenUnix), server.MaxUnixPath)
		}
	}
	if _, err := f.UnixMode(); err != nil {
		return bad("%v", err)
	}
	if m := *f.MetricsListen; m != "" {
		if _, _, err := net.SplitHostPort(m); err != nil {
			return bad("metrics_listen %q: %v", m, err)
		}
	}
	if (f.TLS.CertFile == "") != (f.TLS.KeyFile == "") {
		return bad("tls needs both cert_file and key_file")
	}
	if len(f.Auth.Tokens) == 0 && !f.Auth.Anonymous {
		return bad("auth: no tokens and anonymous access is off: nobody could call this server (add auth.tokens or set auth.anonymous: true)")
	}
	for i, t := range f.Auth.Tokens {
		if _, err := t.Digest(); err != nil {
			return bad("auth.tokens[%d]: %v", i, err)
		}
		if t.Principal == "" {
			return bad("auth.tokens[%d] needs a principal", i)
		}
		if t.Tenant == "" {
			return bad("auth.tokens[%d] (%s) needs a tenant: the tenant its calls act for", i, t.Principal)
		}
		if err := host.ValidateTenant(t.Tenant); err != nil {
			return bad("auth.tokens[%d]: %v", i, err)
		}
	}
	if err := host.ValidateTenant(f.Auth.AnonymousTenant); err != nil {
		return bad("auth.anonymous_tenant: %v", err)
	}
	if err := f.validateExposure(); err != nil {
		return bad("%v", err)
	}
	if f.RequestTimeout < 0 || f.CleanupInterval < 0 || f.SlowThreshold < 0 {
		return bad("request_timeout, cleanup_interval and slow_threshold must not be negative")
	}
	switch f.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return bad("log_level %q: want debug, info, warn or error", f.LogLevel)
	}
	if _, err := f.PolicySpecs(); err != nil {
		return err
	}
	return nil
}

// PolicySpecs returns the policy chain as engine specs, relative paths
// resolved against the configuration file's directory.
func (f *File) PolicySpecs() ([]policy.Spec, error) {
	specs := make([]policy.Spec, 0, len(f.Policies))
	names := map[string]bool{}
	for i, sc := range f.Policies {
		if sc.Name == "" {
			return nil, fmt.Errorf("%w: policies[%d]: name is empty", ErrInvalid, i)
		}
		if names[sc.Name] {
			return nil, fmt.Errorf("%w: policies[%d]: name %q is used twice", ErrInvalid, i, sc.Name)
		}
		names[sc.Name] = true
		if sc.Timeout < 0 || sc.PoolSize < 0 {
			return nil, fmt.Errorf("%w: policy %q: timeout and pool_size must not be negative", ErrInvalid, sc.Name)
		}
		spec, err := sc.Spec(f.dir)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		specs = append(specs, spec)
	}
	return specs, nil
}

// validateExposure refuses what would expose the store beyond this
// machine unless the file says, by name, that it is meant. listen_unix is
// not checked: a Unix socket is local, like loopback (plaintext on it never
// leaves the machine), and its file mode, 0600 or 0660, decides which local
// users may connect.
func (f *File) validateExposure() error {
	if m := *f.MetricsListen; m != "" && f.EnablePprof && !loopback(m) && f.MetricsToken == "" {
		return fmt.Errorf("enable_pprof is on and metrics_listen %q is not a loopback address: anyone who reaches it could profile the server "+
			"(a CPU profile costs CPU for as long as the caller asks); set metrics_token (allow_open_metrics_on_network does not open the profiler)", m)
	}
	if m := *f.MetricsListen; m != "" && !loopback(m) && f.MetricsToken == "" && !f.AllowOpenMetricsOnNetwork {
		return fmt.Errorf("metrics_listen %q is not a loopback address and /metrics would be open to anyone who reaches it; "+
			"set metrics_token, or allow_open_metrics_on_network: true", m)
	}
	if loopback(f.Listen) {
		return nil
	}
	if f.Auth.Anonymous && !f.Auth.AllowAnonymousOnNetwork {
		return fmt.Errorf("auth.anonymous is on and listen %q is not a loopback address: anyone who can reach it could read and write the store; "+
			"listen on 127.0.0.1, use tokens, or set auth.allow_anonymous_on_network: true if that is really meant", f.Listen)
	}
	if len(f.Auth.Tokens) > 0 && f.TLS.CertFile == "" && !f.TLS.AllowPlaintextOnNetwork {
		return fmt.Errorf("listen %q is not a loopback address and tls is off: bearer tokens would cross the network in plaintext; "+
			"set tls.cert_file and tls.key_file, or tls.allow_plaintext_on_network: true if the network is trusted", f.Listen)
	}
	return nil
}

// Insecure lists the exposures the file allows explicitly, for a loud
// warning at start.
func (f *File) Insecure() []string {
	var out []string
	if m := *f.MetricsListen; m != "" && !loopback(m) && f.MetricsToken == "" {
		out = append(out, "open /metrics on "+m+" (allow_open_metrics_on_network)")
	}
	if loopback(f.Listen) {
		return out
	}
	if f.Auth.Anonymous {
		out = append(out, "anonymous access on "+f.Listen+" (auth.allow_anonymous_on_network)")
	}
	if len(f.Auth.Tokens) > 0 && f.TLS.CertFile == "" {
		out = append(out, "bearer tokens in plaintext on "+f.Listen+" (tls.allow_plaintext_on_network)")
	}
	return out
}

// UnixMode is listen_unix_mode as a file mode.
func (f *File) UnixMode() (os.FileMode, error) {
	switch f.ListenUnixMode {
	case "0600", "600":
		return 0o600, nil
	case "0660", "660":
		return 0o660, nil
	}
	return 0, fmt.Errorf("listen_unix_mode %q: want \"0600\" (owner only) or \"0660\" (owner and group)", f.ListenUnixMode)
}

// Loopback reports whether the API listens on a loopback address only.
func (f *File) Loopback() bool { return loopback(f.Listen) }

// loopback reports whether addr (host:port) is a loopback address only.
func loopback(addr string) bool {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// PluginPath resolves the backend plugin binary: Backend.Path, or
// kvhost-plugin-NAME beside the running executable, then on PATH.
func (f *File) PluginPath() (string, error) {
	if f.Backend.Path != "" {
		return f.Backend.Path, nil
	}
	name := "kvhost-plugin-" + f.Backend.Plugin
	var tried []string
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		tried = append(tried, filepath.Dir(exe))
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%w: backend plugin %q: %s not found in %v or on PATH (set backend.path)", ErrInvalid, f.Backend.Plugin, name, tried)
}
