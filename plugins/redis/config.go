package redis

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	goredis "github.com/redis/go-redis/v9"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi"
)

// Defaults of the settings; doc.go lists them for operators.
const (
	DefaultAddr = "127.0.0.1:6379"
	// DefaultKeyPrefix starts every Redis key of the store. Its hash tag,
	// {kvhost}, puts them all in one Redis Cluster slot.
	DefaultKeyPrefix = "{kvhost}:"
	// DefaultHistory is how many of the most recent revisions the event
	// stream keeps for watches that start at a revision: about 20 MB of
	// Redis memory for 100-byte values.
	DefaultHistory = 100_000
	// DefaultTimeout bounds one command's reply (reads and writes) when
	// the caller's context allows longer.
	DefaultTimeout = 5 * time.Second
	// DefaultDialTimeout bounds connecting to Redis.
	DefaultDialTimeout = 5 * time.Second
	// DefaultCleanupBatch is how many expired keys CleanupExpired removes
	// in one script, and in all when it is given no limit.
	DefaultCleanupBatch = 1000
)

// Config configures a Store. The zero value of each field means its
// default; at most one of Addr, URL and SentinelMaster may be set.
type Config struct {
	// Addr is the Redis server's host:port (DefaultAddr when neither URL
	// nor SentinelMaster is set).
	Addr string
	// URL is a redis://, rediss:// (TLS) or unix:// URL. It may name a
	// user and a database but not a password: that comes from
	// PasswordEnv, so it stays out of configuration files.
	URL string
	// Username is the ACL user (Redis 6+), if any.
	Username string
	// Password authenticates to Redis. Open reads it from the
	// environment variable that the password_env setting names.
	Password string
	// DB is the database number.
	DB int
	// KeyPrefix starts every Redis key of the store; it must hold a hash
	// tag ("{...}") so that every key lies in one Redis Cluster slot.
	// Stores with different prefixes are independent.
	KeyPrefix string
	// PoolSize is the number of connections in the pool (go-redis's
	// default, 10 per CPU, when 0).
	PoolSize int
	// TLS turns TLS on; TLSConfig, when set, is used as it is.
	TLS       bool
	TLSConfig *tls.Config
	// SentinelMaster and SentinelAddrs connect through Redis Sentinel
	// (go-redis's failover client): the master of that name, found by
	// asking the sentinels. SentinelPassword authenticates to them.
	SentinelMaster   string
	SentinelAddrs    []string
	SentinelPassword string
	// History is how many of the most recent revisions the event stream
	// keeps for watches that start at a revision (DefaultHistory).
	History int
	// WatchBuffer is how many events a watcher may fall behind before its
	// stream ends with ErrWatchOverflow (pluginapi.DefaultWatchBuffer).
	WatchBuffer int
	// Timeout bounds each command's reply, DialTimeout each connection
	// attempt.
	Timeout     time.Duration
	DialTimeout time.Duration

	// beforeRead, when set (by tests), runs in the follower before each
	// read of the stream.
	beforeRead func()
	// scriptedLists makes every List read with the script (tests of that
	// path).
	scriptedLists bool
	// scriptedBatches makes every Batch apply with the script (tests of
	// that path).
	scriptedBatches bool
}

func (c Config) withDefaults() Config {
	if c.Addr == "" && c.URL == "" && c.SentinelMaster == "" {
		c.Addr = DefaultAddr
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = DefaultKeyPrefix
	}
	if c.History == 0 {
		c.History = DefaultHistory
	}
	if c.WatchBuffer == 0 {
		c.WatchBuffer = pluginapi.DefaultWatchBuffer
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	return c
}

func (c Config) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("redis: %w: %s", kv.ErrInvalidArgument, fmt.Sprintf(format, args...))
	}
	n := 0
	for _, set := range []bool{c.Addr != "", c.URL != "", c.SentinelMaster != ""} {
		if set {
			n++
		}
	}
	if n > 1 {
		return bad("set one of addr, url and sentinel_master, not several")
	}
	if c.SentinelMaster != "" && len(c.SentinelAddrs) == 0 {
		return bad("sentinel_master %q needs sentinel_addrs", c.SentinelMaster)
	}
	if c.SentinelMaster == "" && len(c.SentinelAddrs) > 0 {
		return bad("sentinel_addrs needs sentinel_master")
	}
	if !hasHashTag(c.KeyPrefix) {
		return bad("key prefix %q holds no hash tag: it needs {...} with something between the braces, so that every key of the store lies in one Redis Cluster slot", c.KeyPrefix)
	}
	if c.DB < 0 {
		return bad("db %d is negative", c.DB)
	}
	if c.PoolSize < 0 || c.History < 0 || c.WatchBuffer < 0 || c.Timeout < 0 || c.DialTimeout < 0 {
		return bad("pool size, history, watch buffer and timeouts must not be negative")
	}
	return nil
}

// hasHashTag reports whether Redis Cluster hashes prefix+anything by a
// tag inside prefix: the first '{' followed, later in prefix, by a '}'
// with at least one byte between them.
func hasHashTag(prefix string) bool {
	open := strings.IndexByte(prefix, '{')
	if open < 0 {
		return false
	}
	end := strings.IndexByte(prefix[open+1:], '}')
	return end > 0
}

// options builds the go-redis client options. Commands are never retried
// by go-redis: a write script whose reply was lost may have run, and
// running it again would apply it twice; the caller sees ErrUnavailable
// and decides.
func (c Config) client() (*goredis.Client, error) {
	var tlsConf *tls.Config
	if c.TLS || c.TLSConfig != nil {
		tlsConf = c.TLSConfig
		if tlsConf == nil {
			tlsConf = &tls.Config{MinVersion: tls.VersionTLS12}
		}
	}
	if c.SentinelMaster != "" {
		return goredis.NewFailoverClient(&goredis.FailoverOptions{
			MasterName:            c.SentinelMaster,
			SentinelAddrs:         c.SentinelAddrs,
			SentinelPassword:      c.SentinelPassword,
			Username:              c.Username,
			Password:              c.Password,
			DB:                    c.DB,
			PoolSize:              c.PoolSize,
			TLSConfig:             tlsConf,
			MaxRetries:            -1,
			DialerRetries:         1,
			DialTimeout:           c.DialTimeout,
			ReadTimeout:           c.Timeout,
			WriteTimeout:          c.Timeout,
			ContextTimeoutEnabled: true,
			DisableIdentity:       true,
			Protocol:              2,
		}), nil
	}
	opt := &goredis.Options{Addr: c.Addr, Network: "tcp"}
	if c.URL != "" {
		if err := checkURL(c.URL); err != nil {
			return nil, err
		}
		var err error
		if opt, err = goredis.ParseURL(c.URL); err != nil {
			return nil, fmt.Errorf("redis: %w: url: %v", kv.ErrInvalidArgument, err)
		}
		if c.DB != 0 {
			opt.DB = c.DB
		}
		if tlsConf == nil {
			tlsConf = opt.TLSConfig
		}
	} else {
		opt.DB = c.DB
	}
	if c.Username != "" {
		opt.Username = c.Username
	}
	opt.Password = c.Password
	opt.PoolSize = c.PoolSize
	opt.TLSConfig = tlsConf
	opt.MaxRetries = -1
	opt.DialerRetries = 1 // a server that refuses is down now: say so at once
	opt.DialTimeout = c.DialTimeout
	opt.ReadTimeout = c.Timeout
	opt.WriteTimeout = c.Timeout
	opt.ContextTimeoutEnabled = true
	opt.DisableIdentity = true
	opt.Protocol = 2 // replies as arrays, as the stream's entries are read positionally
	return goredis.NewClient(opt), nil
}

// checkURL refuses a URL that does not parse or that holds a password.
// Its error never shows the URL, which may hold one.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("redis: %w: url does not parse", kv.ErrInvalidArgument)
	}
	if _, has := u.User.Password(); has {
		return fmt.Errorf("redis: %w: url holds a password: put it in an environment variable and name that in the password_env setting", kv.ErrInvalidArgument)
	}
	return nil
}

// Settings names, as the host passes them to Open.
const (
	SettingAddr                = "addr"
	SettingURL                 = "url"
	SettingUsername            = "username"
	SettingPasswordEnv         = "password_env"
	SettingDB                  = "db"
	SettingKeyPrefix           = "key_prefix"
	SettingPoolSize            = "pool_size"
	SettingTLS                 = "tls"
	SettingTLSCAFile           = "tls_ca_file"
	SettingTLSServerName       = "tls_server_name"
	SettingSentinelMaster      = "sentinel_master"
	SettingSentinelAddrs       = "sentinel_addrs"
	SettingSentinelPasswordEnv = "sentinel_password_env"
	SettingHistory             = "history"
	SettingWatchBuffer         = "watch_buffer"
	SettingTimeoutMs           = "timeout_ms"
	SettingDialTimeoutMs       = "dial_timeout_ms"
)

var settingNames = []string{
	SettingAddr, SettingURL, SettingUsername, SettingPasswordEnv, SettingDB, SettingKeyPrefix,
	SettingPoolSize, SettingTLS, SettingTLSCAFile, SettingTLSServerName, SettingSentinelMaster,
	SettingSentinelAddrs, SettingSentinelPasswordEnv, SettingHistory, SettingWatchBuffer,
	SettingTimeoutMs, SettingDialTimeoutMs,
}

// ParseSettings turns the host's key/value settings into a Config,
// reading passwords from the environment variables the settings name. An
// unknown setting, a malformed value or a named variable that is not set
// is an error wrapping kv.ErrInvalidArgument that names it (never a
// password).
func ParseSettings(settings map[string]string) (Config, error) {
	var cfg Config
	bad := func(name, value, want string) error {
		return fmt.Errorf("redis: %w: setting %s=%q: want %s", kv.ErrInvalidArgument, name, value, want)
	}
	fromEnv := func(name, variable string) (string, error) {
		if variable == "" {
			return "", bad(name, variable, "the name of an environment variable")
		}
		v, ok := os.LookupEnv(variable)
		if !ok || v == "" {
			return "", fmt.Errorf("redis: %w: setting %s names the environment variable %s, which is not set", kv.ErrInvalidArgument, name, variable)
		}
		return v, nil
	}
	millis := func(name, v string) (time.Duration, error) {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 || n > int64(time.Hour/time.Millisecond) {
			return 0, bad(name, v, "a positive number of milliseconds up to an hour")
		}
		return time.Duration(n) * time.Millisecond, nil
	}
	var caFile, serverName string
	names := make([]string, 0, len(settings))
	for name := range settings {
		names = append(names, name)
	}
	sort.Strings(names) // report the same problem every time
	for _, name := range names {
		v := settings[name]
		var err error
		switch name {
		case SettingAddr:
			if v == "" || !strings.Contains(v, ":") {
				return cfg, bad(name, v, "host:port")
			}
			cfg.Addr = v
		case SettingURL:
			if v == "" {
				return cfg, bad(name, v, "a redis://, rediss:// or unix:// URL")
			}
			if err := checkURL(v); err != nil {
				return cfg, err
			}
			cfg.URL = v
		case SettingUsername:
			cfg.Username = v
		case SettingPasswordEnv:
			if cfg.Password, err = fromEnv(name, v); err != nil {
				return cfg, err
			}
		case SettingDB:
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return cfg, bad(name, v, "a database number, 0 or more")
			}
			cfg.DB = n
		case SettingKeyPrefix:
			if !hasHashTag(v) {
				return cfg, bad(name, v, "a prefix with a hash tag, such as {kvhost}: or app:{sessions}:")
			}
			cfg.KeyPrefix = v
		case SettingPoolSize:
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 || n > 10000 {
				return cfg, bad(name, v, "a number of connections from 1 to 10000")
			}
			cfg.PoolSize = n
		case SettingTLS:
			b, err := strconv.ParseBool(v)
			if err != nil {
				return cfg, bad(name, v, "true or false")
			}
			cfg.TLS = b
		case SettingTLSCAFile:
			caFile = v
		case SettingTLSServerName:
			serverName = v
		case SettingSentinelMaster:
			if v == "" {
				return cfg, bad(name, v, "the master's name as the sentinels know it")
			}
			cfg.SentinelMaster = v
		case SettingSentinelAddrs:
			for a := range strings.SplitSeq(v, ",") {
				if a = strings.TrimSpace(a); a != "" {
					cfg.SentinelAddrs = append(cfg.SentinelAddrs, a)
				}
			}
			if len(cfg.SentinelAddrs) == 0 {
				return cfg, bad(name, v, "host:port of one or more sentinels, separated by commas")
			}
		case SettingSentinelPasswordEnv:
			if cfg.SentinelPassword, err = fromEnv(name, v); err != nil {
				return cfg, err
			}
		case SettingHistory:
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return cfg, bad(name, v, "a positive number of revisions")
			}
			cfg.History = n
		case SettingWatchBuffer:
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return cfg, bad(name, v, "a positive number of events")
			}
			cfg.WatchBuffer = n
		case SettingTimeoutMs:
			if cfg.Timeout, err = millis(name, v); err != nil {
				return cfg, err
			}
		case SettingDialTimeoutMs:
			if cfg.DialTimeout, err = millis(name, v); err != nil {
				return cfg, err
			}
		default:
			return cfg, fmt.Errorf("redis: %w: unknown setting %q (known: %s)", kv.ErrInvalidArgument, name, strings.Join(settingNames, ", "))
		}
	}
	if caFile != "" || serverName != "" {
		if !cfg.TLS && !strings.HasPrefix(cfg.URL, "rediss://") {
			return cfg, fmt.Errorf("redis: %w: %s and %s need tls=true (or a rediss:// url)", kv.ErrInvalidArgument, SettingTLSCAFile, SettingTLSServerName)
		}
		tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
		if caFile != "" {
			pem, err := os.ReadFile(caFile)
			if err != nil {
				return cfg, fmt.Errorf("redis: %w: setting %s: %v", kv.ErrInvalidArgument, SettingTLSCAFile, err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return cfg, fmt.Errorf("redis: %w: setting %s: %s holds no PEM certificate", kv.ErrInvalidArgument, SettingTLSCAFile, caFile)
			}
		}
		if serverName == "" && cfg.URL != "" {
			if u, err := url.Parse(cfg.URL); err == nil {
				tc.ServerName = u.Hostname()
			}
		}
		cfg.TLSConfig = tc
	}
	return cfg, nil
}

// Open opens a Store from the host's settings; it is the plugin's
// pluginapi.OpenFunc.
//
// Open also routes go-redis's own log lines (a failed dial, a sentinel
// switching masters), which it writes to stderr, to the hclog default
// logger at debug level: a plugin's stderr is the host's log, and during
// an outage go-redis would write a line for every call. Every failure
// reaches the caller as an error, and the follower logs the outage once.
func Open(ctx context.Context, settings map[string]string) (kv.Backend, error) {
	quietOnce.Do(func() { goredis.SetLogger(hclogPrintf{hclog.Default().Named("redis").Named("go-redis")}) })
	cfg, err := ParseSettings(settings)
	if err != nil {
		return nil, err
	}
	s, err := New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return s, nil
}

var _ pluginapi.OpenFunc = Open

var quietOnce sync.Once

// hclogPrintf is go-redis's logger interface on hclog.
type hclogPrintf struct{ log hclog.Logger }

func (l hclogPrintf) Printf(_ context.Context, format string, v ...any) {
	l.log.Debug(fmt.Sprintf(format, v...))
}
