package kv

import "context"

// Backend is the contract every storage backend keeps. Every method that
// does I/O takes a context first; every error is, or wraps, one of the
// sentinels in errors.go so that callers on either side of a process
// boundary can test it with errors.Is.
//
// Every committed change takes one revision from a single store-wide,
// strictly increasing counter; every read reports the revision it was
// served at. The package documentation states each rule; the conformance
// suite (pluginapi/conformance) checks each of them.
type Backend interface {
	// Info describes the backend: name, version and what it can do.
	Info(ctx context.Context) (Info, error)
	// Get looks up key. A missing or expired key is Found false, not an
	// error.
	Get(ctx context.Context, key string) (GetResult, error)
	// GetMany looks up to MaxGetMany keys in one snapshot and answers in
	// request order; a missing or expired key is a nil element.
	GetMany(ctx context.Context, keys []string) (GetManyResult, error)
	// Put stores a value under its condition. A failed condition returns a
	// *ConflictError (errors.Is(err, ErrConflict)). The returned entry
	// carries the key, new version (the change's revision) and expiry but
	// not the value.
	Put(ctx context.Context, req PutRequest) (Entry, error)
	// Delete removes key under its condition (CondNone or CondVersion).
	// A missing key is not an error.
	Delete(ctx context.Context, key string, cond Condition) (DeleteResult, error)
	// List returns live entries whose key starts with the literal prefix,
	// in ascending byte order, one page at a time.
	List(ctx context.Context, req ListRequest) (ListResult, error)
	// Count returns how many live keys start with prefix.
	Count(ctx context.Context, prefix string) (CountResult, error)
	// DeletePrefix removes every live key that starts with prefix, each
	// change with its own revision in key order; an empty prefix is
	// ErrInvalidArgument.
	DeletePrefix(ctx context.Context, prefix string) (DeletePrefixResult, error)
	// Increment atomically adds delta to the decimal int64 stored at key.
	Increment(ctx context.Context, key string, delta int64) (Counter, error)
	// RefreshTTL changes only the expiry of a live key (0 removes it). It
	// takes a revision but keeps the key's version.
	RefreshTTL(ctx context.Context, req RefreshRequest) (RefreshResult, error)
	// Batch applies up to MaxBatchOps operations atomically: all or none.
	Batch(ctx context.Context, ops []Op) (BatchResult, error)
	// Stats reports live keys and bytes.
	Stats(ctx context.Context) (Stats, error)
	// Close releases the backend's resources.
	Close() error
}

// Watcher is implemented by backends that advertise Capabilities.Watch.
type Watcher interface {
	// Watch subscribes to committed changes under req.Prefix. When Watch
	// returns without error the subscription is live: every change
	// committed after that point (and, with a StartRevision, every kept
	// change from it on) arrives exactly once, in revision order, with no
	// gap. The stream ends when ctx is done or Close is called.
	Watch(ctx context.Context, req WatchRequest) (WatchStream, error)
}

// WatchStream is one subscription's stream of events.
type WatchStream interface {
	// Recv blocks for the next event. It returns ErrWatchOverflow when the
	// subscriber fell too far behind (watch again from the last revision
	// seen plus one), a *CompactedError when the history it was replaying
	// was compacted under it, the context's error when the watch was
	// cancelled, and ErrClosed after Close.
	Recv() (Event, error)
	// Close ends the subscription. It is safe to call more than once.
	Close() error
}

// BatchReceiver is implemented by watch streams that can hand over the
// events already waiting without blocking, so that a server forwarding the
// stream sends them in one message.
type BatchReceiver interface {
	RecvMore(buf []Event, max int) []Event
}

// Expirer is implemented by backends that advertise
// Capabilities.CleanupExpired: they keep expired rows until told to remove
// them, and the host calls CleanupExpired periodically.
type Expirer interface {
	// CleanupExpired removes up to limit expired keys (limit <= 0 means a
	// backend-chosen batch), emits an EXPIRE event with its own revision
	// for each, and returns how many it removed. A backend that keeps
	// history also prunes it to its retention here.
	CleanupExpired(ctx context.Context, limit int) (int64, error)
}
