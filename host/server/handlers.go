package server

import (
	"context"
	"fmt"
	"time"

	pb "github.com/kvhost/kvhost/api/kvhostv1"
	"github.com/kvhost/kvhost/host"
	"github.com/kvhost/kvhost/kv"
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
	res, err := s.store.Read(ctx, req.Key, host.ReadOptions{Linearizable: req.Linearizable, Tracking: req.TrackingId})
	if err != nil {
		return nil, err
	}
	out := &pb.GetResponse{Revision: res.Revision, Tracked: res.Tracked}
	switch {
	case res.Found:
		out.Entry = entryToPB(res.Entry)
	case !req.AllowMissing:
		return nil, fmt.Errorf("%w: %q", kv.ErrNotFound, req.Key)
	}
	return out, nil
}

// Track serves a tracking session for as long as the stream lasts.
func (s *Server) Track(_ *pb.TrackRequest, stream pb.KV_TrackServer) error {
	ctx := stream.Context()
	ts, err := s.store.Track(ctx)
	if err != nil {
		return err
	}
	defer ts.Close()
	if err := stream.Send(&pb.TrackResponse{TrackingId: ts.ID()}); err != nil {
		return err
	}
	for {
		m, err := ts.Next(ctx)
		if err != nil {
			return err
		}
		if err := stream.Send(&pb.TrackResponse{Ready: m.Ready, Reset_: m.Reset, Keys: m.Keys, Revision: m.Revision}); err != nil {
			return err
		}
	}
}

func (s *Server) GetMany(ctx context.Context, req *pb.GetManyRequest) (*pb.GetManyResponse, error) {
	res, err := s.store.GetMany(ctx, req.Keys)
	if err != nil {
		return nil, err
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
}

func (s *Server) Put(ctx context.Context, req *pb.PutRequest) (*pb.PutResponse, error) {
	e, err := s.store.Put(ctx, kv.PutRequest{Key: req.Key, Value: req.Value, TTL: kv.Millis(req.TtlMs), Cond: condFromPB(req.Condition)})
	if err != nil {
		return nil, err
	}
	return &pb.PutResponse{Entry: entryToPB(e)}, nil
}

func (s *Server) Delete(ctx context.Context, req *pb.DeleteRequest) (*pb.DeleteResponse, error) {
	res, err := s.store.Delete(ctx, req.Key, condFromPB(req.Condition))
	if err != nil {
		return nil, err
	}
	return &pb.DeleteResponse{Deleted: res.Deleted, Revision: res.Revision}, nil
}

func (s *Server) List(ctx context.Context, req *pb.ListRequest) (*pb.ListResponse, error) {
	res, err := s.store.List(ctx, kv.ListRequest{Prefix: req.Prefix, StartAfter: req.StartAfter, Limit: int(req.Limit), KeysOnly: req.KeysOnly,
		MaxBytes: int(min(req.MaxBytes, kv.MaxListBytes))})
	if err != nil {
		return nil, err
	}
	out := &pb.ListResponse{Entries: make([]*pb.Entry, len(res.Entries)), More: res.More, Revision: res.Revision}
	for i, e := range res.Entries {
		out.Entries[i] = entryToPB(e)
	}
	return out, nil
}

func (s *Server) Count(ctx context.Context, req *pb.CountRequest) (*pb.CountResponse, error) {
	res, err := s.store.Count(ctx, req.Prefix)
	if err != nil {
		return nil, err
	}
	return &pb.CountResponse{Count: res.Count, Revision: res.Revision}, nil
}

func (s *Server) DeletePrefix(ctx context.Context, req *pb.DeletePrefixRequest) (*pb.DeletePrefixResponse, error) {
	res, err := s.store.DeletePrefix(ctx, req.Prefix)
	if err != nil {
		return nil, err
	}
	return &pb.DeletePrefixResponse{Deleted: res.Deleted, Revision: res.Revision}, nil
}

func (s *Server) Increment(ctx context.Context, req *pb.IncrementRequest) (*pb.IncrementResponse, error) {
	c, err := s.store.Increment(ctx, req.Key, req.Delta)
	if err != nil {
		return nil, err
	}
	return &pb.IncrementResponse{Value: c.Value, Version: c.Version, ExpiresAtMs: kv.UnixMillis(c.ExpiresAt)}, nil
}

func (s *Server) RefreshTTL(ctx context.Context, req *pb.RefreshTTLRequest) (*pb.RefreshTTLResponse, error) {
	res, err := s.store.RefreshTTL(ctx, kv.RefreshRequest{Key: req.Key, TTL: kv.Millis(req.TtlMs), Cond: condFromPB(req.Condition)})
	if err != nil {
		return nil, err
	}
	return &pb.RefreshTTLResponse{Entry: entryToPB(res.Entry), Revision: res.Revision}, nil
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
	out := &pb.BatchResponse{Results: make([]*pb.OpResult, len(res.Results)), Revision: res.Revision}
	for i, r := range res.Results {
		out.Results[i] = &pb.OpResult{Version: r.Version, ExpiresAtMs: kv.UnixMillis(r.ExpiresAt), Deleted: r.Deleted, Revision: r.Revision}
	}
	return out, nil
}

func (s *Server) Stats(ctx context.Context, _ *pb.StatsRequest) (*pb.StatsResponse, error) {
	st, err := s.store.Stats(ctx)
	if err != nil {
		return nil, err
	}
	return &pb.StatsResponse{Keys: st.TenantKeys, BackendKeys: st.BackendKeys, BackendBytes: st.BackendBytes, Backend: st.Backend, BackendVersion: st.Version,
		Revision: st.Revision, OldestRevision: st.OldestRevision, BackendTotals: st.BackendTotals}, nil
}

func (s *Server) CompareAndSwap(ctx context.Context, req *pb.CompareAndSwapRequest) (*pb.CompareAndSwapResponse, error) {
	var expect host.Expect
	switch e := req.Expect.(type) {
	case *pb.CompareAndSwapRequest_ExpectAbsent:
		if !e.ExpectAbsent {
			return nil, fmt.Errorf("%w: compare-and-swap %q: expect_absent is false: set it true, or set expected_value", kv.ErrInvalidArgument, req.Key)
		}
		expect.Absent = true
	case *pb.CompareAndSwapRequest_ExpectedValue:
		expect.Value = e.ExpectedValue
	default:
		return nil, fmt.Errorf("%w: compare-and-swap %q expects nothing: set expect_absent or expected_value", kv.ErrInvalidArgument, req.Key)
	}
	res, err := s.store.CompareAndSwap(ctx, host.SwapRequest{Key: req.Key, Expect: expect, Value: req.Value, TTL: kv.Millis(req.TtlMs)})
	if err != nil {
		return nil, err
	}
	out := &pb.CompareAndSwapResponse{Swapped: res.Swapped, Found: res.Found, Revision: res.Revision}
	if res.Found {
		out.Entry = entryToPB(res.Entry)
	}
	return out, nil
}

func (s *Server) Exists(ctx context.Context, req *pb.ExistsRequest) (*pb.ExistsResponse, error) {
	res, err := s.store.Exists(ctx, req.Key)
	if err != nil {
		return nil, err
	}
	out := &pb.ExistsResponse{Exists: res.Found, Revision: res.Revision}
	if res.Found {
		out.Entry = entryToPB(res.Entry)
	}
	return out, nil
}

func (s *Server) Watch(req *pb.WatchRequest, stream pb.KV_WatchServer) error {
	if req.Exact && req.Prefix == "" {
		return fmt.Errorf("%w: an exact watch needs a key: the prefix is empty", kv.ErrInvalidArgument)
	}
	interval := progressInterval(req.ProgressIntervalMs)
	ws, err := s.store.Watch(stream.Context(), kv.WatchRequest{
		Prefix: req.Prefix, StartRevision: req.StartRevision, TTLEvents: req.TtlEvents,
		ProgressInterval: interval,
	})
	if err != nil {
		return err
	}
	defer ws.Close()
	if err := stream.Send(&pb.WatchResponse{Ready: true}); err != nil {
		return err
	}
	msg := &pb.WatchResponse{Events: make([]*pb.Event, 0, pluginapi.WatchBatch)}
	var exact *exactFilter
	if req.Exact {
		exact = newExactFilter(req.Prefix, interval)
	}
	return pluginapi.ForwardEvents(ws, pluginapi.WatchBatch, func(batch []kv.Event) error {
		if exact != nil {
			if batch = exact.filter(batch); len(batch) == 0 {
				return nil
			}
		}
		msg.Events = msg.Events[:0]
		for _, ev := range batch {
			msg.Events = append(msg.Events, &pb.Event{Type: pb.Event_Type(ev.Type), Key: ev.Key, Value: ev.Value, Version: ev.Version,
				Revision: ev.Revision, ExpiresAtMs: kv.UnixMillis(ev.ExpiresAt)})
		}
		return stream.Send(msg)
	})
}

// progressInterval reads the wire's interval: negative means never.
func progressInterval(ms int64) time.Duration {
	if ms < 0 {
		return -1
	}
	return kv.Millis(ms)
}
