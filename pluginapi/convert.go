package pluginapi

import (
	"time"

	pb "github.com/kvhost/kvhost/pluginapi/internal/pluginpb"
)

// This file is the only place that converts between the Go contract and
// the generated wire types.

// The wire conventions, shared by both protocols (the plugin protocol and
// the public API): instants are milliseconds since the Unix epoch with 0
// for "none", durations are whole milliseconds.

// FromUnixMillis turns a wire instant into a time; 0 is the zero time.
func FromUnixMillis(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// UnixMillis turns a time into a wire instant; the zero time is 0.
func UnixMillis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// Millis turns a wire duration into a time.Duration (TTLMillis goes the
// other way).
func Millis(ms int64) time.Duration { return time.Duration(ms) * time.Millisecond }

func entryToPB(e Entry) *pb.Entry {
	return &pb.Entry{Key: e.Key, Value: e.Value, Version: e.Version, ExpiresAtMs: UnixMillis(e.ExpiresAt)}
}

func entryFromPB(e *pb.Entry) Entry {
	if e == nil {
		return Entry{}
	}
	return Entry{Key: e.Key, Value: e.Value, Version: e.Version, ExpiresAt: FromUnixMillis(e.ExpiresAtMs)}
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
	return Op{Kind: OpKind(op.Kind), Key: op.Key, Value: op.Value, TTL: Millis(op.TtlMs), Cond: condFromPB(op.Condition)}
}

func eventToPB(ev Event) *pb.Event {
	return &pb.Event{Type: pb.Event_Type(ev.Type), Key: ev.Key, Value: ev.Value, Version: ev.Version}
}

func eventFromPB(ev *pb.Event) Event {
	return Event{Type: EventType(ev.Type), Key: ev.Key, Value: ev.Value, Version: ev.Version}
}
