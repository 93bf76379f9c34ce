package kv

import "time"

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
