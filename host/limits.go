package host

import (
	"context"
	"fmt"

	"github.com/kvhost/kvhost/kv"
)

// Limits bound what callers may send. Zero fields take the defaults.
type Limits struct {
	// MaxKeyBytes bounds a key (default 512; at most 1024 less the tenant prefix).
	MaxKeyBytes int `yaml:"max_key_bytes"`
	// MaxValueBytes bounds a value (default 1 MiB; at most 16 MiB).
	MaxValueBytes int `yaml:"max_value_bytes"`
	// MaxBatchOps bounds a batch (default and maximum 1000).
	MaxBatchOps int `yaml:"max_batch_ops"`
	// MaxRequestBytes bounds one API request message, a batch included
	// (default: twice the largest value, since a compare-and-swap carries
	// the expected value and the new one, plus the key and 512 KiB, and
	// at least 1.5 MiB, etcd's limit; at most 128 MiB). The server
	// refuses a larger one before reading it whole.
	MaxRequestBytes int `yaml:"max_request_bytes"`
}

// requestOverhead is what a request may hold beside its largest value:
// the key, the envelope, and a batch's other small ops.
const requestOverhead = 512 << 10

// maxRequestCeiling is the largest request any configuration allows.
const maxRequestCeiling = 128 << 20

// RequestLimit is the request size limit in force: the configured
// one, or the default derived from the value and key limits.
func (l Limits) RequestLimit() int {
	if l.MaxRequestBytes > 0 {
		return l.MaxRequestBytes
	}
	value := l.MaxValueBytes
	if value == 0 {
		value = DefaultMaxValueBytes
	}
	return max(2*value+l.MaxKeyBytes+requestOverhead, 3<<19)
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
	case l.MaxRequestBytes != 0 && (l.MaxRequestBytes < l.MaxValueBytes+l.MaxKeyBytes || l.MaxRequestBytes > maxRequestCeiling):
		return l, fmt.Errorf("%w: limits.max_request_bytes %d must be between max_value_bytes + max_key_bytes (%d) and %d",
			kv.ErrInvalidArgument, l.MaxRequestBytes, l.MaxValueBytes+l.MaxKeyBytes, maxRequestCeiling)
	}
	return l, nil
}

// limited refuses what is over the operator's limits, or malformed, before
// anything below spends work on it: a policy never runs on a key the store
// would refuse anyway.
type limited struct {
	next backend
	Limits
}

var _ backend = (*limited)(nil)

func (l *limited) key(key string) error {
	if len(key) > l.MaxKeyBytes {
		return fmt.Errorf("%w: key is %d bytes, more than the %d allowed", kv.ErrInvalidArgument, len(key), l.MaxKeyBytes)
	}
	return kv.ValidateKey(key)
}

func (l *limited) prefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	return l.key(prefix)
}

func (l *limited) value(key string, v []byte) error {
	if len(v) > l.MaxValueBytes {
		return fmt.Errorf("%w: value of key %q is %d bytes, more than the %d allowed", kv.ErrTooLarge, key, len(v), l.MaxValueBytes)
	}
	return nil
}

func (l *limited) Info(ctx context.Context) (kv.Info, error) { return l.next.Info(ctx) }

func (l *limited) Get(ctx context.Context, key string) (kv.GetResult, error) {
	if err := l.key(key); err != nil {
		return kv.GetResult{}, err
	}
	return l.next.Get(ctx, key)
}

func (l *limited) GetMany(ctx context.Context, keys []string) (kv.GetManyResult, error) {
	if len(keys) > kv.MaxGetMany {
		return kv.GetManyResult{}, fmt.Errorf("%w: get-many asks for %d keys, more than the %d allowed", kv.ErrInvalidArgument, len(keys), kv.MaxGetMany)
	}
	for i, k := range keys {
		if err := l.key(k); err != nil {
			return kv.GetManyResult{}, fmt.Errorf("key %d: %w", i, err)
		}
	}
	return l.next.GetMany(ctx, keys)
}

func (l *limited) Put(ctx context.Context, req kv.PutRequest) (kv.Entry, error) {
	if err := l.key(req.Key); err != nil {
		return kv.Entry{}, err
	}
	if err := l.value(req.Key, req.Value); err != nil {
		return kv.Entry{}, err
	}
	return l.next.Put(ctx, req)
}

func (l *limited) Delete(ctx context.Context, key string, cond kv.Condition) (kv.DeleteResult, error) {
	if err := l.key(key); err != nil {
		return kv.DeleteResult{}, err
	}
	return l.next.Delete(ctx, key, cond)
}

func (l *limited) List(ctx context.Context, req kv.ListRequest) (kv.ListResult, error) {
	if err := l.prefix(req.Prefix); err != nil {
		return kv.ListResult{}, err
	}
	return l.next.List(ctx, req)
}

func (l *limited) Count(ctx context.Context, prefix string) (kv.CountResult, error) {
	if err := l.prefix(prefix); err != nil {
		return kv.CountResult{}, err
	}
	return l.next.Count(ctx, prefix)
}

func (l *limited) DeletePrefix(ctx context.Context, prefix string) (kv.DeletePrefixResult, error) {
	if err := kv.ValidateDeletePrefix(prefix); err != nil {
		return kv.DeletePrefixResult{}, err
	}
	if err := l.prefix(prefix); err != nil {
		return kv.DeletePrefixResult{}, err
	}
	return l.next.DeletePrefix(ctx, prefix)
}

func (l *limited) Increment(ctx context.Context, key string, delta int64) (kv.Counter, error) {
	if err := l.key(key); err != nil {
		return kv.Counter{}, err
	}
	return l.next.Increment(ctx, key, delta)
}

func (l *limited) RefreshTTL(ctx context.Context, req kv.RefreshRequest) (kv.RefreshResult, error) {
	if err := l.key(req.Key); err != nil {
		return kv.RefreshResult{}, err
	}
	return l.next.RefreshTTL(ctx, req)
}

func (l *limited) Batch(ctx context.Context, ops []kv.Op) (kv.BatchResult, error) {
	if len(ops) > l.MaxBatchOps {
		return kv.BatchResult{}, fmt.Errorf("%w: batch has %d ops, more than the %d allowed", kv.ErrInvalidArgument, len(ops), l.MaxBatchOps)
	}
	for i, o := range ops {
		err := l.key(o.Key)
		switch {
		case err != nil:
		case o.Kind == kv.OpPut:
			err = l.value(o.Key, o.Value)
		case o.Kind != kv.OpDelete:
			err = fmt.Errorf("%w: unknown kind %d", kv.ErrInvalidArgument, o.Kind)
		}
		if err != nil {
			return kv.BatchResult{}, fmt.Errorf("batch op %d: %w", i, err)
		}
	}
	return l.next.Batch(ctx, ops)
}

func (l *limited) Stats(ctx context.Context) (kv.Stats, error) { return l.next.Stats(ctx) }

func (l *limited) Watch(ctx context.Context, req kv.WatchRequest) (kv.WatchStream, error) {
	if err := l.prefix(req.Prefix); err != nil {
		return nil, err
	}
	if err := kv.ValidateWatch(req); err != nil {
		return nil, err
	}
	return l.next.Watch(ctx, req)
}

func (l *limited) CleanupExpired(ctx context.Context, limit int) (int64, error) {
	return l.next.CleanupExpired(ctx, limit)
}

// CompareAndSwap bounds the key and the new value as a put does. The
// expected value is not bounded by MaxValueBytes: a value stored before the
// limit was lowered can still be swapped away; the request size limit
// bounds it.
func (l *limited) CompareAndSwap(ctx context.Context, req SwapRequest) (SwapResult, error) {
	if err := l.key(req.Key); err != nil {
		return SwapResult{}, err
	}
	if err := l.value(req.Key, req.Value); err != nil {
		return SwapResult{}, err
	}
	if err := kv.ValidatePut(kv.PutRequest{Key: req.Key, Value: req.Value, TTL: req.TTL}); err != nil {
		return SwapResult{}, err
	}
	return composed(l.next).CompareAndSwap(ctx, req)
}

func (l *limited) Exists(ctx context.Context, key string) (ExistsResult, error) {
	if err := l.key(key); err != nil {
		return ExistsResult{}, err
	}
	return composed(l.next).Exists(ctx, key)
}

func (l *limited) Close() error { return nil }
