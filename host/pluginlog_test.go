package host

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// A plugin's JSON log lines become records of the host's slog logger, at
// their level, with their fields; other lines are kept as they are.
func TestPluginLogsReachSlog(t *testing.T) {
	var buf bytes.Buffer
	w := slogWriter{log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	in := `{"@level":"warn","@message":"disk slow","@module":"sqlite","@timestamp":"2026-01-01T00:00:00Z","ms":42}
not json at all
{"@level":"error","@message":"boom"}
`
	if n, err := w.Write([]byte(in)); err != nil || n != len(in) {
		t.Fatalf("write: %d %v", n, err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d records:\n%s", len(lines), buf.String())
	}
	for i, want := range [][]string{
		{"level=WARN", `msg="disk slow"`, "module=sqlite", "ms=42"},
		{"level=INFO", `msg="not json at all"`, "source=plugin"},
		{"level=ERROR", "msg=boom"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("record %d %q lacks %q", i, lines[i], w)
			}
		}
	}
	if strings.Contains(lines[0], "timestamp") {
		t.Errorf("the plugin's own timestamp leaked into the record: %q", lines[0])
	}
}
