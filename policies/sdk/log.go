package sdk

import "fmt"

// Level is a log level of the kvhost.log import.
type Level int32

// Levels.
const (
	LevelDebug Level = 0
	LevelInfo  Level = 1
	LevelWarn  Level = 2
	LevelError Level = 3
)

// Log sends a line to the host's log, tagged with the policy's name. The
// host rate-limits policy logs and drops what exceeds the limit, so do
// not log on every request.
func Log(level Level, msg string) { hostLog(level, msg) }

// Debugf, Infof, Warnf and Errorf log with formatting.
func Debugf(format string, args ...any) { hostLog(LevelDebug, fmt.Sprintf(format, args...)) }

// Infof logs at info level.
func Infof(format string, args ...any) { hostLog(LevelInfo, fmt.Sprintf(format, args...)) }

// Warnf logs at warn level.
func Warnf(format string, args ...any) { hostLog(LevelWarn, fmt.Sprintf(format, args...)) }

// Errorf logs at error level.
func Errorf(format string, args ...any) { hostLog(LevelError, fmt.Sprintf(format, args...)) }
