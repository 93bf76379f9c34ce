package kit

import "context"

// Store is what a backend author writes: an ordered key-value store with
// transactions. Keys and values are byte strings; keys sort in ascending
// byte order. The kit owns the store's whole key space (one bucket of a
// bbolt file, one Pebble database, one table).
type Store interface {
	// View runs fn in a read-only transaction: everything fn reads comes
	// from one consistent snapshot, which an Update that commits meanwhile
	// does not change.
	View(ctx context.Context, fn func(Tx) error) error
	// Update runs fn in a read-write transaction whose reads see its own
	// writes. When fn returns nil, every write of fn is committed at once;
	// when fn returns an error, or the commit fails, none of them is, and
	// Update returns that error (wrapped or not). The kit never runs two
	// Updates at once, so the store need not isolate them from each other.
	Update(ctx context.Context, fn func(Tx) error) error
	// Close releases the store. The kit calls it once, from Backend.Close.
	Close() error
}

// Tx is one transaction's access to the store. The slices a Tx returns or
// passes to Scan's callback need only stay valid until the transaction
// ends: the kit copies what it keeps. The slices the kit passes to Put are
// never modified afterwards, so the store may keep them. The kit never
// writes from inside a Scan callback, and never stores an empty value.
type Tx interface {
	// Get returns key's value, or nil when key is absent.
	Get(key []byte) ([]byte, error)
	// Put stores value under key, replacing any earlier value.
	Put(key, value []byte) error
	// Delete removes key; a missing key is not an error.
	Delete(key []byte) error
	// Scan calls fn for every key k with start <= k < end, in ascending
	// order, until fn returns false. A nil end means no upper bound.
	Scan(start, end []byte, fn func(key, value []byte) bool) error
}
