package kit

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	"github.com/google/btree"

	"github.com/kvhost/kvhost/kv"
)

// MemStore is a Store in memory: a B-tree under a read-write lock, whose
// Update writes in place and undoes its writes when it fails. Views run
// in parallel with each other, an Update alone. It is the kit's reference
// Store and what its tests run on; nothing survives the process.
type MemStore struct {
	mu   sync.RWMutex
	tree *btree.BTreeG[memItem]
}

var _ Store = (*MemStore)(nil)

var errReadOnly = fmt.Errorf("%w: a write in a read-only transaction", kv.ErrInternal)

type memItem struct{ key, value []byte }

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore {
	return &MemStore{tree: btree.NewG(32, func(a, b memItem) bool { return bytes.Compare(a.key, b.key) < 0 })}
}

// View implements Store.
func (s *MemStore) View(_ context.Context, fn func(Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return fn(&memTx{tree: s.tree})
}

// Update implements Store.
func (s *MemStore) Update(_ context.Context, fn func(Tx) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx := &memTx{tree: s.tree, writable: true}
	err := fn(tx)
	if err != nil {
		tx.rollback()
	}
	return err
}

// Close implements Store.
func (s *MemStore) Close() error { return nil }

// memTx is a transaction on the tree; a writable one keeps what it
// replaced, to put it back on rollback.
type memTx struct {
	tree     *btree.BTreeG[memItem]
	writable bool
	undo     []undo
}

// undo is one write to take back: the item it replaced, if any.
type undo struct {
	key []byte
	old memItem
	had bool
}

func (t *memTx) Get(key []byte) ([]byte, error) {
	it, _ := t.tree.Get(memItem{key: key})
	return it.value, nil
}

func (t *memTx) Put(key, value []byte) error {
	if !t.writable {
		return errReadOnly
	}
	old, had := t.tree.ReplaceOrInsert(memItem{key: key, value: value})
	t.undo = append(t.undo, undo{key: key, old: old, had: had})
	return nil
}

func (t *memTx) Delete(key []byte) error {
	if !t.writable {
		return errReadOnly
	}
	if old, had := t.tree.Delete(memItem{key: key}); had {
		t.undo = append(t.undo, undo{key: key, old: old, had: true})
	}
	return nil
}

func (t *memTx) Scan(start, end []byte, fn func(key, value []byte) bool) error {
	t.tree.AscendGreaterOrEqual(memItem{key: start}, func(it memItem) bool {
		return (end == nil || bytes.Compare(it.key, end) < 0) && fn(it.key, it.value)
	})
	return nil
}

// rollback puts back, newest first, what the transaction changed.
func (t *memTx) rollback() {
	for i := len(t.undo) - 1; i >= 0; i-- {
		u := t.undo[i]
		if u.had {
			t.tree.ReplaceOrInsert(u.old)
		} else {
			t.tree.Delete(memItem{key: u.key})
		}
	}
}
