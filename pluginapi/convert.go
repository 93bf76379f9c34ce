package pluginapi

import (
	"time"

	pb "github.com/kvhost/kvhost/pluginapi/internal/pluginpb"
)

// This file is the only place that converts between the Go contract and
// the generated wire types.

func msToTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

func timeToMs(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func msToTTL(ms int64) time.Duration { return time.Duration(ms) * time.Millisecond }

func entryToPB(e Entry) *pb.Entry {
	return &pb.Entry{Key: e.Key, Value: e.Value, Version: e.Version, ExpiresAtMs: timeToMs(e.ExpiresAt)}
}

func entryFromPB(e *pb.Entry) Entry {
	if e == nil {
		return Entry{}
	}
	return Entry{Key: e.Key, Value: e.Value, Version: e.Version, ExpiresAt: msToTime(e.ExpiresAtMs)}
}

func condToPB(c Condition) *pb.Condition {
	if c.Kind == CondNone {
		return nil
	}
	return &pb.Condition{Kind: pb.Condition_Kind(c.Kind), Version: c.Version}
}

func condFromPB(c *pb.Condition) Condition {
	if c == nil {
		return Condition{}
	}
	return Condition{Kind: CondKind(c.Kind), Version: c.Version}
}

func opToPB(op Op) *pb.Op {
	return &pb.Op{Kind: pb.Op_Kind(op.Kind), Key: op.Key, Value: op.Value, TtlMs: TTLMillis(op.TTL), Condition: condToPB(op.Cond)}
}

func opFromPB(op *pb.Op) Op {
	return Op{Kind: OpKind(op.Kind), Key: op.Key, Value: op.Value, TTL: msToTTL(op.TtlMs), Cond: condFromPB(op.Condition)}
}

func eventToPB(ev Event) *pb.Event {
	return &pb.Event{Type: pb.Event_Type(ev.Type), Key: ev.Key, Value: ev.Value, Version: ev.Version}
}

func eventFromPB(ev *pb.Event) Event {
	return Event{Type: EventType(ev.Type), Key: ev.Key, Value: ev.Value, Version: ev.Version}
}
