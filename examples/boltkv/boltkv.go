// Package boltkv is a kvhost backend on bbolt (go.etcd.io/bbolt), written
// with the backend kit (pluginapi/kit): this file is all of it. bbolt
// gives transactions over ordered keys in one file, and the kit gives the
// rest of the contract (versions, revisions, TTLs, conditions, batches,
// paging, watch with history).
//
// Settings:
//   - path: the database file (required); one process holds it at a time.
//   - sync: "false" skips the fsync of each commit: faster, and safe
//     across a process crash, but a power loss may then damage the file
//     (bbolt's NoSync), so only for data that can be rebuilt. Default "true".
//   - history, watch_buffer: the kit's (see kit.Settings).
package boltkv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi/kit"
)

// Name and Version identify the backend in Info and Stats.
const (
	Name    = "boltkv"
	Version = "0.1.0"
)

// bucket holds the whole key space the kit lays out.
var bucket = []byte("kvhost")

// Open is the pluginapi.OpenFunc of the backend.
func Open(ctx context.Context, settings map[string]string) (kv.Backend, error) {
	opts, err := kit.Settings(Name, settings, "path", "sync")
	if err != nil {
		return nil, err
	}
	path := settings["path"]
	if path == "" {
		return nil, fmt.Errorf("%s: %w: setting path (the database file) is required", Name, kv.ErrInvalidArgument)
	}
	if s := settings["sync"]; s != "" && s != "true" && s != "false" {
		return nil, fmt.Errorf("%s: setting sync=%q: %w: want true or false", Name, s, kv.ErrInvalidArgument)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, NoSync: settings["sync"] == "false"})
	if errors.Is(err, bolterrors.ErrTimeout) {
		err = fmt.Errorf("%w: another process holds the file", kv.ErrUnavailable)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: open %s: %w", Name, path, storeErr(err))
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucket)
		return err
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("%s: open %s: %w", Name, path, storeErr(err))
	}
	return kit.New(ctx, store{db}, Name, Version, opts...)
}

// store is the kit.Store: bbolt's own transactions, one bucket.
type store struct{ db *bolt.DB }

func (s store) View(_ context.Context, fn func(kit.Tx) error) error {
	return storeErr(s.db.View(func(tx *bolt.Tx) error { return fn(txn{tx.Bucket(bucket)}) }))
}

func (s store) Update(_ context.Context, fn func(kit.Tx) error) error {
	return storeErr(s.db.Update(func(tx *bolt.Tx) error { return fn(txn{tx.Bucket(bucket)}) }))
}

func (s store) Close() error { return s.db.Close() }

// txn is the kit.Tx: bbolt's bucket and a cursor for scans.
type txn struct{ b *bolt.Bucket }

func (t txn) Get(key []byte) ([]byte, error) { return t.b.Get(key), nil }

func (t txn) Put(key, value []byte) error { return t.b.Put(key, value) }

func (t txn) Delete(key []byte) error { return t.b.Delete(key) }

func (t txn) Scan(start, end []byte, fn func(key, value []byte) bool) error {
	c := t.b.Cursor()
	for k, v := c.Seek(start); k != nil && (end == nil || bytes.Compare(k, end) < 0); k, v = c.Next() {
		if !fn(k, v) {
			break
		}
	}
	return nil
}

// storeErr gives bbolt's failures the contract's sentinels, so that they
// keep their meaning across the plugin wire.
func storeErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.ENOSPC):
		return fmt.Errorf("%w: %w", kv.ErrStorageFull, err)
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrChecksum):
		return fmt.Errorf("%w: %w", kv.ErrDataLoss, err)
	}
	return err
}
