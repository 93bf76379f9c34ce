package host

import (
	"context"
	"fmt"

	"github.com/kvhost/kvhost/kv"
)

// ReadOptions say how Store.Read serves a get.
type ReadOptions struct {
	// Linearizable asks for a read no acknowledged write can be missing
	// from, wherever it was made. On a backend only this host writes the
	// read cache already serves that; on a shared one (cache.shared) the
	// read goes to the backend instead of the cache.
	Linearizable bool
	// Tracking is the id of one of the caller's tracking sessions
	// (Store.Track): the read registers its key with the session, which
	// then reports the key's next change.
	Tracking string
}

// ReadResult is Read's answer: the get's, and whether the session in
// ReadOptions.Tracking tracks the key now (false when there was none, it
// is not the caller's, or the host cannot vouch for changes right now —
// then the client must not cache what it read).
type ReadResult struct {
	kv.GetResult
	Tracked bool
}

// readOptions travel to the layers below tenancy in the context; tracked
// comes back up the same way.
type readOptions struct {
	ReadOptions
	tracked bool
}

type readOptionsKey struct{}

func readOptionsOf(ctx context.Context) *readOptions {
	o, _ := ctx.Value(readOptionsKey{}).(*readOptions)
	return o
}

func isLinearizable(ctx context.Context) bool {
	o := readOptionsOf(ctx)
	return o != nil && o.Linearizable
}

// Read is Get with options: through the same layers, policies included.
func (s *Store) Read(ctx context.Context, key string, opts ReadOptions) (ReadResult, error) {
	if opts == (ReadOptions{}) {
		res, err := s.Get(ctx, key)
		return ReadResult{GetResult: res}, err
	}
	o := &readOptions{ReadOptions: opts}
	res, err := s.Get(context.WithValue(ctx, readOptionsKey{}, o), key)
	return ReadResult{GetResult: res, Tracked: o.tracked && err == nil}, err
}

// Track opens a tracking session for the caller's tenant: the way a
// client keeps a near cache coherent (see tracker.go). The caller must
// Close it.
func (s *Store) Track(ctx context.Context) (*TrackSession, error) {
	if !s.info().Capabilities.Watch {
		return nil, fmt.Errorf("%w: tracking needs a backend that can watch; %s cannot", kv.ErrNotSupported, s.info().Name)
	}
	id, err := (identities{def: s.cfg.DefaultIdentity}).of(ctx)
	if err != nil {
		return nil, err
	}
	return s.tracker.open(tenantPrefix(id.Tenant))
}

// trackedView registers tracked reads with their session before they
// read (the tracker's one rule). It sits right below tenancy, on backend
// keys, and above the read cache.
type trackedView struct {
	backend
	t *tracker
}

func (v *trackedView) Get(ctx context.Context, key string) (kv.GetResult, error) {
	o := readOptionsOf(ctx)
	if o == nil || o.Tracking == "" {
		return v.backend.Get(ctx, key)
	}
	o.tracked = v.t.track(o.Tracking, key)
	res, err := v.backend.Get(ctx, key)
	if o.tracked && err == nil {
		v.t.served(o.Tracking, key, res.Revision)
	}
	return res, err
}
