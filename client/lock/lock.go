// Package lock is distributed locks on a kvhost server: leases with
// fencing tokens, renewed by a keep-alive, released by their holder, and
// taken over by another owner once they expire.
//
// A lock named NAME is the key Prefix+NAME (DefaultPrefix, "locks/",
// unless WithPrefix says otherwise), holding its owner. Taking it is a put
// with the lease's TTL on the condition that no live key exists (an
// expired lease counts as absent), so at most one owner holds it at a
// time on any backend and across any number of kvhost hosts sharing one
// store. The lease's fencing token is the key's version: the store
// revision of the put that took it, so every later holder's token is
// larger, and a renewal (a TTL refresh, which keeps the version) does not
// change it. Renew and Release are conditioned on that version: once the
// lease expired and someone else took it, the old holder's calls fail
// with ErrLost and cannot touch the new holder's lease.
//
// A holder passes its token to whatever it writes under the lock (a
// database row, a file, another kvhost key as kv.Condition), so that a
// holder that paused past its expiry is refused there too: a lease ends
// when its TTL passes whether or not its holder has noticed.
//
//	locks := lock.New(c)
//	lease, err := locks.Acquire(ctx, "reindex", hostname, 10*time.Second)
//	if err != nil { ... }
//	defer lease.Release(context.WithoutCancel(ctx))
//	lost := lease.KeepAlive(ctx)
//	select {
//	case err := <-lost: // stop the work: the lock is no longer ours
//	case <-done:
//	}
//
// Tokens follow the store revision, which every backend keeps across
// restarts except the memory backend, whose store (and so its revisions)
// starts over with its process.
package lock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kvhost/kvhost/client"
	"github.com/kvhost/kvhost/kv"
)

// DefaultPrefix is where locks live unless WithPrefix says otherwise.
const DefaultPrefix = "locks/"

var (
	// ErrHeld is the error of TryAcquire on a lock someone else holds; it
	// is a *HeldError that says who and until when.
	ErrHeld = errors.New("lock is held")
	// ErrLost says a lease is no longer held: it expired, and may have
	// been taken by another owner, or it was released.
	ErrLost = errors.New("lease lost")
)

// HeldError says who holds a lock.
type HeldError struct {
	Name      string
	Owner     string
	Token     int64
	ExpiresAt time.Time
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("lock %q is held by %q (token %d) until %s", e.Name, e.Owner, e.Token,
		e.ExpiresAt.UTC().Format(time.RFC3339Nano))
}

// Is makes errors.Is(err, ErrHeld) hold.
func (e *HeldError) Is(target error) bool { return target == ErrHeld }

// Locks takes leases through one client.
type Locks struct {
	c      *client.Client
	prefix string
}

// Option configures Locks.
type Option func(*Locks)

// WithPrefix keeps locks under prefix instead of DefaultPrefix.
func WithPrefix(prefix string) Option { return func(l *Locks) { l.prefix = prefix } }

// New returns the locks reached through c.
func New(c *client.Client, opts ...Option) *Locks {
	l := &Locks{c: c, prefix: DefaultPrefix}
	for _, o := range opts {
		o(l)
	}
	return l
}

// holder is what a lock's key holds.
type holder struct {
	Owner string `json:"owner"`
}

func (l *Locks) key(name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("lock: %w: a lock needs a name", kv.ErrInvalidArgument)
	}
	k := l.prefix + name
	if err := kv.ValidateKey(k); err != nil {
		return "", fmt.Errorf("lock %q: %w", name, err)
	}
	return k, nil
}

// TryAcquire takes the lock for owner for ttl if no one holds it, and
// otherwise fails at once with a *HeldError (errors.Is ErrHeld).
func (l *Locks) TryAcquire(ctx context.Context, name, owner string, ttl time.Duration) (*Lease, error) {
	key, err := l.key(name)
	if err != nil {
		return nil, err
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("lock %q: %w: a lease needs a positive TTL, not %v", name, kv.ErrInvalidArgument, ttl)
	}
	value, err := json.Marshal(holder{Owner: owner})
	if err != nil {
		return nil, fmt.Errorf("lock %q: %w", name, err)
	}
	// A conflict with a lease that is gone by the time it is read (its
	// holder released it) is worth another try; a few, since each needs a
	// release in between.
	for range 3 {
		e, err := l.c.Put(ctx, key, value, client.WithTTL(ttl), client.IfAbsent())
		if err == nil {
			return &Lease{Name: name, Owner: owner, Token: e.Version, ttl: ttl, key: key, locks: l, expiresAt: e.ExpiresAt}, nil
		}
		if !errors.Is(err, kv.ErrConflict) {
			return nil, fmt.Errorf("lock %q: acquire: %w", name, err)
		}
		held, err := l.Holder(ctx, name)
		if errors.Is(err, kv.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return nil, held
	}
	return nil, fmt.Errorf("lock %q: acquire: %w: the lock changed hands three times while being taken", name, kv.ErrConflict)
}

// Holder says who holds the lock, as a *HeldError, or fails with an error
// wrapping kv.ErrNotFound when no one does.
func (l *Locks) Holder(ctx context.Context, name string) (*HeldError, error) {
	key, err := l.key(name)
	if err != nil {
		return nil, err
	}
	e, err := l.c.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("lock %q: %w", name, err)
	}
	var h holder
	if err := json.Unmarshal(e.Value, &h); err != nil {
		return nil, fmt.Errorf("lock %q: %w: the key %q does not hold a lease: %v", name, kv.ErrInvalidArgument, key, err)
	}
	return &HeldError{Name: name, Owner: h.Owner, Token: e.Version, ExpiresAt: e.ExpiresAt}, nil
}

// Acquire takes the lock for owner for ttl, waiting while someone else
// holds it until it is released or expires, or ctx ends. It waits by
// watching the lock's key, not by polling.
func (l *Locks) Acquire(ctx context.Context, name, owner string, ttl time.Duration) (*Lease, error) {
	for {
		lease, err := l.TryAcquire(ctx, name, owner, ttl)
		var held *HeldError
		if !errors.As(err, &held) {
			return lease, err
		}
		if err := l.waitFree(ctx, held); err != nil {
			return nil, fmt.Errorf("lock %q: waiting for %q to let go: %w", name, held.Owner, err)
		}
	}
}

// waitFree returns when the lease held may have ended: its key was
// deleted, expired or changed, or its expiry passed (the EXPIRE event
// comes when the store's cleanup runs, which may be later). It watches
// from just after the holder's put, so a release between the failed
// acquire and the watch is not missed. Only an ended ctx is an error:
// anything else sends the caller back to try.
func (l *Locks) waitFree(ctx context.Context, held *HeldError) error {
	key, _ := l.key(held.Name)
	wctx, cancel := context.WithDeadline(ctx, held.ExpiresAt.Add(time.Millisecond))
	defer cancel()
	ws, err := l.c.Watch(wctx, key, client.FromRevision(held.Token+1), client.WithTTLEvents())
	if err != nil {
		return ctx.Err()
	}
	defer ws.Close()
	for {
		ev, err := ws.Recv()
		if err != nil {
			return ctx.Err() // the deadline, a compacted start, a cut stream: try again
		}
		if ev.Key == key && ev.Type != kv.EventProgress {
			return nil
		}
	}
}

// Lease is a lock held.
type Lease struct {
	Name  string
	Owner string
	// Token is the fencing token: strictly larger for every later holder.
	Token int64

	ttl   time.Duration
	key   string
	locks *Locks

	mu        sync.Mutex
	expiresAt time.Time
	released  bool
}

// ExpiresAt is when the lease ends unless renewed, as the server last
// said.
func (ls *Lease) ExpiresAt() time.Time {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.expiresAt
}

// Renew extends the lease by its TTL from now. It fails with ErrLost when
// the lease is no longer this holder's.
func (ls *Lease) Renew(ctx context.Context) error {
	e, err := ls.locks.c.RefreshTTL(ctx, ls.key, ls.ttl, client.IfVersion(ls.Token))
	if errors.Is(err, kv.ErrConflict) || errors.Is(err, kv.ErrNotFound) {
		return fmt.Errorf("lock %q: renew token %d: %w", ls.Name, ls.Token, ErrLost)
	}
	if err != nil {
		return fmt.Errorf("lock %q: renew token %d: %w", ls.Name, ls.Token, err)
	}
	ls.mu.Lock()
	ls.expiresAt = e.ExpiresAt
	ls.mu.Unlock()
	return nil
}

// Release lets the lock go. It fails with ErrLost when the lease was no
// longer this holder's: then it touched nothing.
func (ls *Lease) Release(ctx context.Context) error {
	_, err := ls.locks.c.Delete(ctx, ls.key, client.IfVersion(ls.Token))
	if errors.Is(err, kv.ErrConflict) {
		err = ErrLost
	}
	if err != nil {
		return fmt.Errorf("lock %q: release token %d: %w", ls.Name, ls.Token, err)
	}
	ls.mu.Lock()
	ls.released = true
	ls.mu.Unlock()
	return nil
}

// KeepAlive renews the lease every third of its TTL until ctx ends or the
// lease is released. The channel it returns delivers one error wrapping
// ErrLost and closes if the lease is lost: renewal was refused, or the
// server could not be reached before the lease expired. It closes without
// a value when ctx ends or after Release.
func (ls *Lease) KeepAlive(ctx context.Context) <-chan error {
	lost := make(chan error, 1)
	go func() {
		defer close(lost)
		every := max(ls.ttl/3, time.Millisecond)
		retry := max(every/4, time.Millisecond)
		t := time.NewTimer(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if ls.isReleased() {
				return
			}
			deadline := ls.ExpiresAt()
			rctx, cancel := context.WithDeadline(ctx, deadline)
			err := ls.Renew(rctx)
			cancel()
			switch {
			case err == nil:
				t.Reset(every)
			case ctx.Err() != nil || ls.isReleased():
				return
			case errors.Is(err, ErrLost):
				lost <- err
				return
			case !time.Now().Before(deadline):
				lost <- fmt.Errorf("lock %q: token %d expired at %s before it could be renewed (%v): %w",
					ls.Name, ls.Token, deadline.UTC().Format(time.RFC3339Nano), err, ErrLost)
				return
			default:
				t.Reset(retry) // the server did not answer: try again while the lease lasts
			}
		}
	}()
	return lost
}

func (ls *Lease) isReleased() bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.released
}
