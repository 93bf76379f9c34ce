package sqlkv

import (
	"context"
	"fmt"

	"github.com/kvhost/kvhost/kv"
)

// Migrations are a backend's schema steps: Migrations[i] takes a schema
// from version i to i+1 on X, the backend's transaction. len(m) is the
// version this build writes.
type Migrations[X any] []func(ctx context.Context, x X) error

// Apply brings a schema at version from to len(m), step by step, on x: the
// backend runs it in one transaction, so a failure leaves the old version
// whole. what names the schema in errors ("/var/lib/kvhost/kv.db", `schema
// "kvhost"`). A version newer than this build knows is refused before
// anything is written: an older plugin must not write a newer schema.
func (m Migrations[X]) Apply(ctx context.Context, x X, from int, what string) error {
	if err := m.Check(from, what); err != nil {
		return err
	}
	for v := from; v < len(m); v++ {
		if err := m[v](ctx, x); err != nil {
			return fmt.Errorf("migrate %s from schema version %d to %d: %w", what, v, v+1, err)
		}
	}
	return nil
}

// Check refuses a schema version this build cannot use: a newer one, or
// one below 0, which no build wrote.
func (m Migrations[X]) Check(version int, what string) error {
	switch {
	case version > len(m):
		return fmt.Errorf("%w: %s has schema version %d, newer than version %d that this plugin knows; upgrade the plugin (nothing was modified)",
			kv.ErrNotSupported, what, version, len(m))
	case version < 0:
		return fmt.Errorf("%w: %s has schema version %d, which no plugin wrote", kv.ErrDataLoss, what, version)
	}
	return nil
}
