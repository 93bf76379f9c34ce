package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi"
)

// PluginConfig says which backend plugin to run.
type PluginConfig struct {
	// Path of the plugin binary.
	Path string
	// SHA256 (hex) pins the binary; go-plugin refuses one that differs.
	SHA256 string
	// Settings are passed to the backend's Open.
	Settings map[string]string
	// StartTimeout bounds the plugin handshake (default 10s).
	StartTimeout time.Duration
	// DisableSharedPages keeps every list page on the plugin connection
	// (pluginapi.StartConfig.DisableSharedPages).
	DisableSharedPages bool
}

// Config configures a Store.
type Config struct {
	Plugin PluginConfig
	// DefaultIdentity is used for calls whose context carries none
	// (default: principal "local", tenant "default", admin).
	DefaultIdentity Identity
	Limits          Limits
	// CleanupInterval is how often expired keys are removed on backends
	// that ask for it (default 1s; negative disables).
	CleanupInterval time.Duration
	// SlowThreshold: operations at least this slow are counted and logged
	// (default 100ms; negative disables).
	SlowThreshold time.Duration
	// Guard, when set, checks every operation (the policy engine).
	Guard Guard
	// Logger receives the host's and the plugin's logs (slog.Default when nil).
	Logger *slog.Logger
	// Metrics, when set, records per-operation metrics.
	Metrics *Metrics
	// Cache configures the read cache.
	Cache CacheConfig
	// RestartBackoff bounds the delay between plugin restart attempts
	// (default 100ms doubling to 5s).
	RestartBackoffMin, RestartBackoffMax time.Duration
	// PingInterval is how often the host pings the plugin (default 1s);
	// a ping unanswered within PingTimeout (default 2s) makes the store
	// not ready and calls fail fast with kv.ErrUnavailable; a plugin that
	// has not answered for HangTimeout (default 10s) is killed and
	// restarted.
	PingInterval, PingTimeout, HangTimeout time.Duration
}

// Store is the kvhost store: the stack of layers over one backend (see
// layers.go). Its methods act for the identity in their context and are
// safe for concurrent use. The kv.Backend methods are the stack's; Stats
// adds the backend's totals to the tenant's figures.
type Store struct {
	backend           // the top of the stack
	top     composite // the same top, for the operations the host builds
	cfg     Config
	log     *slog.Logger
	sup     *supervisor // nil for a store over an in-process backend
	bottom  backend     // the backend itself, below tenancy and guards
	cache   *cached     // the read cache, nil when off
	feed    *feed       // the backend's changes, for the cache and the tracker
	tracker *tracker    // clients' tracking sessions
	// stopGuard ends the tracker's following of a changing guard.
	stopGuard chan struct{}
	limits    Limits
	info      func() kv.Info

	stopCleanup context.CancelFunc
	cleanupDone chan struct{}
	closeOnce   sync.Once
}

// Open starts the backend plugin of cfg.Plugin and returns the store over
// it, supervised: a plugin that dies is restarted.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	sup, err := startSupervisor(ctx, pluginapi.StartConfig{
		Path:         cfg.Plugin.Path,
		Settings:     cfg.Plugin.Settings,
		SHA256:       cfg.Plugin.SHA256,
		StartTimeout: cfg.Plugin.StartTimeout,
		Logger:       pluginLogger(cfg.Logger),

		DisableSharedPages: cfg.Plugin.DisableSharedPages,
		Pages:              cfg.Metrics.pageCounts(),
	}, cfg.Logger, cfg.Metrics, supervision{
		minBackoff: cfg.RestartBackoffMin, maxBackoff: cfg.RestartBackoffMax,
		pingInterval: cfg.PingInterval, pingTimeout: cfg.PingTimeout, hangTimeout: cfg.HangTimeout,
	})
	if err != nil {
		return nil, err
	}
	s := build(cfg, sup, sup.currentInfo)
	s.sup = sup
	return s, nil
}

// New returns a store over a backend that runs in this process (tests, an
// embedded store); cfg.Plugin is ignored. Close closes the backend.
func New(ctx context.Context, b kv.Backend, cfg Config) (*Store, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	info, err := b.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("backend info: %w", err)
	}
	return build(cfg, complete(b), func() kv.Info { return info }), nil
}

func (cfg Config) withDefaults() (Config, error) {
	var err error
	if cfg.Limits, err = cfg.Limits.withDefaults(); err != nil {
		return cfg, err
	}
	if cfg.DefaultIdentity == (Identity{}) {
		// A program embedding the store owns all of it.
		cfg.DefaultIdentity = Identity{Principal: "local", Tenant: DefaultTenant, Admin: true}
	}
	if err := ValidateTenant(cfg.DefaultIdentity.Tenant); err != nil {
		return cfg, fmt.Errorf("default identity: %w", err)
	}
	if cfg.CleanupInterval == 0 {
		cfg.CleanupInterval = time.Second
	}
	if cfg.Cache.MaxBytes == 0 {
		cfg.Cache.MaxBytes = DefaultCacheBytes
	}
	if cfg.SlowThreshold == 0 {
		cfg.SlowThreshold = 100 * time.Millisecond
	}
	if cfg.RestartBackoffMin <= 0 {
		cfg.RestartBackoffMin = 100 * time.Millisecond
	}
	if cfg.RestartBackoffMax < cfg.RestartBackoffMin {
		cfg.RestartBackoffMax = max(5*time.Second, cfg.RestartBackoffMin)
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = time.Second
	}
	if cfg.PingTimeout <= 0 {
		cfg.PingTimeout = 2 * time.Second
	}
	if cfg.HangTimeout <= 0 {
		cfg.HangTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg, nil
}

// build stacks the layers over bottom and starts TTL cleanup.
func build(cfg Config, bottom backend, info func() kv.Info) *Store {
	ids := identities{def: cfg.DefaultIdentity}
	f := newFeed(bottom, cfg.Logger)
	t := newTracker(f)
	var cache *cached
	caps := info().Capabilities
	if cfg.Cache.on(caps) {
		cache = newCached(bottom, cfg.Cache.MaxBytes, !caps.Exclusive)
		cfg.Metrics.cacheFigures(cache.figures)
		bottom = cache
		// The cache before the tracker (see tracker.go), both from the
		// feed's first stream.
		f.add(cache)
		t.joined = true
		f.add(t)
	}
	cfg.Metrics.trackerFigures(t.figures)
	stopGuard := make(chan struct{})
	if g, ok := cfg.Guard.(ChangingGuard); ok {
		go t.followGuard(g, stopGuard)
	}
	var b backend = &tenantView{next: &trackedView{backend: bottom, t: t}, ids: ids}
	if cfg.Guard != nil {
		b = &guarded{next: b, guard: cfg.Guard, ids: ids}
	}
	b = &limited{next: b, Limits: cfg.Limits}
	name := func() string { return info().Name }
	m := &metered{next: b, metrics: cfg.Metrics, log: cfg.Logger, slow: cfg.SlowThreshold, name: name}
	s := &Store{
		backend: m, top: m, cfg: cfg, log: cfg.Logger, bottom: bottom, cache: cache, feed: f, tracker: t, stopGuard: stopGuard, limits: cfg.Limits, info: info,
		cleanupDone: make(chan struct{}),
	}
	cctx, cancel := context.WithCancel(context.Background())
	s.stopCleanup = cancel
	// Cleanup is metered as the host's own operation, over the whole
	// backend: it belongs to no tenant.
	go s.cleanupLoop(cctx, &metered{next: bottom, metrics: cfg.Metrics, log: cfg.Logger, slow: cfg.SlowThreshold, name: name})
	return s
}

// Close stops cleanup and closes the backend (for a plugin: ends its process).
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.stopCleanup()
		<-s.cleanupDone
		close(s.stopGuard)
		s.feed.close()
		err = s.bottom.Close()
	})
	return err
}

// Ready reports whether the backend is serving.
func (s *Store) Ready() bool {
	if s.sup == nil {
		return true
	}
	_, _, err := s.sup.backend()
	return err == nil
}

// Info describes the backend currently serving.
func (s *Store) Info() kv.Info { return s.info() }

// Limits returns the limits in force.
func (s *Store) Limits() Limits { return s.limits }

// PluginPid is the backend plugin's process id (0 while it is down, or for
// an in-process backend). It is for operators and fault tests.
func (s *Store) PluginPid() int {
	if s.sup == nil {
		return 0
	}
	p, _, err := s.sup.backend()
	if err != nil {
		return 0
	}
	return p.Pid()
}

// WaitRestart waits until the plugin has been restarted after a death.
func (s *Store) WaitRestart(ctx context.Context) error {
	if s.sup == nil {
		return fmt.Errorf("%w: an in-process backend is never restarted", kv.ErrNotSupported)
	}
	select {
	case <-s.sup.restarted:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stats describes the caller's tenant and, for admin principals, the
// whole backend.
type Stats struct {
	// TenantKeys counts the live keys of the caller's tenant.
	TenantKeys int64
	// BackendKeys and BackendBytes count every tenant's keys and their
	// bytes; they are filled only for admin principals.
	BackendKeys  int64
	BackendBytes int64
	// BackendTotals says whether BackendKeys and BackendBytes are filled.
	BackendTotals bool
	Backend       string
	Version       string
	// Revision is the store revision; OldestRevision the oldest a watch
	// can start at (0 when the backend keeps no history).
	Revision       int64
	OldestRevision int64
}

// Stats returns the tenant's key count and, to an admin, the backend's
// totals: the sizes of other tenants are not every tenant's business.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	tenant, err := s.backend.Stats(ctx)
	if err != nil {
		return Stats{}, err
	}
	st, err := s.bottom.Stats(ctx)
	if err != nil {
		return Stats{}, err
	}
	out := Stats{TenantKeys: tenant.Keys, Backend: st.Backend, Version: st.Version, Revision: st.Revision, OldestRevision: st.OldestRevision}
	if id, err := (identities{def: s.cfg.DefaultIdentity}).of(ctx); err == nil && id.Admin {
		out.BackendKeys, out.BackendBytes, out.BackendTotals = st.Keys, st.Bytes, true
	}
	return out, nil
}

func (s *Store) cleanupLoop(ctx context.Context, x kv.Expirer) {
	defer close(s.cleanupDone)
	if s.cfg.CleanupInterval < 0 {
		return
	}
	tick := time.NewTicker(s.cfg.CleanupInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if !s.info().Capabilities.CleanupExpired {
			continue
		}
		const batch = 1000
		for ctx.Err() == nil {
			n, err := x.CleanupExpired(ctx, batch)
			if err != nil {
				if ctx.Err() == nil && !errors.Is(err, kv.ErrUnavailable) {
					s.log.Warn("ttl cleanup failed", "error", err)
				}
				break
			}
			if n < batch {
				break
			}
		}
	}
}
