package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	goredis "github.com/redis/go-redis/v9"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi"
)

// Name and Version identify the backend in Info and Stats.
const (
	Name    = "redis"
	Version = "1.0.0"
)

// keyNames are the store's Redis keys after its prefix, in the order the
// scripts receive them as KEYS (scripts.go describes each).
var keyNames = []string{"rev", "val", "meta", "idx", "exp", "events", "bytes", "epoch", "scratch"}

// Indexes into Store.keys.
const (
	keyRev = iota
	keyVal
	keyMeta
	keyIdx
	keyExp
	keyEvents
	keyBytes
	keyEpoch
	keyScratch
)

// Store is the Redis backend. It is safe for concurrent use; several
// Stores, in one process or many, may share one Redis store (one key
// prefix): Redis orders their writes, and each follows the event stream
// for its watchers.
type Store struct {
	cfg    Config
	rdb    *goredis.Client
	keys   []string
	retain string // cfg.History, as scripts take it
	log    hclog.Logger

	closed atomic.Bool
	// seen is the highest revision this Store has observed: if Redis
	// loses its data, init sets the revision back to at least this, so
	// revisions never go back.
	seen atomic.Int64

	// The watch side (watch.go).
	mu        sync.Mutex
	wake      *sync.Cond // signalled when watchers or closed change
	gen       *generation
	epoch     string // the epoch the follower saw last
	watchers  int    // watch streams open or opening
	following bool   // the follower is reading the stream
	last      int64  // the last revision the follower published
	advanced  chan struct{}
	followed  chan struct{} // closed when the follower returns
	stop      chan struct{} // closed by Close

	// beforeRead, when set (by tests), runs before each read of the stream.
	beforeRead func()
	// listAttempts is how many watched reads List tries (list.go),
	// batchAttempts how many watched tries Batch makes (batchtx.go).
	listAttempts  int
	batchAttempts int
	// beforeBatchWrite, when set (by tests), runs between a watched
	// batch's read and its write.
	beforeBatchWrite func()
}

var (
	_ kv.Backend        = (*Store)(nil)
	_ kv.Watcher        = (*Store)(nil)
	_ kv.Expirer        = (*Store)(nil)
	_ pluginapi.History = (*Store)(nil)
)

// New connects to Redis and opens the store under cfg.KeyPrefix, creating
// it if it does not exist. It needs Redis 7.0 or later.
func New(ctx context.Context, cfg Config) (*Store, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	rdb, err := cfg.client()
	if err != nil {
		return nil, err
	}
	s := &Store{
		cfg:           cfg,
		rdb:           rdb,
		retain:        strconv.Itoa(cfg.History),
		log:           hclog.Default().Named("redis"),
		advanced:      make(chan struct{}),
		followed:      make(chan struct{}),
		stop:          make(chan struct{}),
		beforeRead:    cfg.beforeRead,
		listAttempts:  listAttempts,
		batchAttempts: batchAttempts,
	}
	if cfg.scriptedLists {
		s.listAttempts = 0
	}
	if cfg.scriptedBatches {
		s.batchAttempts = 0
	}
	s.wake = sync.NewCond(&s.mu)
	for _, n := range keyNames {
		s.keys = append(s.keys, cfg.KeyPrefix+n)
	}
	if err := s.open(ctx); err != nil {
		_ = rdb.Close()
		return nil, err
	}
	go s.follow()
	return s, nil
}

func (s *Store) where() string {
	switch {
	case s.cfg.SentinelMaster != "":
		return fmt.Sprintf("master %q of sentinels %s", s.cfg.SentinelMaster, strings.Join(s.cfg.SentinelAddrs, ","))
	case s.cfg.URL != "":
		return "the url's server"
	}
	return s.cfg.Addr
}

func (s *Store) open(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout+s.cfg.Timeout)
	defer cancel()
	info, err := s.rdb.Info(ctx, "server").Result()
	if err != nil {
		return fmt.Errorf("redis: open %s: %w", s.where(), s.ctxErr(ctx, err))
	}
	if v := serverVersion(info); v != "" {
		if major, err := strconv.Atoi(strings.SplitN(v, ".", 2)[0]); err == nil && major < 7 {
			return fmt.Errorf("redis: %w: Redis %s at %s: the backend needs Redis 7.0 or later (script flags, ZRANGE BYLEX/BYSCORE)", kv.ErrNotSupported, v, s.where())
		}
	}
	epoch, rev, _, err := s.init(ctx)
	if err != nil {
		return fmt.Errorf("redis: open %s: %w", s.where(), err)
	}
	s.epoch = epoch
	s.last = rev
	s.gen = newGeneration(s.cfg.WatchBuffer, rev)
	return nil
}

// serverVersion finds redis_version in INFO server's reply.
func serverVersion(info string) string {
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			return v
		}
	}
	return ""
}

func newEpoch() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// init runs scriptInit: it returns the store's epoch and revision, and
// whether it had to set either (the store was new, or lost its data).
func (s *Store) init(ctx context.Context) (epoch string, rev int64, changed bool, err error) {
	res, err := scriptInit.Run(ctx, s.rdb, s.keys, newEpoch(), s.seen.Load()).Slice()
	if err != nil {
		return "", 0, false, s.ctxErr(ctx, err)
	}
	if len(res) != 3 {
		return "", 0, false, fmt.Errorf("%w: redis: init replied %v", kv.ErrInternal, res)
	}
	epoch, _ = res[0].(string)
	rev = asInt(res[1])
	s.observe(rev)
	return epoch, rev, asInt(res[2]) == 1, nil
}

// observe raises the highest revision seen.
func (s *Store) observe(rev int64) {
	for {
		cur := s.seen.Load()
		if rev <= cur || s.seen.CompareAndSwap(cur, rev) {
			return
		}
	}
}

// Reply statuses (scripts.go).
const (
	statusOK         = 0
	statusConflict   = 1
	statusNotFound   = 2
	statusNotCounter = 3
	statusOverflow   = 4
	statusNoEpoch    = -1
)

// run runs a script with the store's keys. A store whose epoch is gone
// (Redis lost its data) is re-initialised, and the script run once more.
func (s *Store) run(ctx context.Context, sc *goredis.Script, args ...any) ([]any, int64, error) {
	if s.closed.Load() {
		return nil, 0, kv.ErrClosed
	}
	for attempt := 0; ; attempt++ {
		res, err := sc.Run(ctx, s.rdb, s.keys, args...).Slice()
		if err != nil {
			return nil, 0, s.ctxErr(ctx, err)
		}
		if len(res) == 0 {
			return nil, 0, fmt.Errorf("%w: redis: a script replied with nothing", kv.ErrInternal)
		}
		status := asInt(res[0])
		if status == statusNoEpoch {
			if attempt > 0 {
				return nil, 0, fmt.Errorf("%w: redis: the store's epoch key disappears as soon as it is set", kv.ErrUnavailable)
			}
			if _, _, _, err := s.init(ctx); err != nil {
				return nil, 0, err
			}
			continue
		}
		return res, status, nil
	}
}

// asInt reads an integer from a script reply: Lua numbers arrive as
// integers, numbers formatted in Lua and Redis strings as strings.
func asInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case string:
		n, _ := strconv.ParseInt(x, 10, 64)
		return n
	}
	return 0
}

// asString reads a bulk string from a script reply; nil (Lua false) is
// not ok.
func asString(v any) (string, bool) {
	s, ok := v.(string)
	return s, ok
}

// asList reads a nested array from a script reply.
func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// condArgs encodes a condition for the scripts.
func condArgs(c kv.Condition) (string, string) {
	switch c.Kind {
	case kv.CondAbsent:
		return "a", "0"
	case kv.CondVersion:
		return "v", strconv.FormatInt(c.Version, 10)
	}
	return "n", "0"
}

// Info describes the backend.
func (s *Store) Info(context.Context) (kv.Info, error) {
	if s.closed.Load() {
		return kv.Info{}, fmt.Errorf("redis: info: %w", kv.ErrClosed)
	}
	return kv.Info{
		Name:            Name,
		Version:         Version,
		ProtocolVersion: pluginapi.ProtocolVersion,
		Capabilities:    kv.Capabilities{Watch: true, WatchHistory: true, CleanupExpired: true},
	}, nil
}

// Close ends every watch with kv.ErrClosed, stops following the stream
// and closes the connections. Calls after Close return kv.ErrClosed.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	close(s.stop)
	s.mu.Lock()
	s.gen.end(nil)
	s.wake.Broadcast()
	s.advance() // a Watch waiting for the follower sees the store closed
	s.mu.Unlock()
	err := s.rdb.Close() // interrupts the follower's blocking read
	<-s.followed
	if err != nil {
		return fmt.Errorf("redis: close: %w", s.mapErr(err))
	}
	return nil
}

// KeyPrefix is the prefix of every Redis key of the store.
func (s *Store) KeyPrefix() string { return s.cfg.KeyPrefix }
