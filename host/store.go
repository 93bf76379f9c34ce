package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/kv/op"
	"github.com/kvhost/kvhost/pluginapi"
)

// Check is one operation as a Guard sees it (Op is one of package kv/op's,
// never Batch: a batch is checked op by op). Key is the tenant-relative key
// or prefix. A guard may change TTL (for op.Put and op.RefreshTTL).
type Check struct {
	Op       op.Op
	Key      string
	Value    []byte
	TTL      time.Duration
	Identity Identity
	// InBatch is set for the ops of a batch.
	InBatch bool
}

// Guard is the checkpoint every operation passes before it reaches the
// backend: the policy engine sits here. An error refuses the operation and
// reaches the caller as it is (wrap kv.ErrPermissionDenied).
type Guard interface {
	Check(ctx context.Context, c *Check) error
}

// Limits bound what callers may send. Zero fields take the defaults.
type Limits struct {
	// MaxKeyBytes bounds a key (default 512; at most 1024 less the tenant prefix).
	MaxKeyBytes int `yaml:"max_key_bytes"`
	// MaxValueBytes bounds a value (default 1 MiB; at most 16 MiB).
	MaxValueBytes int `yaml:"max_value_bytes"`
	// MaxBatchOps bounds a batch (default and maximum 1000).
	MaxBatchOps int `yaml:"max_batch_ops"`
}

// Limit defaults and ceilings.
const (
	DefaultMaxKeyBytes   = 512
	DefaultMaxValueBytes = 1 << 20
	MaxKeyBytesCeiling   = kv.MaxKeyLen - maxTenantPrefix
)

func (l Limits) withDefaults() (Limits, error) {
	if l.MaxKeyBytes == 0 {
		l.MaxKeyBytes = DefaultMaxKeyBytes
	}
	if l.MaxValueBytes == 0 {
		l.MaxValueBytes = DefaultMaxValueBytes
	}
	if l.MaxBatchOps == 0 {
		l.MaxBatchOps = kv.MaxBatchOps
	}
	switch {
	case l.MaxKeyBytes < 1 || l.MaxKeyBytes > MaxKeyBytesCeiling:
		return l, fmt.Errorf("%w: limits.max_key_bytes %d must be between 1 and %d", kv.ErrInvalidArgument, l.MaxKeyBytes, MaxKeyBytesCeiling)
	case l.MaxValueBytes < 1 || l.MaxValueBytes > kv.MinValueSize:
		return l, fmt.Errorf("%w: limits.max_value_bytes %d must be between 1 and %d", kv.ErrInvalidArgument, l.MaxValueBytes, kv.MinValueSize)
	case l.MaxBatchOps < 1 || l.MaxBatchOps > kv.MaxBatchOps:
		return l, fmt.Errorf("%w: limits.max_batch_ops %d must be between 1 and %d", kv.ErrInvalidArgument, l.MaxBatchOps, kv.MaxBatchOps)
	}
	return l, nil
}

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
}

// Config configures a Store.
type Config struct {
	Plugin PluginConfig
	// DefaultIdentity is used for calls whose context carries none
	// (default: principal "local", tenant "default").
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
	// RestartBackoff bounds the delay between plugin restart attempts
	// (default 100ms doubling to 5s).
	RestartBackoffMin, RestartBackoffMax time.Duration
}

// Store is the kvhost store. Its methods act for the identity in their
// context and are safe for concurrent use.
type Store struct {
	cfg    Config
	log    *slog.Logger
	sup    *supervisor
	guard  Guard
	limits Limits

	stopCleanup context.CancelFunc
	cleanupDone chan struct{}
	closeOnce   sync.Once
}

// Open starts the backend plugin and returns the store.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	limits, err := cfg.Limits.withDefaults()
	if err != nil {
		return nil, err
	}
	if cfg.DefaultIdentity == (Identity{}) {
		cfg.DefaultIdentity = Identity{Principal: "local", Tenant: DefaultTenant}
	}
	if err := ValidateTenant(cfg.DefaultIdentity.Tenant); err != nil {
		return nil, fmt.Errorf("default identity: %w", err)
	}
	if cfg.CleanupInterval == 0 {
		cfg.CleanupInterval = time.Second
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
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	sup, err := startSupervisor(ctx, pluginapi.StartConfig{
		Path:         cfg.Plugin.Path,
		Settings:     cfg.Plugin.Settings,
		SHA256:       cfg.Plugin.SHA256,
		StartTimeout: cfg.Plugin.StartTimeout,
		Logger:       pluginLogger(log),
	}, log, cfg.Metrics, cfg.RestartBackoffMin, cfg.RestartBackoffMax)
	if err != nil {
		return nil, err
	}
	s := &Store{cfg: cfg, log: log, sup: sup, guard: cfg.Guard, limits: limits, cleanupDone: make(chan struct{})}
	cctx, cancel := context.WithCancel(context.Background())
	s.stopCleanup = cancel
	go s.cleanupLoop(cctx)
	return s, nil
}

// Close stops cleanup and ends the plugin process.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.stopCleanup()
		<-s.cleanupDone
		s.sup.close()
	})
	return nil
}

// Ready reports whether the backend is serving.
func (s *Store) Ready() bool {
	_, _, err := s.sup.backend()
	return err == nil
}

// Info describes the backend currently serving.
func (s *Store) Info() kv.Info { return s.sup.currentInfo() }

// Limits returns the limits in force.
func (s *Store) Limits() Limits { return s.limits }

// PluginPid is the backend plugin's process id (0 while it is down). It is
// for operators and fault tests.
func (s *Store) PluginPid() int {
	p, _, err := s.sup.backend()
	if err != nil {
		return 0
	}
	return p.Pid()
}

// WaitRestart waits until the plugin has been restarted after a death.
func (s *Store) WaitRestart(ctx context.Context) error {
	select {
	case <-s.sup.restarted:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Store) identity(ctx context.Context) (Identity, error) {
	id, ok := IdentityFrom(ctx)
	if !ok {
		return s.cfg.DefaultIdentity, nil
	}
	if err := ValidateTenant(id.Tenant); err != nil {
		return id, err
	}
	return id, nil
}

func (s *Store) checkKey(key string) error {
	if len(key) > s.limits.MaxKeyBytes {
		return fmt.Errorf("%w: key is %d bytes, more than the %d allowed", kv.ErrInvalidArgument, len(key), s.limits.MaxKeyBytes)
	}
	return kv.ValidateKey(key)
}

func (s *Store) checkPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	return s.checkKey(prefix)
}

func (s *Store) checkValue(key string, v []byte) error {
	if len(v) > s.limits.MaxValueBytes {
		return fmt.Errorf("%w: value of key %q is %d bytes, more than the %d allowed", kv.ErrTooLarge, key, len(v), s.limits.MaxValueBytes)
	}
	return nil
}

func (s *Store) authorize(ctx context.Context, c *Check) error {
	if s.guard == nil {
		return nil
	}
	return s.guard.Check(ctx, c)
}

// call runs fn against the live backend with metrics and supervision.
func call[T any](s *Store, ctx context.Context, o op.Op, fn func(kv.Backend) (T, error)) (T, error) {
	start := time.Now()
	var zero T
	p, gen, err := s.sup.backend()
	if err == nil {
		zero, err = fn(p)
		if err != nil {
			s.sup.report(gen, err)
		}
	}
	s.observe(o, start, err)
	return zero, err
}

func (s *Store) observe(o op.Op, start time.Time, err error) {
	d := time.Since(start)
	s.cfg.Metrics.observe(o.String(), s.sup.currentInfo().Name, d, err, s.cfg.SlowThreshold)
	if s.cfg.SlowThreshold > 0 && d >= s.cfg.SlowThreshold {
		s.log.Warn("slow operation", "op", o.String(), "duration", d, "error", err)
	}
}

// fail records a refused operation and returns its error.
func (s *Store) fail(o op.Op, start time.Time, err error) error {
	s.observe(o, start, err)
	return err
}

func strip(prefix string, e kv.Entry) kv.Entry {
	e.Key = strings.TrimPrefix(e.Key, prefix)
	return e
}

// Get looks up key. A missing key is Found false, with the revision the
// read was served at.
func (s *Store) Get(ctx context.Context, key string) (kv.GetResult, error) {
	start := time.Now()
	id, err := s.identity(ctx)
	if err == nil {
		err = s.checkKey(key)
	}
	if err == nil {
		err = s.authorize(ctx, &Check{Op: op.Get, Key: key, Identity: id})
	}
	if err != nil {
		return kv.GetResult{}, s.fail(op.Get, start, err)
	}
	tp := tenantPrefix(id.Tenant)
	return call(s, ctx, op.Get, func(b kv.Backend) (kv.GetResult, error) {
		res, err := b.Get(ctx, tp+key)
		res.Entry = strip(tp, res.Entry)
		return res, renameKey(err, tp+key, key)
	})
}

// GetMany looks up keys in request order; nil marks a missing key.
func (s *Store) GetMany(ctx context.Context, keys []string) (kv.GetManyResult, error) {
	start := time.Now()
	id, err := s.identity(ctx)
	if err == nil && len(keys) > kv.MaxGetMany {
		err = fmt.Errorf("%w: get-many asks for %d keys, more than the %d allowed", kv.ErrInvalidArgument, len(keys), kv.MaxGetMany)
	}
	tp := tenantPrefix(id.Tenant)
	full := make([]string, len(keys))
	for i, k := range keys {
		if err != nil {
			break
		}
		if err = s.checkKey(k); err == nil {
			err = s.authorize(ctx, &Check{Op: op.Get, Key: k, Identity: id})
		}
		full[i] = tp + k
	}
	if err != nil {
		return kv.GetManyResult{}, s.fail(op.Get, start, err)
	}
	return call(s, ctx, op.Get, func(b kv.Backend) (kv.GetManyResult, error) {
		res, err := b.GetMany(ctx, full)
		for _, e := range res.Entries {
			if e != nil {
				*e = strip(tp, *e)
			}
		}
		return res, err
	})
}

// Put stores a value.
func (s *Store) Put(ctx context.Context, req kv.PutRequest) (kv.Entry, error) {
	start := time.Now()
	id, err := s.identity(ctx)
	if err == nil {
		err = s.checkKey(req.Key)
	}
	if err == nil {
		err = s.checkValue(req.Key, req.Value)
	}
	if err == nil {
		c := &Check{Op: op.Put, Key: req.Key, Value: req.Value, TTL: req.TTL, Identity: id}
		err = s.authorize(ctx, c)
		req.TTL = c.TTL
	}
	if err != nil {
		return kv.Entry{}, s.fail(op.Put, start, err)
	}
	tp := tenantPrefix(id.Tenant)
	key := req.Key
	req.Key = tp + key
	return call(s, ctx, op.Put, func(b kv.Backend) (kv.Entry, error) {
		e, err := b.Put(ctx, req)
		return strip(tp, e), stripErr(tp, renameKey(err, tp+key, key))
	})
}

// stripErr removes the tenant prefix from the key a conflict names.
func stripErr(tp string, err error) error {
	var ce *kv.ConflictError
	if errors.As(err, &ce) {
		c := *ce
		c.Key = strings.TrimPrefix(c.Key, tp)
		return &c
	}
	return err
}

// Delete removes a key.
func (s *Store) Delete(ctx context.Context, key string, cond kv.Condition) (kv.DeleteResult, error) {
	start := time.Now()
	id, err := s.identity(ctx)
	if err == nil {
		err = s.checkKey(key)
	}
	if err == nil {
		err = s.authorize(ctx, &Check{Op: op.Delete, Key: key, Identity: id})
	}
	if err != nil {
		return kv.DeleteResult{}, s.fail(op.Delete, start, err)
	}
	tp := tenantPrefix(id.Tenant)
	return call(s, ctx, op.Delete, func(b kv.Backend) (kv.DeleteResult, error) {
		res, err := b.Delete(ctx, tp+key, cond)
		return res, stripErr(tp, renameKey(err, tp+key, key))
	})
}

// List returns a page of entries under prefix.
func (s *Store) List(ctx context.Context, req kv.ListRequest) (kv.ListResult, error) {
	start := time.Now()
	id, err := s.identity(ctx)
	if err == nil {
		err = s.checkPrefix(req.Prefix)
	}
	if err == nil {
		err = s.authorize(ctx, &Check{Op: op.List, Key: req.Prefix, Identity: id})
	}
	if err != nil {
		return kv.ListResult{}, s.fail(op.List, start, err)
	}
	tp := tenantPrefix(id.Tenant)
	req.Prefix = tp + req.Prefix
	if req.StartAfter != "" {
		req.StartAfter = tp + req.StartAfter
	}
	return call(s, ctx, op.List, func(b kv.Backend) (kv.ListResult, error) {
		res, err := b.List(ctx, req)
		for i := range res.Entries {
			res.Entries[i] = strip(tp, res.Entries[i])
		}
		return res, err
	})
}

// Count returns how many live keys start with prefix.
func (s *Store) Count(ctx context.Context, prefix string) (kv.CountResult, error) {
	start := time.Now()
	id, err := s.identity(ctx)
	if err == nil {
		err = s.checkPrefix(prefix)
	}
	if err == nil {
		err = s.authorize(ctx, &Check{Op: op.Count, Key: prefix, Identity: id})
	}
	if err != nil {
		return kv.CountResult{}, s.fail(op.Count, start, err)
	}
	tp := tenantPrefix(id.Tenant)
	return call(s, ctx, op.Count, func(b kv.Backend) (kv.CountResult, error) { return b.Count(ctx, tp+prefix) })
}

// DeletePrefix removes every live key under prefix (not empty).
func (s *Store) DeletePrefix(ctx context.Context, prefix string) (kv.DeletePrefixResult, error) {
	start := time.Now()
	id, err := s.identity(ctx)
	if err == nil {
		err = kv.ValidateDeletePrefix(prefix)
	}
	if err == nil {
		err = s.checkPrefix(prefix)
	}
	if err == nil {
		err = s.authorize(ctx, &Check{Op: op.DeletePrefix, Key: prefix, Identity: id})
	}
	if err != nil {
		return kv.DeletePrefixResult{}, s.fail(op.DeletePrefix, start, err)
	}
	tp := tenantPrefix(id.Tenant)
	return call(s, ctx, op.DeletePrefix, func(b kv.Backend) (kv.DeletePrefixResult, error) { return b.DeletePrefix(ctx, tp+prefix) })
}

// Increment adds delta to the counter at key.
func (s *Store) Increment(ctx context.Context, key string, delta int64) (kv.Counter, error) {
	start := time.Now()
	id, err := s.identity(ctx)
	if err == nil {
		err = s.checkKey(key)
	}
	if err == nil {
		err = s.authorize(ctx, &Check{Op: op.Increment, Key: key, Identity: id})
	}
	if err != nil {
		return kv.Counter{}, s.fail(op.Increment, start, err)
	}
	tp := tenantPrefix(id.Tenant)
	return call(s, ctx, op.Increment, func(b kv.Backend) (kv.Counter, error) {
		c, err := b.Increment(ctx, tp+key, delta)
		// Backend messages name the stored key; name the caller's.
		return c, renameKey(err, tp+key, key)
	})
}

// renameKey rewrites a backend error message that names the tenant-prefixed
// key so that it names the caller's key, keeping the error's identity.
func renameKey(err error, full, key string) error {
	if err == nil || !strings.Contains(err.Error(), full) {
		return err
	}
	return &renamed{err: err, msg: strings.ReplaceAll(err.Error(), full, key)}
}

type renamed struct {
	err error
	msg string
}

func (r *renamed) Error() string { return r.msg }
func (r *renamed) Unwrap() error { return r.err }

// RefreshTTL changes a live key's expiry.
func (s *Store) RefreshTTL(ctx context.Context, req kv.RefreshRequest) (kv.RefreshResult, error) {
	start := time.Now()
	id, err := s.identity(ctx)
	if err == nil {
		err = s.checkKey(req.Key)
	}
	if err == nil {
		c := &Check{Op: op.RefreshTTL, Key: req.Key, TTL: req.TTL, Identity: id}
		err = s.authorize(ctx, c)
		req.TTL = c.TTL
	}
	if err != nil {
		return kv.RefreshResult{}, s.fail(op.RefreshTTL, start, err)
	}
	tp := tenantPrefix(id.Tenant)
	key := req.Key
	req.Key = tp + key
	return call(s, ctx, op.RefreshTTL, func(b kv.Backend) (kv.RefreshResult, error) {
		res, err := b.RefreshTTL(ctx, req)
		if errors.Is(err, kv.ErrNotFound) {
			return res, fmt.Errorf("%w: %q", kv.ErrNotFound, key)
		}
		res.Entry = strip(tp, res.Entry)
		return res, stripErr(tp, renameKey(err, tp+key, key))
	})
}

// Batch applies ops atomically. Each op passes the guard on its own.
func (s *Store) Batch(ctx context.Context, ops []kv.Op) (kv.BatchResult, error) {
	start := time.Now()
	id, err := s.identity(ctx)
	if err == nil && len(ops) > s.limits.MaxBatchOps {
		err = fmt.Errorf("%w: batch has %d ops, more than the %d allowed", kv.ErrInvalidArgument, len(ops), s.limits.MaxBatchOps)
	}
	tp := tenantPrefix(id.Tenant)
	full := make([]kv.Op, len(ops))
	for i, o := range ops {
		if err != nil {
			break
		}
		if full[i], err = s.checkBatchOp(ctx, id, tp, o); err != nil {
			err = fmt.Errorf("batch op %d: %w", i, err)
		}
	}
	if err != nil {
		return kv.BatchResult{}, s.fail(op.Batch, start, err)
	}
	return call(s, ctx, op.Batch, func(b kv.Backend) (kv.BatchResult, error) {
		res, err := b.Batch(ctx, full)
		return res, stripErr(tp, err)
	})
}

// checkBatchOp checks one op of a batch as the guard sees it (a put or a
// delete) and returns it as the backend must run it: tenant-prefixed, with
// the TTL the guard decided.
func (s *Store) checkBatchOp(ctx context.Context, id Identity, tp string, o kv.Op) (kv.Op, error) {
	if err := s.checkKey(o.Key); err != nil {
		return o, err
	}
	c := &Check{Key: o.Key, Value: o.Value, TTL: o.TTL, Identity: id, InBatch: true}
	switch o.Kind {
	case kv.OpPut:
		c.Op = op.Put
		if err := s.checkValue(o.Key, o.Value); err != nil {
			return o, err
		}
	case kv.OpDelete:
		c.Op = op.Delete
	default:
		return o, fmt.Errorf("%w: unknown kind %d", kv.ErrInvalidArgument, o.Kind)
	}
	if err := s.authorize(ctx, c); err != nil {
		return o, err
	}
	o.TTL = c.TTL
	o.Key = tp + o.Key
	return o, nil
}

// Stats describes the caller's tenant and the backend.
type Stats struct {
	TenantKeys   int64
	BackendKeys  int64
	BackendBytes int64
	Backend      string
	Version      string
	// Revision is the store revision; OldestRevision the oldest a watch
	// can start at (0 when the backend keeps no history).
	Revision       int64
	OldestRevision int64
}

// Stats returns the tenant's key count and the backend's totals.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	start := time.Now()
	id, err := s.identity(ctx)
	if err == nil {
		err = s.authorize(ctx, &Check{Op: op.Stats, Identity: id})
	}
	if err != nil {
		return Stats{}, s.fail(op.Stats, start, err)
	}
	tp := tenantPrefix(id.Tenant)
	return call(s, ctx, op.Stats, func(b kv.Backend) (Stats, error) {
		n, err := b.Count(ctx, tp)
		if err != nil {
			return Stats{}, err
		}
		st, err := b.Stats(ctx)
		return Stats{TenantKeys: n.Count, BackendKeys: st.Keys, BackendBytes: st.Bytes, Backend: st.Backend, Version: st.Version,
			Revision: st.Revision, OldestRevision: st.OldestRevision}, err
	})
}

// Watch streams changes under req.Prefix in the caller's tenant, from
// req.StartRevision when it is set.
func (s *Store) Watch(ctx context.Context, req kv.WatchRequest) (kv.WatchStream, error) {
	start := time.Now()
	id, err := s.identity(ctx)
	if err == nil {
		err = s.checkPrefix(req.Prefix)
	}
	if err == nil {
		err = kv.ValidateWatch(req)
	}
	if err == nil {
		err = s.authorize(ctx, &Check{Op: op.Watch, Key: req.Prefix, Identity: id})
	}
	if err != nil {
		return nil, s.fail(op.Watch, start, err)
	}
	info := s.sup.currentInfo()
	if !info.Capabilities.Watch {
		return nil, s.fail(op.Watch, start, fmt.Errorf("%w: the %s backend cannot watch", kv.ErrNotSupported, info.Name))
	}
	if req.StartRevision > 0 && !info.Capabilities.WatchHistory {
		return nil, s.fail(op.Watch, start, fmt.Errorf("%w: the %s backend keeps no history to watch from revision %d", kv.ErrNotSupported, info.Name, req.StartRevision))
	}
	tp := tenantPrefix(id.Tenant)
	req.Prefix = tp + req.Prefix
	ws, err := call(s, ctx, op.Watch, func(b kv.Backend) (kv.WatchStream, error) {
		w, ok := b.(kv.Watcher)
		if !ok {
			return nil, fmt.Errorf("%w: watch", kv.ErrNotSupported)
		}
		return w.Watch(ctx, req)
	})
	if err != nil {
		return nil, err
	}
	s.cfg.Metrics.watch(1)
	return &tenantStream{WatchStream: ws, prefix: tp, done: func() { s.cfg.Metrics.watch(-1) }}, nil
}

type tenantStream struct {
	kv.WatchStream
	prefix string
	once   sync.Once
	done   func()
}

func (t *tenantStream) Recv() (kv.Event, error) {
	ev, err := t.WatchStream.Recv()
	if err != nil {
		t.once.Do(t.done)
		return ev, err
	}
	ev.Key = strings.TrimPrefix(ev.Key, t.prefix)
	return ev, nil
}

// RecvMore hands over events already waiting, when the backend's stream
// can, so the server batches them into one message.
func (t *tenantStream) RecvMore(buf []kv.Event, max int) []kv.Event {
	br, ok := t.WatchStream.(kv.BatchReceiver)
	if !ok {
		return buf
	}
	n := len(buf)
	buf = br.RecvMore(buf, max)
	for i := n; i < len(buf); i++ {
		buf[i].Key = strings.TrimPrefix(buf[i].Key, t.prefix)
	}
	return buf
}

func (t *tenantStream) Close() error {
	t.once.Do(t.done)
	return t.WatchStream.Close()
}

func (s *Store) cleanupLoop(ctx context.Context) {
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
		if !s.sup.currentInfo().Capabilities.CleanupExpired {
			continue
		}
		const batch = 1000
		for ctx.Err() == nil {
			n, err := call(s, ctx, op.CleanupExpired, func(b kv.Backend) (int64, error) {
				x, ok := b.(kv.Expirer)
				if !ok {
					return 0, kv.ErrNotSupported
				}
				return x.CleanupExpired(ctx, batch)
			})
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
