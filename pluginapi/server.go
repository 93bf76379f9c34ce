package pluginapi

import (
	"context"
	"fmt"
	"sync"

	pb "github.com/kvhost/kvhost/pluginapi/internal/pluginpb"
)

// OpenFunc opens a backend from the operator's settings. It is what a
// backend hands to Serve; an unknown or malformed setting is an error
// wrapping ErrInvalidArgument that names it.
type OpenFunc func(ctx context.Context, settings map[string]string) (Backend, error)

// grpcServer serves a Backend on the plugin protocol. It validates every
// request before the backend sees it, so the wire boundary is safe even
// for a backend that forgets to.
type grpcServer struct {
	pb.UnimplementedBackendServer
	open OpenFunc

	mu      sync.RWMutex
	backend Backend
}

func newGRPCServer(open OpenFunc) *grpcServer { return &grpcServer{open: open} }

func (s *grpcServer) get() (Backend, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.backend == nil {
		return nil, ToStatus(fmt.Errorf("%w: backend is not open yet: Open must be the first call", ErrUnavailable))
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

func (s *grpcServer) Open(ctx context.Context, req *pb.OpenRequest) (*pb.OpenResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.backend != nil {
		return nil, ToStatus(fmt.Errorf("%w: backend is already open", ErrInvalidArgument))
	}
	b, err := s.open(ctx, req.Settings)
	if err != nil {
		return nil, ToStatus(err)
	}
	s.backend = b
	return &pb.OpenResponse{}, nil
}

func (s *grpcServer) Info(ctx context.Context, _ *pb.InfoRequest) (*pb.InfoResponse, error) {
	b, err := s.get()
	if err != nil {
		return nil, err
	}
	info, err := b.Info(ctx)
	if err != nil {
		return nil, ToStatus(err)
	}
	return &pb.InfoResponse{
		Name: info.Name, Version: info.Version, ProtocolVersion: int32(info.ProtocolVersion),
		CapWatch: info.Capabilities.Watch, CapCleanupExpired: info.Capabilities.CleanupExpired,
	}, nil
}

func (s *grpcServer) Get(ctx context.Context, req *pb.GetRequest) (*pb.GetResponse, error) {
	b, err := s.get()
	if err != nil {
		return nil, err
	}
	if err := ValidateKey(req.Key); err != nil {
		return nil, ToStatus(err)
	}
	e, err := b.Get(ctx, req.Key)
	if err != nil {
		return nil, ToStatus(err)
	}
	return &pb.GetResponse{Entry: entryToPB(e)}, nil
}

func (s *grpcServer) GetMany(ctx context.Context, req *pb.GetManyRequest) (*pb.GetManyResponse, error) {
	b, err := s.get()
	if err != nil {
		return nil, err
	}
	if err := ValidateGetMany(req.Keys); err != nil {
		return nil, ToStatus(err)
	}
	es, err := b.GetMany(ctx, req.Keys)
	if err != nil {
		return nil, ToStatus(err)
	}
	out := &pb.GetManyResponse{Results: make([]*pb.Lookup, len(es))}
	for i, e := range es {
		if e == nil {
			out.Results[i] = &pb.Lookup{}
		} else {
			out.Results[i] = &pb.Lookup{Found: true, Entry: entryToPB(*e)}
		}
	}
	return out, nil
}

func (s *grpcServer) Put(ctx context.Context, req *pb.PutRequest) (*pb.PutResponse, error) {
	b, err := s.get()
	if err != nil {
		return nil, err
	}
	put := PutRequest{Key: req.Key, Value: req.Value, TTL: Millis(req.TtlMs), Cond: condFromPB(req.Condition)}
	if err := ValidatePut(put); err != nil {
		return nil, ToStatus(err)
	}
	e, err := b.Put(ctx, put)
	if err != nil {
		return nil, ToStatus(err)
	}
	return &pb.PutResponse{Entry: entryToPB(e)}, nil
}

func (s *grpcServer) Delete(ctx context.Context, req *pb.DeleteRequest) (*pb.DeleteResponse, error) {
	b, err := s.get()
	if err != nil {
		return nil, err
	}
	cond := condFromPB(req.Condition)
	if err := ValidateKey(req.Key); err != nil {
		return nil, ToStatus(err)
	}
	if err := ValidateCondition(cond, false); err != nil {
		return nil, ToStatus(err)
	}
	deleted, err := b.Delete(ctx, req.Key, cond)
	if err != nil {
		return nil, ToStatus(err)
	}
	return &pb.DeleteResponse{Deleted: deleted}, nil
}

func (s *grpcServer) List(ctx context.Context, req *pb.ListRequest) (*pb.ListResponse, error) {
	b, err := s.get()
	if err != nil {
		return nil, err
	}
	lr, err := NormalizeList(ListRequest{Prefix: req.Prefix, StartAfter: req.StartAfter, Limit: int(req.Limit), KeysOnly: req.KeysOnly})
	if err != nil {
		return nil, ToStatus(err)
	}
	res, err := b.List(ctx, lr)
	if err != nil {
		return nil, ToStatus(err)
	}
	out := &pb.ListResponse{Entries: make([]*pb.Entry, len(res.Entries)), More: res.More}
	for i, e := range res.Entries {
		out.Entries[i] = entryToPB(e)
	}
	return out, nil
}

func (s *grpcServer) Count(ctx context.Context, req *pb.CountRequest) (*pb.CountResponse, error) {
	b, err := s.get()
	if err != nil {
		return nil, err
	}
	if err := ValidatePrefix(req.Prefix); err != nil {
		return nil, ToStatus(err)
	}
	n, err := b.Count(ctx, req.Prefix)
	if err != nil {
		return nil, ToStatus(err)
	}
	return &pb.CountResponse{Count: n}, nil
}

func (s *grpcServer) DeletePrefix(ctx context.Context, req *pb.DeletePrefixRequest) (*pb.DeletePrefixResponse, error) {
	b, err := s.get()
	if err != nil {
		return nil, err
	}
	if err := ValidateDeletePrefix(req.Prefix); err != nil {
		return nil, ToStatus(err)
	}
	n, err := b.DeletePrefix(ctx, req.Prefix)
	if err != nil {
		return nil, ToStatus(err)
	}
	return &pb.DeletePrefixResponse{Deleted: n}, nil
}

func (s *grpcServer) Increment(ctx context.Context, req *pb.IncrementRequest) (*pb.IncrementResponse, error) {
	b, err := s.get()
	if err != nil {
		return nil, err
	}
	if err := ValidateKey(req.Key); err != nil {
		return nil, ToStatus(err)
	}
	c, err := b.Increment(ctx, req.Key, req.Delta)
	if err != nil {
		return nil, ToStatus(err)
	}
	return &pb.IncrementResponse{Value: c.Value, Version: c.Version, ExpiresAtMs: UnixMillis(c.ExpiresAt)}, nil
}

func (s *grpcServer) RefreshTTL(ctx context.Context, req *pb.RefreshTTLRequest) (*pb.RefreshTTLResponse, error) {
	b, err := s.get()
	if err != nil {
		return nil, err
	}
	rr := RefreshRequest{Key: req.Key, TTL: Millis(req.TtlMs), Cond: condFromPB(req.Condition)}
	if err := ValidateRefresh(rr); err != nil {
		return nil, ToStatus(err)
	}
	e, err := b.RefreshTTL(ctx, rr)
	if err != nil {
		return nil, ToStatus(err)
	}
	return &pb.RefreshTTLResponse{Entry: entryToPB(e)}, nil
}

func (s *grpcServer) Batch(ctx context.Context, req *pb.BatchRequest) (*pb.BatchResponse, error) {
	b, err := s.get()
	if err != nil {
		return nil, err
	}
	ops := make([]Op, len(req.Ops))
	for i, op := range req.Ops {
		ops[i] = opFromPB(op)
	}
	if err := ValidateBatch(ops); err != nil {
		return nil, ToStatus(err)
	}
	res, err := b.Batch(ctx, ops)
	if err != nil {
		return nil, ToStatus(err)
	}
	out := &pb.BatchResponse{Results: make([]*pb.OpResult, len(res))}
	for i, r := range res {
		out.Results[i] = &pb.OpResult{Version: r.Version, ExpiresAtMs: UnixMillis(r.ExpiresAt), Deleted: r.Deleted}
	}
	return out, nil
}

func (s *grpcServer) Watch(req *pb.WatchRequest, stream pb.Backend_WatchServer) error {
	b, err := s.get()
	if err != nil {
		return err
	}
	w, ok := b.(Watcher)
	if !ok {
		return ToStatus(fmt.Errorf("%w: watch", ErrNotSupported))
	}
	if err := ValidatePrefix(req.Prefix); err != nil {
		return ToStatus(err)
	}
	ws, err := w.Watch(stream.Context(), req.Prefix)
	if err != nil {
		return ToStatus(err)
	}
	defer ws.Close()
	if err := stream.Send(&pb.WatchResponse{Ready: true}); err != nil {
		return err
	}
	br, _ := ws.(BatchReceiver)
	batch := make([]Event, 0, watchBatch)
	msg := &pb.WatchResponse{Events: make([]*pb.Event, 0, watchBatch)}
	for {
		ev, err := ws.Recv()
		if err != nil {
			return ToStatus(err)
		}
		batch = append(batch[:0], ev)
		if br != nil {
			batch = br.RecvMore(batch, watchBatch)
		}
		msg.Events = msg.Events[:0]
		for _, ev := range batch {
			msg.Events = append(msg.Events, eventToPB(ev))
		}
		if err := stream.Send(msg); err != nil {
			return err
		}
	}
}

// watchBatch bounds how many events one watch message carries.
const watchBatch = 256

func (s *grpcServer) CleanupExpired(ctx context.Context, req *pb.CleanupExpiredRequest) (*pb.CleanupExpiredResponse, error) {
	b, err := s.get()
	if err != nil {
		return nil, err
	}
	x, ok := b.(Expirer)
	if !ok {
		return nil, ToStatus(fmt.Errorf("%w: cleanup-expired", ErrNotSupported))
	}
	n, err := x.CleanupExpired(ctx, int(req.Limit))
	if err != nil {
		return nil, ToStatus(err)
	}
	return &pb.CleanupExpiredResponse{Removed: n}, nil
}

func (s *grpcServer) Stats(ctx context.Context, _ *pb.StatsRequest) (*pb.StatsResponse, error) {
	b, err := s.get()
	if err != nil {
		return nil, err
	}
	st, err := b.Stats(ctx)
	if err != nil {
		return nil, ToStatus(err)
	}
	return &pb.StatsResponse{Keys: st.Keys, Bytes: st.Bytes, Backend: st.Backend, Version: st.Version}, nil
}

func (s *grpcServer) Ping(context.Context, *pb.PingRequest) (*pb.PingResponse, error) {
	return &pb.PingResponse{}, nil
}
