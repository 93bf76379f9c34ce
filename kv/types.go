package kv

import "time"

// Limits of the contract.
const (
	MaxKeyLen        = 1024
	MaxGetMany       = 1000
	MaxBatchOps      = 1000
	DefaultListLimit = 1000
	MaxListLimit     = 10000
	// DefaultListBytes and MaxListBytes bound a list page by the bytes
	// of its keys and values, so that a page of large values stays well
	// under any message limit and parallel scans hold bounded memory.
	DefaultListBytes = 4 << 20
	MaxListBytes     = 64 << 20
	// MinValueSize is the value size every backend must accept.
	MinValueSize = 16 << 20
)

// Entry is one stored key. Version is the revision of the key's last value
// change (a TTL refresh keeps it, so it serves as a fencing token).
// ExpiresAt is zero when the key never expires.
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

// GetResult is the answer to Get. Found is false for a missing or expired
// key (not an error: the read still has a revision). Revision is the store
// revision the read was served at: every change up to it is reflected,
// none after it.
type GetResult struct {
	Entry    Entry
	Found    bool
	Revision int64
}

// GetManyResult answers GetMany in request order: nil for a missing key.
// All entries come from one snapshot, at Revision.
type GetManyResult struct {
	Entries  []*Entry
	Revision int64
}

// PutRequest is one put. TTL 0 means no expiry (and clears an earlier one).
type PutRequest struct {
	Key   string
	Value []byte
	TTL   time.Duration
	Cond  Condition
}

// DeleteResult says whether a delete removed a live key and, if it did,
// the revision of that change (else the store revision it observed).
type DeleteResult struct {
	Deleted  bool
	Revision int64
}

// ListRequest asks for one page of a prefix scan. Limit 0 means
// DefaultListLimit; a limit above MaxListLimit is lowered to it. MaxBytes
// bounds the page's key plus value bytes (key bytes only with KeysOnly):
// entries are added while the total stays within it, and the first entry
// always comes, however large. 0 means DefaultListBytes; above
// MaxListBytes it is lowered to it.
type ListRequest struct {
	Prefix     string
	StartAfter string
	Limit      int
	KeysOnly   bool
	MaxBytes   int
}

// PageFull reports whether a page that holds n entries of size bytes in
// all is full for req before an entry of next bytes: the one rule every
// backend pages by. req must be normalised (NormalizeList).
func (req ListRequest) PageFull(n, size, next int) bool {
	return n >= req.Limit || (n > 0 && size+next > req.MaxBytes)
}

// EntrySize is what an entry counts against a page's MaxBytes.
func (req ListRequest) EntrySize(key string, value []byte) int {
	if req.KeysOnly {
		return len(key)
	}
	return len(key) + len(value)
}

// ListResult is one page; More says whether keys remain after the last one.
// Revision is the store revision the page was read at.
type ListResult struct {
	Entries  []Entry
	More     bool
	Revision int64
}

// CountResult is the answer to Count, read at Revision.
type CountResult struct {
	Count    int64
	Revision int64
}

// DeletePrefixResult says how many keys a DeletePrefix removed; each took
// its own revision, the last of which is Revision (the store revision it
// observed when it removed none).
type DeletePrefixResult struct {
	Deleted  int64
	Revision int64
}

// Counter is the result of Increment: Version is the revision of the change.
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

// RefreshResult is the key after a TTL change: its Version is unchanged,
// ExpiresAt is the new expiry, and Revision is the revision the change
// itself took.
type RefreshResult struct {
	Entry    Entry
	Revision int64
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

// PutOp builds a batch put.
func PutOp(key string, value []byte, ttl time.Duration, cond Condition) Op {
	return Op{Kind: OpPut, Key: key, Value: value, TTL: ttl, Cond: cond}
}

// DeleteOp builds a batch delete.
func DeleteOp(key string, cond Condition) Op { return Op{Kind: OpDelete, Key: key, Cond: cond} }

// OpResult is the outcome of one batch op. Revision is the revision its
// change took (0 for a delete that found nothing); for a put, Version
// equals it and ExpiresAt is the new expiry.
type OpResult struct {
	Version   int64
	ExpiresAt time.Time
	Deleted   bool
	Revision  int64
}

// BatchResult holds one OpResult per op, in order. Revision is the store
// revision after the batch (its last change, or the revision it observed
// when it changed nothing).
type BatchResult struct {
	Results  []OpResult
	Revision int64
}

// EventType names a watch event.
type EventType int

const (
	// EventPut: a value was written (put, increment, batch put).
	EventPut EventType = iota + 1
	// EventDelete: a live key was deleted (delete, delete-prefix, batch delete).
	EventDelete
	// EventExpire: cleanup removed a key whose TTL had passed.
	EventExpire
	// EventTTL: only a key's expiry changed (RefreshTTL). Sent only to
	// watches that ask for TTL events.
	EventTTL
	// EventProgress is not a change: it says that the stream has delivered
	// every change under its prefix up to Revision. Key and the other
	// fields are empty. An idle watch receives one now and then.
	EventProgress
)

func (t EventType) String() string {
	switch t {
	case EventPut:
		return "PUT"
	case EventDelete:
		return "DELETE"
	case EventExpire:
		return "EXPIRE"
	case EventTTL:
		return "TTL"
	case EventProgress:
		return "PROGRESS"
	}
	return "UNKNOWN"
}

// Event is one committed change, or a progress notification.
//
// Revision is the revision the change took. For PUT, Value, Version (equal
// to Revision) and ExpiresAt are the new ones. For TTL, Version is the
// unchanged version and ExpiresAt the new expiry (zero: none); Value is
// empty. For DELETE and EXPIRE, Version is the version the key had and
// Value is empty.
type Event struct {
	Type      EventType
	Key       string
	Value     []byte
	Version   int64
	Revision  int64
	ExpiresAt time.Time
}

// WatchRequest says what to watch.
//
// StartRevision 0 watches from now: every change committed after Watch
// returns. A positive StartRevision replays every change with a revision
// at or after it (resume with the last revision seen plus one), then
// continues live; it needs Capabilities.WatchHistory, and one older than
// the history kept fails with a *CompactedError. TTLEvents asks for
// EventTTL events as well. ProgressInterval is how often an idle watch
// gets an EventProgress (0: DefaultProgressInterval; negative: never).
type WatchRequest struct {
	Prefix           string
	StartRevision    int64
	TTLEvents        bool
	ProgressInterval time.Duration
}

// DefaultProgressInterval is how often an idle watch reports progress
// unless its request says otherwise.
const DefaultProgressInterval = 5 * time.Second

// Stats describes the store at the revision Revision.
type Stats struct {
	// Keys counts live keys (expired ones are not counted, even before
	// cleanup removes them).
	Keys int64
	// Bytes is the sum over live keys of key length plus value length.
	Bytes int64
	// Backend and Version are Info's Name and Version.
	Backend string
	Version string
	// Revision is the store revision the figures were taken at.
	Revision int64
	// OldestRevision is the oldest revision a watch can still start at
	// (0 when the backend keeps no history).
	OldestRevision int64
}

// Capabilities says which optional parts of the contract a backend keeps.
// Across a process boundary nobody can type-assert, so they travel in Info.
type Capabilities struct {
	// Watch: the backend implements Watcher (live events from now on).
	Watch bool
	// WatchHistory: Watch also replays from a StartRevision within the
	// history the backend keeps.
	WatchHistory bool
	// CleanupExpired: the backend implements Expirer and wants the host to
	// call it periodically.
	CleanupExpired bool
	// Exclusive: the backend's store is written only through this backend
	// (embedded storage its process owns), never by another host, so a
	// host may cache its reads and stay linearizable. A store that several
	// hosts share (a database server) is not exclusive.
	Exclusive bool
}

// Info describes a backend.
type Info struct {
	// Name identifies the backend implementation ("sqlite"); the host
	// labels its metrics with it.
	Name string
	// Version is the implementation's own version, for operators.
	Version string
	// ProtocolVersion is the plugin protocol the backend was built for
	// (pluginapi.ProtocolVersion).
	ProtocolVersion int
	// Capabilities says which optional parts of the contract it keeps.
	Capabilities Capabilities
}
