package sqlite_test

import (
	"path/filepath"
	"strconv"
	"testing"

	"github.com/kvhost/kvhost/internal/testbin"
	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi/conformance"
	"github.com/kvhost/kvhost/plugins/sqlite"
)

// retention is a history small enough for the suite's compaction rule to
// go past it quickly.
const retention = 200

// settings gives every backend its own database file.
func settings(t testing.TB) map[string]string {
	return map[string]string{"path": filepath.Join(t.TempDir(), "kv.db"), "history": strconv.Itoa(retention)}
}

func TestConformance(t *testing.T) {
	conformance.Run(t, func(t testing.TB) kv.Backend {
		b, err := sqlite.Open(t.Context(), settings(t))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}, conformance.WithRetention(retention))
}

func TestConformanceGRPC(t *testing.T) {
	conformance.RunGRPC(t, sqlite.Open, settings, conformance.WithRetention(retention))
}

func TestConformancePlugin(t *testing.T) {
	conformance.RunPlugin(t, testbin.Plugin(t, "sqlite"), settings, conformance.WithRetention(retention))
}
