package postgres_test

import (
	"testing"

	"github.com/kvhost/kvhost/internal/testbin"
	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi/conformance"
	"github.com/kvhost/kvhost/plugins/postgres"
)

func TestConformance(t *testing.T) {
	conformance.Run(t, func(t testing.TB) kv.Backend {
		b, err := postgres.Open(t.Context(), settings(t))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}, conformance.WithRetention(retention))
}

func TestConformanceGRPC(t *testing.T) {
	conformance.RunGRPC(t, postgres.Open, settings, conformance.WithRetention(retention))
}

func TestConformancePlugin(t *testing.T) {
	conformance.RunPlugin(t, testbin.Plugin(t, "postgres"), settings, conformance.WithRetention(retention))
}
