package pluginapi

import (
	"time"

	"github.com/kvhost/kvhost/kv"
	pb "github.com/kvhost/kvhost/pluginapi/internal/pluginpb"
)

// This file is the only place that converts between the Go contract and
// the generated wire types.

func entryToPB(e kv.Entry) *pb.Entry {
	return &pb.Entry{Key: e.Key, Value: e.Value, Version: e.Version, ExpiresAtMs: kv.UnixMillis(e.ExpiresAt)}
}

func entryFromPB(e *pb.Entry) kv.Entry {
	if e == nil {
		return kv.Entry{}
	}
	return kv.Entry{Key: e.Key, Value: e.Value, Version: e.Version, ExpiresAt: kv.FromUnixMillis(e.ExpiresAtMs)}
}

func condToPB(c kv.Condition) *pb.Condition {
	if c.Kind == kv.CondNone {
		return nil
	}
	return &pb.Condition{Kind: pb.Condition_Kind(c.Kind), Version: c.Version}
}

func condFromPB(c *pb.Condition) kv.Condition {
	if c == nil {
		return kv.Condition{}
	}
	return kv.Condition{Kind: kv.CondKind(c.Kind), Version: c.Version}
}

func opToPB(op kv.Op) *pb.Op {
	return &pb.Op{Kind: pb.Op_Kind(op.Kind), Key: op.Key, Value: op.Value, TtlMs: kv.TTLMillis(op.TTL), Condition: condToPB(op.Cond)}
}

func opFromPB(op *pb.Op) kv.Op {
	return kv.Op{Kind: kv.OpKind(op.Kind), Key: op.Key, Value: op.Value, TTL: kv.Millis(op.TtlMs), Cond: condFromPB(op.Condition)}
}

func eventToPB(ev kv.Event) *pb.Event {
	return &pb.Event{Type: pb.Event_Type(ev.Type), Key: ev.Key, Value: ev.Value, Version: ev.Version,
		Revision: ev.Revision, ExpiresAtMs: kv.UnixMillis(ev.ExpiresAt)}
}

func eventFromPB(ev *pb.Event) kv.Event {
	return kv.Event{Type: kv.EventType(ev.Type), Key: ev.Key, Value: ev.Value, Version: ev.Version,
		Revision: ev.Revision, ExpiresAt: kv.FromUnixMillis(ev.ExpiresAtMs)}
}

func watchToPB(req kv.WatchRequest) *pb.WatchRequest {
	return &pb.WatchRequest{Prefix: req.Prefix, StartRevision: req.StartRevision, TtlEvents: req.TTLEvents,
		ProgressIntervalMs: durationMillis(req.ProgressInterval)}
}

func watchFromPB(req *pb.WatchRequest) kv.WatchRequest {
	return kv.WatchRequest{Prefix: req.Prefix, StartRevision: req.StartRevision, TTLEvents: req.TtlEvents,
		ProgressInterval: kv.Millis(req.ProgressIntervalMs)}
}

// durationMillis keeps the sign of a duration (a negative progress
// interval means "never"), rounding a positive one up.
func durationMillis(d time.Duration) int64 {
	if d < 0 {
		return -1
	}
	return kv.TTLMillis(d)
}

func infoToPB(info kv.Info) *pb.InfoResponse {
	return &pb.InfoResponse{
		Name: info.Name, Version: info.Version, ProtocolVersion: int32(info.ProtocolVersion),
		CapWatch: info.Capabilities.Watch, CapCleanupExpired: info.Capabilities.CleanupExpired,
		CapWatchHistory: info.Capabilities.WatchHistory, CapExclusive: info.Capabilities.Exclusive,
	}
}

func infoFromPB(r *pb.InfoResponse) kv.Info {
	return kv.Info{
		Name: r.Name, Version: r.Version, ProtocolVersion: int(r.ProtocolVersion),
		Capabilities: kv.Capabilities{Watch: r.CapWatch, CleanupExpired: r.CapCleanupExpired, WatchHistory: r.CapWatchHistory,
			Exclusive: r.CapExclusive},
	}
}
