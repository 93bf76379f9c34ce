package postgres

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi"
	"github.com/kvhost/kvhost/plugins/internal/sqlkv"
)

// Defaults of the settings; doc.go lists them for operators.
const (
	DefaultSchema           = "kvhost"
	DefaultPoolSize         = 8
	DefaultStatementTimeout = 30 * time.Second
	DefaultConnectTimeout   = 30 * time.Second
	// DefaultHistory is how many of the most recent revisions are kept
	// for watches that start at a revision.
	DefaultHistory = 100_000
	// DefaultCleanupBatch is how many expired keys CleanupExpired removes
	// in one transaction, and in all when it is given no limit.
	DefaultCleanupBatch = sqlkv.DefaultCleanupBatch
)

// Setting names, as the host passes them.
const (
	SettingDSN                = "dsn"
	SettingPasswordEnv        = "password_env"
	SettingSchema             = "schema"
	SettingPoolSize           = "pool_size"
	SettingStatementTimeoutMs = "statement_timeout_ms"
	SettingConnectTimeoutMs   = "connect_timeout_ms"
	SettingHistory            = "history"
	SettingWatchBuffer        = "watch_buffer"
)

// Config configures a Store. The zero value of each field means its default.
type Config struct {
	// DSN is a libpq connection string or URL. Empty means libpq's
	// defaults and PG* environment variables.
	DSN string
	// Password, when set, overrides the DSN's password. Open fills it
	// from the environment variable that the password_env setting names,
	// so that the password stays out of configuration files.
	Password string
	// Schema holds the store's tables; several stores can share one
	// database under different schemas. It is created if missing.
	Schema string
	// PoolSize is the most connections the store opens (plus one for
	// listening to notifications).
	PoolSize int
	// StatementTimeout bounds each statement on the server.
	StatementTimeout time.Duration
	// ConnectTimeout is how long New retries a server that is not up
	// (refused or unreachable) before giving up. A refused password
	// fails at once.
	ConnectTimeout time.Duration
	// History is how many of the most recent revisions are kept for
	// watches that start at a revision (DefaultHistory).
	History int
	// WatchBuffer is how many events a watcher may fall behind before its
	// stream ends with ErrWatchOverflow (pluginapi.DefaultWatchBuffer).
	WatchBuffer int

	// now is the clock; tests set it. time.Now when nil.
	now func() time.Time
}

var schemaRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,39}$`)

func (c Config) withDefaults() Config {
	if c.Schema == "" {
		c.Schema = DefaultSchema
	}
	if c.PoolSize == 0 {
		c.PoolSize = DefaultPoolSize
	}
	if c.StatementTimeout == 0 {
		c.StatementTimeout = DefaultStatementTimeout
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.History == 0 {
		c.History = DefaultHistory
	}
	if c.WatchBuffer == 0 {
		c.WatchBuffer = pluginapi.DefaultWatchBuffer
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c
}

func (c Config) validate() error {
	if !schemaRE.MatchString(c.Schema) {
		return fmt.Errorf("postgres: %w: schema %q: want lower-case letters, digits and _, at most 40", kv.ErrInvalidArgument, c.Schema)
	}
	if c.PoolSize < 1 {
		return fmt.Errorf("postgres: %w: pool size %d: want at least 1", kv.ErrInvalidArgument, c.PoolSize)
	}
	if c.StatementTimeout < 0 || c.ConnectTimeout < 0 || c.History < 0 || c.WatchBuffer < 0 {
		return fmt.Errorf("postgres: %w: negative timeout, history or watch buffer", kv.ErrInvalidArgument)
	}
	return nil
}

// ParseSettings reads a Config from the host's settings; unknown settings
// are refused so that a typo does not silently mean a default.
func ParseSettings(settings map[string]string) (Config, error) {
	var cfg Config
	bad := func(name, v, want string) error {
		return fmt.Errorf("postgres: %w: setting %s=%q: want %s", kv.ErrInvalidArgument, name, v, want)
	}
	names := make([]string, 0, len(settings))
	for name := range settings {
		names = append(names, name)
	}
	sort.Strings(names)
	positive := func(name, v string) (int, error) {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return 0, bad(name, v, "a positive integer")
		}
		return n, nil
	}
	for _, name := range names {
		v := settings[name]
		var err error
		var n int
		switch name {
		case SettingDSN:
			cfg.DSN = v
		case SettingPasswordEnv:
			pw, ok := os.LookupEnv(v)
			if !ok {
				return cfg, fmt.Errorf("postgres: %w: setting %s names environment variable %q, which is not set", kv.ErrInvalidArgument, name, v)
			}
			cfg.Password = pw
		case SettingSchema:
			cfg.Schema = v
		case SettingPoolSize:
			n, err = positive(name, v)
			cfg.PoolSize = n
		case SettingStatementTimeoutMs:
			n, err = positive(name, v)
			cfg.StatementTimeout = time.Duration(n) * time.Millisecond
		case SettingConnectTimeoutMs:
			n, err = positive(name, v)
			cfg.ConnectTimeout = time.Duration(n) * time.Millisecond
		case SettingHistory:
			n, err = positive(name, v)
			cfg.History = n
		case SettingWatchBuffer:
			n, err = positive(name, v)
			cfg.WatchBuffer = n
		default:
			return cfg, fmt.Errorf("postgres: %w: unknown setting %q (known: %s)", kv.ErrInvalidArgument, name,
				strings.Join([]string{SettingDSN, SettingPasswordEnv, SettingSchema, SettingPoolSize,
					SettingStatementTimeoutMs, SettingConnectTimeoutMs, SettingHistory, SettingWatchBuffer}, ", "))
		}
		if err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// Open opens a Store from the host's settings; it is the plugin's
// pluginapi.OpenFunc.
func Open(ctx context.Context, settings map[string]string) (kv.Backend, error) {
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
