package policy

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/tetratelabs/wazero/api"
)

// maxLogLine bounds one line a policy logs.
const maxLogLine = 1024

// limiter is a token bucket: rate lines per second, up to burst at once.
type limiter struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func newLimiter(rate float64, burst int) *limiter {
	return &limiter{rate: rate, burst: float64(burst), tokens: float64(burst), last: time.Now()}
}

func (l *limiter) allow() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	l.tokens += now.Sub(l.last).Seconds() * l.rate
	if l.tokens > l.burst {
		l.tokens = l.burst
	}
	l.last = now
	if l.tokens < 1 {
		return false
	}
	l.tokens--
	return true
}

// guestLevel maps the ABI's log levels to slog's.
func guestLevel(level int32) slog.Level {
	switch {
	case level <= 0:
		return slog.LevelDebug
	case level == 1:
		return slog.LevelInfo
	case level == 2:
		return slog.LevelWarn
	}
	return slog.LevelError
}

// hostLog implements the kvhost.log import: (level, ptr, len i32).
func (p *policySet) hostLog(ctx context.Context, mod api.Module, stack []uint64) {
	in, _ := ctx.Value(instanceKey{}).(*instance)
	in.check()
	level, ptr, n := int32(stack[0]), uint32(stack[1]), uint32(stack[2])
	if n > maxLogLine {
		n = maxLogLine
	}
	b, ok := mod.Memory().Read(ptr, n)
	if !ok {
		b = []byte("(log message out of bounds)")
	}
	p.guestLine(guestLevel(level), string(b), "")
}

// guestLine logs one line from a policy, subject to its rate limit.
func (p *policySet) guestLine(level slog.Level, msg, stream string) {
	if !p.logLimit.allow() {
		p.engine.metrics.logDropped.WithLabelValues(p.spec.Name).Inc()
		return
	}
	attrs := []any{"policy", p.spec.Name}
	if stream != "" {
		attrs = append(attrs, "stream", stream)
	}
	p.engine.log.Log(context.Background(), level, sanitize(msg, maxLogLine), attrs...)
}

// lineWriter turns a policy's stdout or stderr into log lines. Stderr also
// keeps the last lines written during an evaluation: a Go policy's panic
// message, used in the failure error.
type lineWriter struct {
	in     *instance // whose deadline each write checks
	set    *policySet
	stream string
	level  slog.Level
	buf    []byte
	tail   []byte // stderr only: text of the current evaluation, bounded
	keep   bool
}

const maxTail = 2048

func (w *lineWriter) Write(b []byte) (int, error) {
	// fd_write calls Write once per vector, and its vectors may all
	// cover the whole memory: check the deadline for each, and every
	// hostWorkChunk bytes of a long one.
	n := len(b)
	for len(b) > hostWorkChunk {
		w.in.check()
		w.write(b[:hostWorkChunk])
		b = b[hostWorkChunk:]
	}
	w.in.check()
	w.write(b)
	return n, nil
}

func (w *lineWriter) write(b []byte) {
	if w.keep && len(w.tail) < maxTail {
		w.tail = append(w.tail, b[:min(len(b), maxTail-len(w.tail))]...)
	}
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		if i > 0 {
			w.set.guestLine(w.level, string(w.buf[:i]), w.stream)
		}
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > maxLogLine {
		w.set.guestLine(w.level, string(w.buf), w.stream)
		w.buf = w.buf[:0]
	}
}

// lastWords returns the most telling line of what the policy wrote to
// stderr during the failed call.
func (w *lineWriter) lastWords() string {
	if w == nil {
		return ""
	}
	lines := bytes.Split(bytes.TrimSpace(w.tail), []byte("\n"))
	for _, l := range lines {
		if bytes.HasPrefix(l, []byte("panic: ")) || bytes.HasPrefix(l, []byte("fatal error: ")) {
			return sanitize(string(l), 512)
		}
	}
	if len(lines) > 0 && len(lines[0]) > 0 {
		return sanitize(string(lines[0]), 512)
	}
	return ""
}
