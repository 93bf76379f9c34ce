package host

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// pluginLogger returns the hclog logger go-plugin needs, writing into the
// host's slog logger: the plugin's log lines (and go-plugin's own) become
// structured records of the host's log.
func pluginLogger(log *slog.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       "plugin",
		Level:      hclog.Info,
		JSONFormat: true,
		Output:     slogWriter{log: log},
	})
}

type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimSpace(string(p)), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			w.log.Info(line, "source", "plugin")
			continue
		}
		msg, _ := rec["@message"].(string)
		level := slog.LevelInfo
		switch rec["@level"] {
		case "trace", "debug":
			level = slog.LevelDebug
		case "warn":
			level = slog.LevelWarn
		case "error":
			level = slog.LevelError
		}
		attrs := make([]slog.Attr, 0, len(rec))
		for k, v := range rec {
			if strings.HasPrefix(k, "@") && k != "@module" {
				continue
			}
			attrs = append(attrs, slog.Any(strings.TrimPrefix(k, "@"), v))
		}
		w.log.LogAttrs(context.Background(), level, msg, attrs...)
	}
	return len(p), nil
}
