package memory_test

import (
	"testing"

	"github.com/kvhost/kvhost/internal/testbin"
	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi/conformance"
	"github.com/kvhost/kvhost/plugins/memory"
)

func TestConformance(t *testing.T) {
	conformance.Run(t, func(testing.TB) kv.Backend { return memory.New() })
}

func TestConformanceGRPC(t *testing.T) {
	conformance.RunGRPC(t, memory.Open, nil)
}

func TestConformancePlugin(t *testing.T) {
	conformance.RunPlugin(t, testbin.Plugin(t, "memory"), nil)
}
