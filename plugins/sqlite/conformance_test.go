//go:build conformance

// The build tag keeps this file out while pluginapi/conformance is being
// rewritten for contract v2 and does not compile; remove it then.

package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/kvhost/kvhost/internal/testbin"
	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi/conformance"
	"github.com/kvhost/kvhost/plugins/sqlite"
)

// settings gives every backend its own database file.
func settings(t testing.TB) map[string]string {
	return map[string]string{"path": filepath.Join(t.TempDir(), "kv.db")}
}

func TestConformance(t *testing.T) {
	conformance.Run(t, func(t testing.TB) kv.Backend {
		b, err := sqlite.Open(t.Context(), settings(t))
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

func TestConformanceGRPC(t *testing.T) {
	conformance.RunGRPC(t, sqlite.Open, settings)
}

func TestConformancePlugin(t *testing.T) {
	conformance.RunPlugin(t, testbin.Plugin(t, "sqlite"), settings)
}
