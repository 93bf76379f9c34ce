package pluginapi

import (
	"context"
	"fmt"
	"sync"

	"google.golang.org/grpc/mem"

	"github.com/kvhost/kvhost/api/rpcerr"
	"github.com/kvhost/kvhost/kv"
	pb "github.com/kvhost/kvhost/pluginapi/internal/pluginpb"
	"github.com/kvhost/kvhost/pluginapi/internal/sharedpages"
)

// OpenFunc opens a backend from the operator's settings. It is what a
// backend hands to Serve; an unknown or malformed setting is an error
// wrapping kv.ErrInvalidArgument that names it.
type OpenFunc func(ctx context.Context, settings map[string]string) (kv.Backend, error)

// grpcServer serves a Backend on the plugin protocol. It validates every
// request before the backend sees it, so the wire boundary is safe even
// for a backend that forgets to.
type grpcServer struct {
	pb.UnimplementedBackendServer
	open OpenFunc
	// pages is the shared memory area the host gave this plugin at start,
	// or nil: large list pages are lent there instead of sent.
	pages *sharedpages.Area

	mu      sync.RWMutex
	backend kv.Backend
}

func newGRPCServer(open OpenFunc, pages *sharedpages.Area) *grpcServer {
	return &grpcServer{open: open, pages: pages}
}

func (s *grpcServer) get() (kv.Backend, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.backend == nil {
		return nil, rpcerr.ToStatus(fmt.Errorf("%w: backend is not open yet: Open must be the first call", kv.ErrUnavailable))
	}
	return s.backend, nil
}

func (s *grpcServer) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.backend == nil {
		return nil
	}
	err := s.backend.Close()
	s.backend = nil
	return err
}

// serve runs one unary call: it finds the open backend, validates the
// request, calls the backend and maps its error by the error table.
func serve[Req, Resp any](s *grpcServer, ctx context.Context, req Req, validate func(Req) error,
	call func(context.Context, kv.Backend, Req) (Resp, error)) (Resp, error) {
	var zero Resp
	b, err := s.get()
	if err != nil {
		return zero, err
	}
	if validate != nil {
		if err := validate(req); err != nil {
			return zero, rpcerr.ToStatus(err)
		}
	}
	resp, err := call(ctx, b, req)
	if err != nil {
		return zero, rpcerr.ToStatus(err)
	}
	return resp, nil
}

func (s *grpcServer) Open(ctx context.Context, req *pb.OpenRequest) (*pb.OpenResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.backend != nil {
		return nil, rpcerr.ToStatus(fmt.Errorf("%w: backend is already open", kv.ErrInvalidArgument))
	}
	b, err := s.open(ctx, req.Settings)
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	s.backend = b
	return &pb.OpenResponse{}, nil
}

func (s *grpcServer) Info(ctx context.Context, req *pb.InfoRequest) (*pb.InfoResponse, error) {
	return serve(s, ctx, req, nil, func(ctx context.Context, b kv.Backend, _ *pb.InfoRequest) (*pb.InfoResponse, error) {
		info, err := b.Info(ctx)
		if err != nil {
			return nil, err
		}
		return infoToPB(info), nil
	})
}

func (s *grpcServer) Get(ctx context.Context, req *pb.GetRequest) (*pb.GetResponse, error) {
	return serve(s, ctx, req, func(r *pb.GetRequest) error { return kv.ValidateKey(r.Key) },
		func(ctx context.Context, b kv.Backend, r *pb.GetRequest) (*pb.GetResponse, error) {
			res, err := b.Get(ctx, r.Key)
			if err != nil {
				return nil, err
			}
			out := &pb.GetResponse{Found: res.Found, Revision: res.Revision}
			if res.Found {
				out.Entry = entryToPB(res.Entry)
			}
			return out, nil
		})
}

func (s *grpcServer) GetMany(ctx context.Context, req *pb.GetManyRequest) (*pb.GetManyResponse, error) {
	return serve(s, ctx, req, func(r *pb.GetManyRequest) error { return kv.ValidateGetMany(r.Keys) },
		func(ctx context.Context, b kv.Backend, r *pb.GetManyRequest) (*pb.GetManyResponse, error) {
			res, err := b.GetMany(ctx, r.Keys)
			if err != nil {
				return nil, err
			}
			if len(res.Entries) != len(r.Keys) {
				return nil, fmt.Errorf("%w: backend answered get-many of %d keys with %d results", kv.ErrInternal, len(r.Keys), len(res.Entries))
			}
			out := &pb.GetManyResponse{Results: make([]*pb.Lookup, len(res.Entries)), Revision: res.Revision}
			for i, e := range res.Entries {
				if e == nil {
					out.Results[i] = &pb.Lookup{}
				} else {
					out.Results[i] = &pb.Lookup{Found: true, Entry: entryToPB(*e)}
				}
			}
			return out, nil
		})
}

func putFromPB(r *pb.PutRequest) kv.PutRequest {
	return kv.PutRequest{Key: r.Key, Value: r.Value, TTL: kv.Millis(r.TtlMs), Cond: condFromPB(r.Condition)}
}

func (s *grpcServer) Put(ctx context.Context, req *pb.PutRequest) (*pb.PutResponse, error) {
	return serve(s, ctx, req, func(r *pb.PutRequest) error { return kv.ValidatePut(putFromPB(r)) },
		func(ctx context.Context, b kv.Backend, r *pb.PutRequest) (*pb.PutResponse, error) {
			e, err := b.Put(ctx, putFromPB(r))
			if err != nil {
				return nil, err
			}
			return &pb.PutResponse{Entry: entryToPB(e)}, nil
		})
}

func (s *grpcServer) Delete(ctx context.Context, req *pb.DeleteRequest) (*pb.DeleteResponse, error) {
	validate := func(r *pb.DeleteRequest) error {
		if err := kv.ValidateKey(r.Key); err != nil {
			return err
		}
		return kv.ValidateCondition(condFromPB(r.Condition), false)
	}
	return serve(s, ctx, req, validate, func(ctx context.Context, b kv.Backend, r *pb.DeleteRequest) (*pb.DeleteResponse, error) {
		res, err := b.Delete(ctx, r.Key, condFromPB(r.Condition))
		if err != nil {
			return nil, err
		}
		return &pb.DeleteResponse{Deleted: res.Deleted, Revision: res.Revision}, nil
	})
}

func listFromPB(r *pb.ListRequest) kv.ListRequest {
	return kv.ListRequest{Prefix: r.Prefix, StartAfter: r.StartAfter, Limit: int(r.Limit), KeysOnly: r.KeysOnly, MaxBytes: int(min(r.MaxBytes, kv.MaxListBytes))}
}

func (s *grpcServer) List(ctx context.Context, req *pb.ListRequest) (*pb.ListResponse, error) {
	validate := func(r *pb.ListRequest) error { _, err := kv.NormalizeList(listFromPB(r)); return err }
	return serve(s, ctx, req, validate, func(ctx context.Context, b kv.Backend, r *pb.ListRequest) (*pb.ListResponse, error) {
		lr, _ := kv.NormalizeList(listFromPB(r))
		if pl, ok := b.(PackedLister); ok && r.Packed {
			page := newPackedPage()
			res, err := pl.ListPacked(ctx, lr, page)
			packed := page.bytes()
			if err != nil {
				mem.DefaultBufferPool().Put(&packed)
				return nil, err
			}
			return s.packedResponse(r, &pb.ListResponse{More: res.More, Revision: res.Revision}, packed), nil
		}
		res, err := b.List(ctx, lr)
		if err != nil {
			return nil, err
		}
		out := &pb.ListResponse{More: res.More, Revision: res.Revision}
		if r.Packed {
			return s.packedResponse(r, out, packEntriesPooled(res.Entries)), nil
		}
		out.Entries = make([]*pb.Entry, len(res.Entries))
		for i, e := range res.Entries {
			out.Entries[i] = entryToPB(e)
		}
		return out, nil
	})
}

// minSharedPage is the smallest packed page lent through the shared memory
// area: below it, the connection's cost is not the copies' but the round
// trip's, which a page pays either way.
const minSharedPage = 64 << 10

// packedResponse completes out with packed, a page in a pooled buffer:
// lent in the shared memory area when the host reads it there and it is
// large enough, sent on the connection otherwise.
func (s *grpcServer) packedResponse(r *pb.ListRequest, out *pb.ListResponse, packed []byte) *pb.ListResponse {
	if r.Shared && s.pages != nil && len(packed) >= minSharedPage {
		if ref, ok := s.pages.Lend(packed); ok {
			mem.DefaultBufferPool().Put(&packed)
			out.Shared = &pb.SharedPage{Slot: ref.Slot, Generation: ref.Generation, Length: ref.Length}
			return out
		}
	}
	out.Packed = packed
	return out
}

func (s *grpcServer) Count(ctx context.Context, req *pb.CountRequest) (*pb.CountResponse, error) {
	return serve(s, ctx, req, func(r *pb.CountRequest) error { return kv.ValidatePrefix(r.Prefix) },
		func(ctx context.Context, b kv.Backend, r *pb.CountRequest) (*pb.CountResponse, error) {
			res, err := b.Count(ctx, r.Prefix)
			if err != nil {
				return nil, err
			}
			return &pb.CountResponse{Count: res.Count, Revision: res.Revision}, nil
		})
}

func (s *grpcServer) DeletePrefix(ctx context.Context, req *pb.DeletePrefixRequest) (*pb.DeletePrefixResponse, error) {
	return serve(s, ctx, req, func(r *pb.DeletePrefixRequest) error { return kv.ValidateDeletePrefix(r.Prefix) },
		func(ctx context.Context, b kv.Backend, r *pb.DeletePrefixRequest) (*pb.DeletePrefixResponse, error) {
			res, err := b.DeletePrefix(ctx, r.Prefix)
			if err != nil {
				return nil, err
			}
			return &pb.DeletePrefixResponse{Deleted: res.Deleted, Revision: res.Revision}, nil
		})
}

func (s *grpcServer) Increment(ctx context.Context, req *pb.IncrementRequest) (*pb.IncrementResponse, error) {
	return serve(s, ctx, req, func(r *pb.IncrementRequest) error { return kv.ValidateKey(r.Key) },
		func(ctx context.Context, b kv.Backend, r *pb.IncrementRequest) (*pb.IncrementResponse, error) {
			c, err := b.Increment(ctx, r.Key, r.Delta)
			if err != nil {
				return nil, err
			}
			return &pb.IncrementResponse{Value: c.Value, Version: c.Version, ExpiresAtMs: kv.UnixMillis(c.ExpiresAt)}, nil
		})
}

func refreshFromPB(r *pb.RefreshTTLRequest) kv.RefreshRequest {
	return kv.RefreshRequest{Key: r.Key, TTL: kv.Millis(r.TtlMs), Cond: condFromPB(r.Condition)}
}

func (s *grpcServer) RefreshTTL(ctx context.Context, req *pb.RefreshTTLRequest) (*pb.RefreshTTLResponse, error) {
	return serve(s, ctx, req, func(r *pb.RefreshTTLRequest) error { return kv.ValidateRefresh(refreshFromPB(r)) },
		func(ctx context.Context, b kv.Backend, r *pb.RefreshTTLRequest) (*pb.RefreshTTLResponse, error) {
			res, err := b.RefreshTTL(ctx, refreshFromPB(r))
			if err != nil {
				return nil, err
			}
			return &pb.RefreshTTLResponse{Entry: entryToPB(res.Entry), Revision: res.Revision}, nil
		})
}

func opsFromPB(in []*pb.Op) []kv.Op {
	ops := make([]kv.Op, len(in))
	for i, op := range in {
		ops[i] = opFromPB(op)
	}
	return ops
}

func (s *grpcServer) Batch(ctx context.Context, req *pb.BatchRequest) (*pb.BatchResponse, error) {
	return serve(s, ctx, opsFromPB(req.Ops), kv.ValidateBatch,
		func(ctx context.Context, b kv.Backend, ops []kv.Op) (*pb.BatchResponse, error) {
			res, err := b.Batch(ctx, ops)
			if err != nil {
				return nil, err
			}
			if len(res.Results) != len(ops) {
				return nil, fmt.Errorf("%w: backend answered a batch of %d ops with %d results", kv.ErrInternal, len(ops), len(res.Results))
			}
			out := &pb.BatchResponse{Results: make([]*pb.OpResult, len(res.Results)), Revision: res.Revision}
			for i, r := range res.Results {
				out.Results[i] = &pb.OpResult{Version: r.Version, ExpiresAtMs: kv.UnixMillis(r.ExpiresAt), Deleted: r.Deleted, Revision: r.Revision}
			}
			return out, nil
		})
}

func (s *grpcServer) Watch(req *pb.WatchRequest, stream pb.Backend_WatchServer) error {
	b, err := s.get()
	if err != nil {
		return err
	}
	w, ok := b.(kv.Watcher)
	if !ok {
		return rpcerr.ToStatus(fmt.Errorf("%w: watch", kv.ErrNotSupported))
	}
	wr := watchFromPB(req)
	if err := kv.ValidateWatch(wr); err != nil {
		return rpcerr.ToStatus(err)
	}
	ws, err := w.Watch(stream.Context(), wr)
	if err != nil {
		return rpcerr.ToStatus(err)
	}
	defer ws.Close()
	if err := stream.Send(&pb.WatchResponse{Ready: true}); err != nil {
		return err
	}
	return ForwardEvents(ws, WatchBatch, func(batch []kv.Event) error {
		msg := &pb.WatchResponse{Events: make([]*pb.Event, len(batch))}
		for i, ev := range batch {
			msg.Events[i] = eventToPB(ev)
		}
		return stream.Send(msg)
	})
}

// WatchBatch bounds how many events one watch message carries.
const WatchBatch = 256

// ForwardEvents receives from ws and hands the events to send in batches
// of up to max: each Recv is followed by the events already waiting (when
// ws is a kv.BatchReceiver). It returns the stream's error, mapped by the
// error table, or send's. Both servers, the plugin's and the public
// API's, forward watches with it.
func ForwardEvents(ws kv.WatchStream, max int, send func([]kv.Event) error) error {
	br, _ := ws.(kv.BatchReceiver)
	batch := make([]kv.Event, 0, max)
	for {
		ev, err := ws.Recv()
		if err != nil {
			return rpcerr.ToStatus(err)
		}
		batch = append(batch[:0], ev)
		if br != nil {
			batch = br.RecvMore(batch, max)
		}
		if err := send(batch); err != nil {
			return err
		}
	}
}

func (s *grpcServer) CleanupExpired(ctx context.Context, req *pb.CleanupExpiredRequest) (*pb.CleanupExpiredResponse, error) {
	return serve(s, ctx, req, nil, func(ctx context.Context, b kv.Backend, r *pb.CleanupExpiredRequest) (*pb.CleanupExpiredResponse, error) {
		x, ok := b.(kv.Expirer)
		if !ok {
			return nil, fmt.Errorf("%w: cleanup-expired", kv.ErrNotSupported)
		}
		n, err := x.CleanupExpired(ctx, int(r.Limit))
		if err != nil {
			return nil, err
		}
		return &pb.CleanupExpiredResponse{Removed: n}, nil
	})
}

func (s *grpcServer) Stats(ctx context.Context, req *pb.StatsRequest) (*pb.StatsResponse, error) {
	return serve(s, ctx, req, nil, func(ctx context.Context, b kv.Backend, _ *pb.StatsRequest) (*pb.StatsResponse, error) {
		st, err := b.Stats(ctx)
		if err != nil {
			return nil, err
		}
		return &pb.StatsResponse{Keys: st.Keys, Bytes: st.Bytes, Backend: st.Backend, Version: st.Version,
			Revision: st.Revision, OldestRevision: st.OldestRevision}, nil
	})
}

func (s *grpcServer) Ping(context.Context, *pb.PingRequest) (*pb.PingResponse, error) {
	return &pb.PingResponse{}, nil
}
