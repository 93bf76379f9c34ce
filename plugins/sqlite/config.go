package sqlite

import (
	"context"
	"fmt"
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
	DefaultPath          = "./data/kvhost.db"
	DefaultSynchronous   = "NORMAL"
	DefaultCacheSizeKiB  = 16 << 10 // 16 MiB per connection
	DefaultBusyTimeout   = 5 * time.Second
	DefaultMmapSizeBytes = 256 << 20 // 256 MiB
	// DefaultReaders is the size of the reader connection pool.
	DefaultReaders = 4
	// DefaultCleanupBatch is how many expired keys CleanupExpired removes
	// in one transaction, and in all when it is given no limit.
	DefaultCleanupBatch = sqlkv.DefaultCleanupBatch
	// DefaultHistory is how many of the most recent revisions are kept
	// for watches that start at a revision: about 15 MB of history rows
	// for 100-byte values.
	DefaultHistory = 100_000
)

// Config configures a Store. The zero value of each field means its default.
type Config struct {
	// Path of the database file; its directory is created if missing.
	// A lock file Path+".lock" beside it keeps a second Store out.
	Path string
	// Synchronous is NORMAL (durable across a process crash; the last
	// commits may be lost on power loss) or FULL (fsync on every commit,
	// durable across power loss).
	Synchronous string
	// CacheSizeKiB is SQLite's page cache per connection.
	CacheSizeKiB int
	// BusyTimeout bounds how long a statement waits for a lock.
	BusyTimeout time.Duration
	// MmapSizeBytes is how much of the file SQLite maps into memory;
	// negative turns memory-mapped I/O off.
	MmapSizeBytes int64
	// WatchBuffer is how many events a watcher may fall behind before its
	// stream ends with ErrWatchOverflow (pluginapi.DefaultWatchBuffer).
	WatchBuffer int
	// Readers is the size of the reader connection pool.
	Readers int
	// History is how many of the most recent revisions are kept for
	// watches that start at a revision (DefaultHistory). A watch may
	// start at any of them; older ones are a *kv.CompactedError.
	History int

	// now is the clock; tests set it. time.Now when nil.
	now func() time.Time
	// withoutRowID creates the kv table WITHOUT ROWID, for the benchmark
	// that compares layouts.
	withoutRowID bool
	// noHistory skips writing history rows, for the benchmark that
	// measures what they cost. A store opened with it must not be watched
	// from a revision.
	noHistory bool
}

func (c Config) withDefaults() Config {
	if c.Path == "" {
		c.Path = DefaultPath
	}
	if c.Synchronous == "" {
		c.Synchronous = DefaultSynchronous
	}
	c.Synchronous = strings.ToUpper(c.Synchronous)
	if c.CacheSizeKiB == 0 {
		c.CacheSizeKiB = DefaultCacheSizeKiB
	}
	if c.BusyTimeout == 0 {
		c.BusyTimeout = DefaultBusyTimeout
	}
	if c.MmapSizeBytes == 0 {
		c.MmapSizeBytes = DefaultMmapSizeBytes
	}
	if c.MmapSizeBytes < 0 {
		c.MmapSizeBytes = 0
	}
	if c.WatchBuffer == 0 {
		c.WatchBuffer = pluginapi.DefaultWatchBuffer
	}
	if c.Readers == 0 {
		c.Readers = DefaultReaders
	}
	if c.History == 0 {
		c.History = DefaultHistory
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c
}

func (c Config) validate() error {
	switch c.Synchronous {
	case "NORMAL", "FULL":
	default:
		return fmt.Errorf("sqlite: %w: synchronous %q: want NORMAL or FULL", kv.ErrInvalidArgument, c.Synchronous)
	}
	if c.CacheSizeKiB < 0 {
		return fmt.Errorf("sqlite: %w: cache size %d KiB is negative", kv.ErrInvalidArgument, c.CacheSizeKiB)
	}
	if c.BusyTimeout < 0 {
		return fmt.Errorf("sqlite: %w: busy timeout %v is negative", kv.ErrInvalidArgument, c.BusyTimeout)
	}
	if c.WatchBuffer < 0 {
		return fmt.Errorf("sqlite: %w: watch buffer %d is negative", kv.ErrInvalidArgument, c.WatchBuffer)
	}
	if c.Readers < 0 {
		return fmt.Errorf("sqlite: %w: readers %d is negative", kv.ErrInvalidArgument, c.Readers)
	}
	if c.History < 0 {
		return fmt.Errorf("sqlite: %w: history %d is negative", kv.ErrInvalidArgument, c.History)
	}
	return nil
}

// Settings names, as the host passes them to Open.
const (
	SettingPath          = "path"
	SettingSynchronous   = "synchronous"
	SettingCacheSizeKiB  = "cache_size_kib"
	SettingBusyTimeoutMs = "busy_timeout_ms"
	SettingMmapSizeBytes = "mmap_size_bytes"
	SettingWatchBuffer   = "watch_buffer"
	SettingReaders       = "readers"
	SettingHistory       = "history"
)

// ParseSettings turns the host's key/value settings into a Config. An
// unknown setting or a malformed value is an error wrapping
// kv.ErrInvalidArgument that names it.
func ParseSettings(settings map[string]string) (Config, error) {
	var cfg Config
	bad := func(name, value, want string) error {
		return fmt.Errorf("sqlite: %w: setting %s=%q: want %s", kv.ErrInvalidArgument, name, value, want)
	}
	names := make([]string, 0, len(settings))
	for name := range settings {
		names = append(names, name)
	}
	sort.Strings(names) // report the same unknown setting every time
	for _, name := range names {
		v := settings[name]
		switch name {
		case SettingPath:
			if v == "" {
				return cfg, bad(name, v, "a file path")
			}
			cfg.Path = v
		case SettingSynchronous:
			switch s := strings.ToUpper(v); s {
			case "NORMAL", "FULL":
				cfg.Synchronous = s
			default:
				return cfg, bad(name, v, "NORMAL or FULL")
			}
		case SettingCacheSizeKiB:
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return cfg, bad(name, v, "a positive number of KiB")
			}
			cfg.CacheSizeKiB = n
		case SettingBusyTimeoutMs:
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 || n > int64(time.Hour/time.Millisecond) {
				return cfg, bad(name, v, "a positive number of milliseconds up to an hour")
			}
			cfg.BusyTimeout = time.Duration(n) * time.Millisecond
		case SettingMmapSizeBytes:
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return cfg, bad(name, v, "a number of bytes, 0 to turn memory mapping off")
			}
			if n == 0 {
				n = -1 // off, not default
			}
			cfg.MmapSizeBytes = n
		case SettingWatchBuffer:
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return cfg, bad(name, v, "a positive number of events")
			}
			cfg.WatchBuffer = n
		case SettingReaders:
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 || n > 256 {
				return cfg, bad(name, v, "a number of connections from 1 to 256")
			}
			cfg.Readers = n
		case SettingHistory:
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return cfg, bad(name, v, "a positive number of revisions")
			}
			cfg.History = n
		default:
			return cfg, fmt.Errorf("sqlite: %w: unknown setting %q (known: %s)", kv.ErrInvalidArgument, name,
				strings.Join([]string{SettingPath, SettingSynchronous, SettingCacheSizeKiB, SettingBusyTimeoutMs,
					SettingMmapSizeBytes, SettingWatchBuffer, SettingReaders, SettingHistory}, ", "))
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
