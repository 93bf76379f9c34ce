package pluginapi

import (
	"context"
	"time"
)

// Backend is the contract every storage backend keeps. Every method that
// does I/O takes a context first; every error is, or wraps, one of the
// sentinels in errors.go so that callers on either side of the process
// boundary can test it with errors.Is.
//
// The semantics are precise and the conformance suite checks each of them;
// see the package documentation for the full list.
type Backend interface {
	// Info describes the backend: name, version and what it can do.
	Info(ctx context.Context) (Info, error)
	// Get returns the live entry stored under key, or ErrNotFound.
	Get(ctx context.Context, key string) (Entry, error)
	// GetMany looks up to MaxGetMany keys and answers in request order;
	// a missing or expired key is a nil element.
	GetMany(ctx context.Context, keys []string) ([]*Entry, error)
	// Put stores a value under its condition. A failed condition returns a
	// *ConflictError (errors.Is(err, ErrConflict)). The returned entry
	// carries the key, new version and expiry but not the value.
	Put(ctx context.Context, req PutRequest) (Entry, error)
	// Delete removes key under its condition (CondNone or CondVersion) and
	// reports whether anything was deleted. A missing key is not an error.
	Delete(ctx context.Context, key string, cond Condition) (bool, error)
	// List returns live entries whose key starts with the literal prefix,
	// in ascending byte order, one page at a time.
	List(ctx context.Context, req ListRequest) (ListResult, error)
	// Count returns how many live keys start with prefix.
	Count(ctx context.Context, prefix string) (int64, error)
	// DeletePrefix removes every live key that starts with prefix and says
	// how many; an empty prefix is ErrInvalidArgument.
	DeletePrefix(ctx context.Context, prefix string) (int64, error)
	// Increment atomically adds delta to the decimal int64 stored at key.
	Increment(ctx context.Context, key string, delta int64) (Counter, error)
	// RefreshTTL changes only the expiry of a live key (0 removes it).
	RefreshTTL(ctx context.Context, req RefreshRequest) (Entry, error)
	// Batch applies up to MaxBatchOps operations atomically: all or none.
	Batch(ctx context.Context, ops []Op) ([]OpResult, error)
	// Stats reports live keys and bytes.
	Stats(ctx context.Context) (Stats, error)
	// Close releases the backend's resources.
	Close() error
}

// Watcher is implemented by backends that advertise Capabilities.Watch.
type Watcher interface {
	// Watch subscribes to committed changes under prefix. When Watch
	// returns without error the subscription is live: every change
	// committed after that point arrives exactly once, in commit order.
	// The stream ends when ctx is done or Close is called.
	Watch(ctx context.Context, prefix string) (WatchStream, error)
}

// WatchStream is one subscription's stream of events.
type WatchStream interface {
	// Recv blocks for the next event. It returns ErrWatchOverflow when the
	// subscriber fell too far behind (resync and watch again), the
	// context's error when the watch was cancelled, and ErrClosed after
	// Close.
	Recv() (Event, error)
	// Close ends the subscription. It is safe to call more than once.
	Close() error
}

// Expirer is implemented by backends that advertise
// Capabilities.CleanupExpired: they keep expired rows until told to remove
// them, and the host calls CleanupExpired periodically.
type Expirer interface {
	// CleanupExpired removes up to limit expired keys (limit <= 0 means
	// a backend-chosen batch), emits an EXPIRE event for each, and returns
	// how many it removed.
	CleanupExpired(ctx context.Context, limit int) (int64, error)
}

// Limits of the contract.
const (
	MaxKeyLen        = 1024
	MaxGetMany       = 1000
	MaxBatchOps      = 1000
	DefaultListLimit = 1000
	MaxListLimit     = 10000
	// MinValueSize is the value size every backend must accept.
	MinValueSize = 16 << 20
)

// Entry is one stored key. ExpiresAt is zero when the key never expires.
type Entry struct {
	Key       string
	Value     []byte
	Version   int64
	ExpiresAt time.Time
}

// CondKind says which condition a write carries.
type CondKind int

const (
	// CondNone: write unconditionally.
	CondNone CondKind = iota
	// CondAbsent: write only if no live key exists (an expired key counts as absent).
	CondAbsent
	// CondVersion: write only if the live key is at exactly Condition.Version.
	CondVersion
)

func (k CondKind) String() string {
	switch k {
	case CondNone:
		return "none"
	case CondAbsent:
		return "if-absent"
	case CondVersion:
		return "if-version"
	}
	return "unknown"
}

// Condition guards a write. The zero value is no condition.
type Condition struct {
	Kind    CondKind
	Version int64
}

// IfAbsent is the put-if-absent condition.
func IfAbsent() Condition { return Condition{Kind: CondAbsent} }

// IfVersion is the compare-and-set condition on version v.
func IfVersion(v int64) Condition { return Condition{Kind: CondVersion, Version: v} }

// PutRequest is one put. TTL 0 means no expiry (and clears an earlier one).
type PutRequest struct {
	Key   string
	Value []byte
	TTL   time.Duration
	Cond  Condition
}

// ListRequest asks for one page of a prefix scan. Limit 0 means
// DefaultListLimit; a limit above MaxListLimit is lowered to it.
type ListRequest struct {
	Prefix     string
	StartAfter string
	Limit      int
	KeysOnly   bool
}

// ListResult is one page; More says whether keys remain after the last one.
type ListResult struct {
	Entries []Entry
	More    bool
}

// Counter is the result of Increment.
type Counter struct {
	Value     int64
	Version   int64
	ExpiresAt time.Time
}

// RefreshRequest changes a key's expiry. TTL 0 removes it. Cond may be
// CondNone or CondVersion.
type RefreshRequest struct {
	Key  string
	TTL  time.Duration
	Cond Condition
}

// OpKind names a batch operation.
type OpKind int

const (
	OpPut OpKind = iota + 1
	OpDelete
)

func (k OpKind) String() string {
	switch k {
	case OpPut:
		return "put"
	case OpDelete:
		return "delete"
	}
	return "unknown"
}

// Op is one operation of a batch. Operations apply in order, so a later op
// sees the effect of an earlier one on the same key.
type Op struct {
	Kind  OpKind
	Key   string
	Value []byte
	TTL   time.Duration
	Cond  Condition
}

// PutOp and DeleteOp build batch operations.
func PutOp(key string, value []byte, ttl time.Duration, cond Condition) Op {
	return Op{Kind: OpPut, Key: key, Value: value, TTL: ttl, Cond: cond}
}

// DeleteOp builds a batch delete.
func DeleteOp(key string, cond Condition) Op { return Op{Kind: OpDelete, Key: key, Cond: cond} }

// OpResult is the outcome of one batch op: the new version of a put, or
// whether a delete removed something.
type OpResult struct {
	Version   int64
	ExpiresAt time.Time
	Deleted   bool
}

// EventType names a watch event.
type EventType int

const (
	EventPut EventType = iota + 1
	EventDelete
	EventExpire
)

func (t EventType) String() string {
	switch t {
	case EventPut:
		return "PUT"
	case EventDelete:
		return "DELETE"
	case EventExpire:
		return "EXPIRE"
	}
	return "UNKNOWN"
}

// Event is one committed change. For PUT, Value and Version are the new
// ones; for DELETE and EXPIRE, Version is the version the key had when it
// was removed and Value is empty.
type Event struct {
	Type    EventType
	Key     string
	Value   []byte
	Version int64
}

// Stats counts live keys and their bytes (key plus value lengths).
type Stats struct {
	Keys    int64
	Bytes   int64
	Backend string
	Version string
}

// Capabilities says which optional parts of the contract a backend keeps.
// Across a process boundary nobody can type-assert, so they travel in Info.
type Capabilities struct {
	// Watch: the backend implements Watcher.
	Watch bool
	// CleanupExpired: the backend implements Expirer and wants the host to
	// call it periodically.
	CleanupExpired bool
}

// Info describes a backend.
type Info struct {
	Name            string
	Version         string
	ProtocolVersion int
	Capabilities    Capabilities
}
