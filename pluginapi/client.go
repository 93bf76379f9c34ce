package pluginapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kvhost/kvhost/api/rpcerr"
	"github.com/kvhost/kvhost/kv"
	pb "github.com/kvhost/kvhost/pluginapi/internal/pluginpb"
	"github.com/kvhost/kvhost/pluginapi/internal/sharedpages"
)

// Client is a Backend on the far side of a gRPC connection speaking the
// plugin protocol. Every error it returns wraps a sentinel by the error
// table, so errors.Is works as it would in-process. It also implements
// Watcher and Expirer; whether the far side supports them is in Info, and
// calling one it does not support gives ErrNotSupported. Requests are
// validated before they are sent (a proto string cannot even carry an
// invalid UTF-8 key), so bad input fails fast with ErrInvalidArgument.
type Client struct {
	rpc  pb.BackendClient
	conn io.Closer
	// pages is the shared memory area the plugin lends large list pages
	// in (Start sets it before the first call), or nil.
	pages *sharedpages.Area
	// counts says how list pages crossed (Start may share it with the
	// clients of earlier processes of the same plugin).
	counts *PageCounts
}

// PageCounts counts how a plugin's list pages reached the host. The
// clients of successive processes of one plugin add up in one PageCounts
// when their StartConfigs share it (the host's metrics do).
type PageCounts struct {
	// Shared counts pages lent in the shared memory area and taken from it.
	Shared atomic.Int64
	// Connection counts pages carried on the plugin connection, lent pages
	// asked for again included.
	Connection atomic.Int64
	// Reclaimed counts lent pages the plugin took back before the host
	// read them, which the host then asked for on the connection.
	Reclaimed atomic.Int64
}

var (
	_ kv.BatchReceiver = (*clientStream)(nil)
	_ kv.Backend       = (*Client)(nil)
	_ kv.Watcher       = (*Client)(nil)
	_ kv.Expirer       = (*Client)(nil)
)

// NewClient returns a Client on an established connection. Most callers
// use Start, which launches a plugin binary and returns its Client.
func NewClient(conn grpc.ClientConnInterface) *Client {
	c := &Client{rpc: pb.NewBackendClient(conn), counts: new(PageCounts)}
	if cl, ok := conn.(io.Closer); ok {
		c.conn = cl
	}
	return c
}

// Open configures the far backend with the operator's settings.
func (c *Client) Open(ctx context.Context, settings map[string]string) error {
	_, err := c.rpc.Open(ctx, &pb.OpenRequest{Settings: settings})
	return wireErr(ctx, err)
}

// Ping is a no-op round trip.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.rpc.Ping(ctx, &pb.PingRequest{})
	return wireErr(ctx, err)
}

func (c *Client) Info(ctx context.Context) (kv.Info, error) {
	r, err := c.rpc.Info(ctx, &pb.InfoRequest{})
	if err != nil {
		return kv.Info{}, wireErr(ctx, err)
	}
	return infoFromPB(r), nil
}

func (c *Client) Get(ctx context.Context, key string) (kv.GetResult, error) {
	if err := kv.ValidateKey(key); err != nil {
		return kv.GetResult{}, err
	}
	r, err := c.rpc.Get(ctx, &pb.GetRequest{Key: key})
	if err != nil {
		return kv.GetResult{}, wireErr(ctx, err)
	}
	res := kv.GetResult{Found: r.Found, Revision: r.Revision}
	if r.Found {
		res.Entry = entryFromPB(r.Entry)
	}
	return res, nil
}

func (c *Client) GetMany(ctx context.Context, keys []string) (kv.GetManyResult, error) {
	if err := kv.ValidateGetMany(keys); err != nil {
		return kv.GetManyResult{}, err
	}
	r, err := c.rpc.GetMany(ctx, &pb.GetManyRequest{Keys: keys})
	if err != nil {
		return kv.GetManyResult{}, wireErr(ctx, err)
	}
	if len(r.Results) != len(keys) {
		return kv.GetManyResult{}, fmt.Errorf("%w: get-many answered %d results for %d keys", kv.ErrInternal, len(r.Results), len(keys))
	}
	out := kv.GetManyResult{Entries: make([]*kv.Entry, len(r.Results)), Revision: r.Revision}
	for i, l := range r.Results {
		if l.Found {
			e := entryFromPB(l.Entry)
			out.Entries[i] = &e
		}
	}
	return out, nil
}

func (c *Client) Put(ctx context.Context, req kv.PutRequest) (kv.Entry, error) {
	if err := kv.ValidatePut(req); err != nil {
		return kv.Entry{}, err
	}
	r, err := c.rpc.Put(ctx, &pb.PutRequest{Key: req.Key, Value: req.Value, TtlMs: kv.TTLMillis(req.TTL), Condition: condToPB(req.Cond)})
	if err != nil {
		return kv.Entry{}, wireErr(ctx, err)
	}
	return entryFromPB(r.Entry), nil
}

func (c *Client) Delete(ctx context.Context, key string, cond kv.Condition) (kv.DeleteResult, error) {
	if err := kv.ValidateKey(key); err != nil {
		return kv.DeleteResult{}, err
	}
	if err := kv.ValidateCondition(cond, false); err != nil {
		return kv.DeleteResult{}, err
	}
	r, err := c.rpc.Delete(ctx, &pb.DeleteRequest{Key: key, Condition: condToPB(cond)})
	if err != nil {
		return kv.DeleteResult{}, wireErr(ctx, err)
	}
	return kv.DeleteResult{Deleted: r.Deleted, Revision: r.Revision}, nil
}

func (c *Client) List(ctx context.Context, req kv.ListRequest) (kv.ListResult, error) {
	req, err := kv.NormalizeList(req)
	if err != nil {
		return kv.ListResult{}, err
	}
	preq := &pb.ListRequest{Prefix: req.Prefix, StartAfter: req.StartAfter, Limit: int32(req.Limit), KeysOnly: req.KeysOnly,
		MaxBytes: int64(req.MaxBytes), Packed: true, Shared: c.pages != nil}
	r, err := c.rpc.List(ctx, preq)
	if err != nil {
		return kv.ListResult{}, wireErr(ctx, err)
	}
	if r.Shared != nil {
		if testHookBeforeTake != nil {
			testHookBeforeTake(c, r.Shared)
		}
		r.Packed, err = c.takePage(r.Shared)
		if errors.Is(err, sharedpages.ErrReclaimed) { // taken back before it was read: ask for the page on the connection
			c.counts.Reclaimed.Add(1)
			preq.Shared = false
			if r, err = c.rpc.List(ctx, preq); err != nil {
				return kv.ListResult{}, wireErr(ctx, err)
			}
			c.counts.Connection.Add(1)
		} else if err != nil {
			return kv.ListResult{}, err
		}
	} else {
		c.counts.Connection.Add(1)
	}
	out := kv.ListResult{More: r.More, Revision: r.Revision}
	if len(r.Packed) > 0 {
		if out.Entries, err = unpackEntries(r.Packed); err != nil {
			return kv.ListResult{}, err
		}
		return out, nil
	}
	out.Entries = make([]kv.Entry, len(r.Entries)) // a plugin built before packed pages
	for i, e := range r.Entries {
		out.Entries[i] = entryFromPB(e)
	}
	return out, nil
}

// testHookBeforeTake, when set by a test, runs before a lent page is taken.
var testHookBeforeTake func(*Client, *pb.SharedPage)

// takePage copies a page the plugin lent in the shared memory area out of
// it.
func (c *Client) takePage(ref *pb.SharedPage) ([]byte, error) {
	if c.pages == nil {
		return nil, fmt.Errorf("%w: the plugin lent a list page in shared memory, but this host gave it none", kv.ErrInternal)
	}
	page, err := c.pages.Take(sharedpages.Ref{Slot: ref.Slot, Generation: ref.Generation, Length: ref.Length})
	switch {
	case errors.Is(err, sharedpages.ErrClosed):
		return nil, fmt.Errorf("%w: the backend plugin was stopped: %w", kv.ErrUnavailable, err)
	case errors.Is(err, sharedpages.ErrReclaimed):
		return nil, err
	case err != nil:
		return nil, fmt.Errorf("%w: the plugin's list page: %w", kv.ErrInternal, err)
	}
	c.counts.Shared.Add(1)
	return page, nil
}

func (c *Client) Count(ctx context.Context, prefix string) (kv.CountResult, error) {
	if err := kv.ValidatePrefix(prefix); err != nil {
		return kv.CountResult{}, err
	}
	r, err := c.rpc.Count(ctx, &pb.CountRequest{Prefix: prefix})
	if err != nil {
		return kv.CountResult{}, wireErr(ctx, err)
	}
	return kv.CountResult{Count: r.Count, Revision: r.Revision}, nil
}

func (c *Client) DeletePrefix(ctx context.Context, prefix string) (kv.DeletePrefixResult, error) {
	if err := kv.ValidateDeletePrefix(prefix); err != nil {
		return kv.DeletePrefixResult{}, err
	}
	r, err := c.rpc.DeletePrefix(ctx, &pb.DeletePrefixRequest{Prefix: prefix})
	if err != nil {
		return kv.DeletePrefixResult{}, wireErr(ctx, err)
	}
	return kv.DeletePrefixResult{Deleted: r.Deleted, Revision: r.Revision}, nil
}

func (c *Client) Increment(ctx context.Context, key string, delta int64) (kv.Counter, error) {
	if err := kv.ValidateKey(key); err != nil {
		return kv.Counter{}, err
	}
	r, err := c.rpc.Increment(ctx, &pb.IncrementRequest{Key: key, Delta: delta})
	if err != nil {
		return kv.Counter{}, wireErr(ctx, err)
	}
	return kv.Counter{Value: r.Value, Version: r.Version, ExpiresAt: kv.FromUnixMillis(r.ExpiresAtMs)}, nil
}

func (c *Client) RefreshTTL(ctx context.Context, req kv.RefreshRequest) (kv.RefreshResult, error) {
	if err := kv.ValidateRefresh(req); err != nil {
		return kv.RefreshResult{}, err
	}
	r, err := c.rpc.RefreshTTL(ctx, &pb.RefreshTTLRequest{Key: req.Key, TtlMs: kv.TTLMillis(req.TTL), Condition: condToPB(req.Cond)})
	if err != nil {
		return kv.RefreshResult{}, wireErr(ctx, err)
	}
	return kv.RefreshResult{Entry: entryFromPB(r.Entry), Revision: r.Revision}, nil
}

func (c *Client) Batch(ctx context.Context, ops []kv.Op) (kv.BatchResult, error) {
	if err := kv.ValidateBatch(ops); err != nil {
		return kv.BatchResult{}, err
	}
	req := &pb.BatchRequest{Ops: make([]*pb.Op, len(ops))}
	for i, op := range ops {
		req.Ops[i] = opToPB(op)
	}
	r, err := c.rpc.Batch(ctx, req)
	if err != nil {
		return kv.BatchResult{}, wireErr(ctx, err)
	}
	out := kv.BatchResult{Results: make([]kv.OpResult, len(r.Results)), Revision: r.Revision}
	for i, res := range r.Results {
		out.Results[i] = kv.OpResult{Version: res.Version, ExpiresAt: kv.FromUnixMillis(res.ExpiresAtMs), Deleted: res.Deleted, Revision: res.Revision}
	}
	return out, nil
}

func (c *Client) CleanupExpired(ctx context.Context, limit int) (int64, error) {
	r, err := c.rpc.CleanupExpired(ctx, &pb.CleanupExpiredRequest{Limit: int32(limit)})
	if err != nil {
		return 0, wireErr(ctx, err)
	}
	return r.Removed, nil
}

func (c *Client) Stats(ctx context.Context) (kv.Stats, error) {
	r, err := c.rpc.Stats(ctx, &pb.StatsRequest{})
	if err != nil {
		return kv.Stats{}, wireErr(ctx, err)
	}
	return kv.Stats{Keys: r.Keys, Bytes: r.Bytes, Backend: r.Backend, Version: r.Version,
		Revision: r.Revision, OldestRevision: r.OldestRevision}, nil
}

// Watch opens a watch stream and returns once the far side says it is live.
func (c *Client) Watch(ctx context.Context, req kv.WatchRequest) (kv.WatchStream, error) {
	if err := kv.ValidateWatch(req); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	st, err := c.rpc.Watch(ctx, watchToPB(req))
	if err != nil {
		cancel()
		return nil, wireErr(ctx, err)
	}
	first, err := st.Recv()
	if err != nil {
		cancel()
		return nil, wireErr(ctx, err)
	}
	if !first.Ready {
		cancel()
		return nil, fmt.Errorf("%w: watch stream did not start with ready", kv.ErrInternal)
	}
	return &clientStream{st: st, cancel: cancel, ctx: ctx}, nil
}

// Close closes the connection when the Client owns it.
func (c *Client) Close() error {
	if c.conn != nil {
		return c.conn.Close()
	}
	return nil
}

type clientStream struct {
	st      pb.Backend_WatchClient
	ctx     context.Context
	cancel  context.CancelFunc
	closed  atomic.Bool
	pending []*pb.Event // received, not yet returned
}

func (s *clientStream) Recv() (kv.Event, error) {
	for len(s.pending) == 0 {
		m, err := s.st.Recv()
		if err != nil {
			if s.closed.Load() {
				return kv.Event{}, kv.ErrClosed
			}
			if errors.Is(err, io.EOF) {
				return kv.Event{}, fmt.Errorf("%w: watch stream ended by the backend", kv.ErrUnavailable)
			}
			return kv.Event{}, wireErr(s.ctx, err)
		}
		s.pending = m.Events
	}
	ev := s.pending[0]
	s.pending = s.pending[1:]
	return eventFromPB(ev), nil
}

// RecvMore appends the events already received, up to max, without
// blocking, so that a server forwarding this stream can batch them too.
func (s *clientStream) RecvMore(buf []kv.Event, max int) []kv.Event {
	for len(buf) < max && len(s.pending) > 0 {
		buf = append(buf, eventFromPB(s.pending[0]))
		s.pending = s.pending[1:]
	}
	return buf
}

func (s *clientStream) Close() error {
	s.closed.Store(true)
	s.cancel()
	return nil
}

// wireErr maps an RPC error by the error table. A call cancelled by the
// connection closing under it (the plugin died or is being replaced), not
// by its caller, is ErrUnavailable: the caller may retry.
//
// An error that gRPC's transport made, not the plugin (it carries no
// kvhost reason), has its message replaced: it names the plugin's socket
// and other internals no caller of the store should see.
func wireErr(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	code := status.Code(err)
	switch {
	case code == codes.Canceled && ctx.Err() == nil:
		return fmt.Errorf("%w: the connection to the backend plugin closed", kv.ErrUnavailable)
	case code == codes.Unavailable && !fromPlugin(err):
		return fmt.Errorf("%w: the connection to the backend plugin was lost", kv.ErrUnavailable)
	}
	return rpcerr.FromStatus(err)
}

// fromPlugin reports whether a status error was made by the plugin (it
// carries kvhost's error detail) rather than by the transport.
func fromPlugin(err error) bool {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.Domain == rpcerr.Domain {
			return true
		}
	}
	return false
}
