package server

import (
	"context"

	pb "github.com/kvhost/kvhost/api/kvhostv1"
	"github.com/kvhost/kvhost/pluginapi"
)

// This file converts between the public API's messages and the store's
// calls, one handler per RPC.

func entryToPB(e kv.Entry) *pb.Entry {
	return &pb.Entry{Key: e.Key, Value: e.Value, Version: e.Version, ExpiresAtMs: kv.UnixMillis(e.ExpiresAt)}
}

func condFromPB(c *pb.Condition) kv.Condition {
	if c == nil {
		return kv.Condition{}
	}
	return kv.Condition{Kind: kv.CondKind(c.Kind), Version: c.Version}
}

func (s *Server) Get(ctx context.Context, req *pb.GetRequest) (*pb.GetResponse, error) {
	e, err := s.store.Get(ctx, req.Key)
	if err != nil {
		return nil, err
	}
	return &pb.GetResponse{Entry: entryToPB(e)}, nil
}

func (s *Server) GetMany(ctx context.Context, req *pb.GetManyRequest) (*pb.GetManyResponse, error) {
	es, err := s.store.GetMany(ctx, req.Keys)
	if err != nil {
		return nil, err
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

func (s *Server) Put(ctx context.Context, req *pb.PutRequest) (*pb.PutResponse, error) {
	e, err := s.store.Put(ctx, kv.PutRequest{Key: req.Key, Value: req.Value, TTL: kv.Millis(req.TtlMs), Cond: condFromPB(req.Condition)})
	if err != nil {
		return nil, err
	}
	return &pb.PutResponse{Entry: entryToPB(e)}, nil
}

func (s *Server) Delete(ctx context.Context, req *pb.DeleteRequest) (*pb.DeleteResponse, error) {
	ok, err := s.store.Delete(ctx, req.Key, condFromPB(req.Condition))
	if err != nil {
		return nil, err
	}
	return &pb.DeleteResponse{Deleted: ok}, nil
}

func (s *Server) List(ctx context.Context, req *pb.ListRequest) (*pb.ListResponse, error) {
	res, err := s.store.List(ctx, kv.ListRequest{Prefix: req.Prefix, StartAfter: req.StartAfter, Limit: int(req.Limit), KeysOnly: req.KeysOnly})
	if err != nil {
		return nil, err
	}
	out := &pb.ListResponse{Entries: make([]*pb.Entry, len(res.Entries)), More: res.More}
	for i, e := range res.Entries {
		out.Entries[i] = entryToPB(e)
	}
	return out, nil
}

func (s *Server) Count(ctx context.Context, req *pb.CountRequest) (*pb.CountResponse, error) {
	n, err := s.store.Count(ctx, req.Prefix)
	if err != nil {
		return nil, err
	}
	return &pb.CountResponse{Count: n}, nil
}

func (s *Server) DeletePrefix(ctx context.Context, req *pb.DeletePrefixRequest) (*pb.DeletePrefixResponse, error) {
	n, err := s.store.DeletePrefix(ctx, req.Prefix)
	if err != nil {
		return nil, err
	}
	return &pb.DeletePrefixResponse{Deleted: n}, nil
}

func (s *Server) Increment(ctx context.Context, req *pb.IncrementRequest) (*pb.IncrementResponse, error) {
	c, err := s.store.Increment(ctx, req.Key, req.Delta)
	if err != nil {
		return nil, err
	}
	return &pb.IncrementResponse{Value: c.Value, Version: c.Version, ExpiresAtMs: kv.UnixMillis(c.ExpiresAt)}, nil
}

func (s *Server) RefreshTTL(ctx context.Context, req *pb.RefreshTTLRequest) (*pb.RefreshTTLResponse, error) {
	e, err := s.store.RefreshTTL(ctx, kv.RefreshRequest{Key: req.Key, TTL: kv.Millis(req.TtlMs), Cond: condFromPB(req.Condition)})
	if err != nil {
		return nil, err
	}
	return &pb.RefreshTTLResponse{Entry: entryToPB(e)}, nil
}

func (s *Server) Batch(ctx context.Context, req *pb.BatchRequest) (*pb.BatchResponse, error) {
	ops := make([]kv.Op, len(req.Ops))
	for i, o := range req.Ops {
		ops[i] = kv.Op{Kind: kv.OpKind(o.Kind), Key: o.Key, Value: o.Value, TTL: kv.Millis(o.TtlMs), Cond: condFromPB(o.Condition)}
	}
	res, err := s.store.Batch(ctx, ops)
	if err != nil {
		return nil, err
	}
	out := &pb.BatchResponse{Results: make([]*pb.OpResult, len(res))}
	for i, r := range res {
		out.Results[i] = &pb.OpResult{Version: r.Version, ExpiresAtMs: kv.UnixMillis(r.ExpiresAt), Deleted: r.Deleted}
	}
	return out, nil
}

func (s *Server) Stats(ctx context.Context, _ *pb.StatsRequest) (*pb.StatsResponse, error) {
	st, err := s.store.Stats(ctx)
	if err != nil {
		return nil, err
	}
	return &pb.StatsResponse{Keys: st.TenantKeys, BackendKeys: st.BackendKeys, BackendBytes: st.BackendBytes, Backend: st.Backend, BackendVersion: st.Version}, nil
}

func (s *Server) Watch(req *pb.WatchRequest, stream pb.KV_WatchServer) error {
	ws, err := s.store.Watch(stream.Context(), req.Prefix)
	if err != nil {
		return err
	}
	defer ws.Close()
	if err := stream.Send(&pb.WatchResponse{Ready: true}); err != nil {
		return err
	}
	br, _ := ws.(kv.BatchReceiver)
	const maxBatch = 256
	batch := make([]kv.Event, 0, maxBatch)
	msg := &pb.WatchResponse{Events: make([]*pb.Event, 0, maxBatch)}
	for {
		ev, err := ws.Recv()
		if err != nil {
			return err
		}
		batch = append(batch[:0], ev)
		if br != nil {
			batch = br.RecvMore(batch, maxBatch)
		}
		msg.Events = msg.Events[:0]
		for _, ev := range batch {
			msg.Events = append(msg.Events, &pb.Event{Type: pb.Event_Type(ev.Type), Key: ev.Key, Value: ev.Value, Version: ev.Version})
		}
		if err := stream.Send(msg); err != nil {
			return err
		}
	}
}
